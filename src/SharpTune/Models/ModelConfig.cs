using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Models;

/// <summary>RoPE frequency scaling: "default", "linear" (positions divided by Factor) or "llama3"
/// (long wavelengths stretched, short kept, smooth in between).</summary>
public sealed record RopeScaling(string Type, double Factor = 1, double LowFreqFactor = 1, double HighFreqFactor = 4,
    int OriginalMaxPositionEmbeddings = 8192);

/// <summary>
/// The decoder's shape and switches, read from a Hugging Face config.json. One record serves the
/// Llama family: Qwen2 adds q/k/v bias, Qwen3 adds q/k RMSNorm and an explicit head_dim.
/// </summary>
public sealed record ModelConfig(
    string Architecture,
    int HiddenSize,
    int IntermediateSize,
    int NumLayers,
    int NumHeads,
    int NumKvHeads,
    int HeadDim,
    int VocabSize,
    double RmsNormEps,
    double RopeTheta,
    RopeScaling? RopeScaling,
    int MaxPositionEmbeddings,
    bool TieWordEmbeddings,
    bool AttentionBias,
    bool MlpBias,
    bool QkNorm,
    string DType,
    int? BosTokenId,
    int[] EosTokenIds)
{
    /// <summary>The architectures this decoder implements, as config.json names them.</summary>
    public static readonly IReadOnlyList<string> Supported = ["LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"];

    public static ModelConfig Load(string modelDir)
    {
        string path = Path.Combine(modelDir, "config.json");
        if (!Directory.Exists(modelDir)) throw new SharpTuneException($"{modelDir}: model folder not found");
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: not found; a model folder needs the config.json of a Hugging Face checkpoint");
        var json = JsonFile.ReadObject(path);
        return Parse(json, path);
    }

    public static ModelConfig Parse(JsonObject json, string source = "config.json")
    {
        string arch = json["architectures"] is JsonArray { Count: > 0 } a ? a[0]!.GetValue<string>() : json["model_type"]?.GetValue<string>() switch
        {
            "llama" => "LlamaForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            "qwen3" => "Qwen3ForCausalLM",
            var t => t ?? "(none)",
        };
        if (!Supported.Contains(arch))
            throw new SharpTuneException($"{source}: architecture '{arch}' is not supported; supported: {string.Join(", ", Supported)}");

        int Int(string key) => json[key] is JsonValue v ? v.GetValue<int>() : throw new SharpTuneException($"{source}: missing '{key}'");
        int? IntOr(string key) => json[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<int>() : null;
        double? Num(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
        bool Flag(string key, bool fallback) => json[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : fallback;

        if (Flag("use_sliding_window", false))
            throw new SharpTuneException($"{source}: use_sliding_window is true; sliding-window attention is not supported (the DeepSeek-R1 distills and Qwen2.5 set it false)");
        if ((json["hidden_act"]?.GetValue<string>() ?? "silu") is not "silu" and var act)
            throw new SharpTuneException($"{source}: hidden_act '{act}' is not supported (only silu)");
        int hidden = Int("hidden_size"), heads = Int("num_attention_heads");
        // transformers 5 writes rope settings as "rope_parameters"; checkpoints on the Hub use rope_theta + rope_scaling.
        var ropeParams = json["rope_parameters"] as JsonObject;
        var scalingNode = json["rope_scaling"] as JsonObject ?? ropeParams;
        double theta = Num(json["rope_theta"]) ?? Num(ropeParams?["rope_theta"]) ?? 10000.0;

        return new ModelConfig(
            Architecture: arch,
            HiddenSize: hidden,
            IntermediateSize: Int("intermediate_size"),
            NumLayers: Int("num_hidden_layers"),
            NumHeads: heads,
            NumKvHeads: IntOr("num_key_value_heads") ?? heads,
            HeadDim: IntOr("head_dim") ?? hidden / heads,
            VocabSize: Int("vocab_size"),
            RmsNormEps: Num(json["rms_norm_eps"]) ?? 1e-6,
            RopeTheta: theta,
            RopeScaling: ParseRopeScaling(scalingNode, source),
            MaxPositionEmbeddings: IntOr("max_position_embeddings") ?? 4096,
            TieWordEmbeddings: Flag("tie_word_embeddings", false),
            AttentionBias: arch == "Qwen2ForCausalLM" || Flag("attention_bias", false),
            MlpBias: Flag("mlp_bias", false),
            QkNorm: arch == "Qwen3ForCausalLM",
            DType: (json["torch_dtype"] ?? json["dtype"])?.GetValue<string>() ?? "float32",
            BosTokenId: IntOr("bos_token_id"),
            EosTokenIds: TokenIds(json["eos_token_id"]));
    }

    static RopeScaling? ParseRopeScaling(JsonObject? node, string source)
    {
        if (node is null) return null;
        string type = (node["rope_type"] ?? node["type"])?.GetValue<string>() ?? "default";
        double Get(string key, double fallback) => node[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : fallback;
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling(type, Get("factor", 1)),
            "llama3" => new RopeScaling(type, Get("factor", 8), Get("low_freq_factor", 1), Get("high_freq_factor", 4),
                (int)Get("original_max_position_embeddings", 8192)),
            _ => throw new SharpTuneException($"{source}: rope scaling type '{type}' is not supported (supported: default, linear, llama3)"),
        };
    }

    internal static int[] TokenIds(JsonNode? node) => node switch
    {
        JsonArray arr => arr.Select(n => n!.GetValue<int>()).ToArray(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => [v.GetValue<int>()],
        _ => [],
    };

    /// <summary>Parameters of the decoder (embeddings counted once when tied).</summary>
    public long ParameterCount
    {
        get
        {
            long h = HiddenSize, q = (long)NumHeads * HeadDim, kv = (long)NumKvHeads * HeadDim, i = IntermediateSize;
            long attention = h * q + 2 * h * kv + q * h + (AttentionBias ? q + 2 * kv : 0) + (QkNorm ? 2L * HeadDim : 0);
            long mlp = 3 * h * i + (MlpBias ? 2 * i + h : 0);
            long layer = attention + mlp + 2 * h;
            long embeddings = (long)VocabSize * h * (TieWordEmbeddings ? 1 : 2);
            return NumLayers * layer + embeddings + h;
        }
    }
}

/// <summary>Defaults for generation from generation_config.json (all optional).</summary>
public sealed record GenerationDefaults(int[] EosTokenIds, int? BosTokenId, double? Temperature, double? TopP, int? TopK, bool? DoSample)
{
    public static GenerationDefaults Load(string modelDir)
    {
        string path = Path.Combine(modelDir, "generation_config.json");
        if (!File.Exists(path)) return new([], null, null, null, null, null);
        var json = JsonFile.ReadObject(path);
        double? Num(string k) => json[k] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
        return new(ModelConfig.TokenIds(json["eos_token_id"]), json["bos_token_id"] is JsonValue b && b.GetValueKind() == JsonValueKind.Number ? b.GetValue<int>() : null,
            Num("temperature"), Num("top_p"), Num("top_k") is { } k ? (int)k : null,
            json["do_sample"] is JsonValue d && d.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? d.GetValue<bool>() : null);
    }
}
