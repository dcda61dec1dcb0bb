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
        if (!File.Exists(path) && !Directory.Exists(path) && new FileInfo(path).LinkTarget is null)
            throw new SharpTuneException($"{path}: not found; a model folder needs the config.json of a Hugging Face checkpoint");
        return Parse(JsonFile.Read(path));
    }

    public static ModelConfig Parse(JsonObject json, string source = "config.json") =>
        Parse(JsonFile.Parse(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), source));

    /// <summary>Reads and range-checks every field the decoder uses: a shape that would make no sense (or overflow)
    /// fails here, naming the key, not later inside libtorch.</summary>
    public static ModelConfig Parse(JsonField json)
    {
        string source = json.File;
        var architectures = json["architectures"];
        string arch = architectures.Exists && architectures.Count > 0 ? architectures[0].String() : json["model_type"].StringOrNull() switch
        {
            "llama" => "LlamaForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            "qwen3" => "Qwen3ForCausalLM",
            var t => t ?? "(none)",
        };
        if (!Supported.Contains(arch))
            throw new SharpTuneException($"{source}: architecture {SharpTuneException.Quote(arch)} is not supported; supported: {string.Join(", ", Supported)}");

        // Sizes up to 2^20 (a million) cover every released model by far and keep products of two sizes inside int64.
        const int MaxSize = 1 << 20;
        int Size(string key) => json[key].Exists ? json[key].Int(1, MaxSize) : throw new SharpTuneException($"{source}: missing \"{key}\"");
        int? SizeOr(string key) => json[key].Exists ? json[key].Int(1, MaxSize) : null;
        double Positive(string key, double fallback)
        {
            double v = json[key].DoubleOrNull() ?? fallback;
            return v > 0 ? v : throw json[key].Expected("a number > 0");
        }
        bool Flag(string key, bool fallback) => json[key].BoolOrNull() ?? fallback;
        int? TokenId(JsonField f) => f.Exists ? f.Int(0, int.MaxValue) : null;

        if (Flag("use_sliding_window", false))
            throw new SharpTuneException($"{source}: use_sliding_window is true; sliding-window attention is not supported (the DeepSeek-R1 distills and Qwen2.5 set it false)");
        if ((json["hidden_act"].StringOrNull() ?? "silu") is not "silu" and var act)
            throw new SharpTuneException($"{source}: hidden_act {SharpTuneException.Quote(act)} is not supported (only silu)");
        int hidden = Size("hidden_size"), heads = Size("num_attention_heads");
        int kvHeads = SizeOr("num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw new SharpTuneException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        int headDim = SizeOr("head_dim") ?? (hidden % heads == 0 ? hidden / heads
            : throw new SharpTuneException($"{source}: hidden_size {hidden} is not a multiple of num_attention_heads {heads} (and no head_dim is given)"));
        if (headDim % 2 != 0) throw json["head_dim"].Exists ? json["head_dim"].Expected("an even number (RoPE rotates pairs)")
            : new SharpTuneException($"{source}: the head size hidden_size / num_attention_heads = {headDim} is odd; RoPE needs an even one");
        // transformers 5 writes rope settings as "rope_parameters"; checkpoints on the Hub use rope_theta + rope_scaling.
        var ropeParams = json["rope_parameters"];
        var scalingNode = json["rope_scaling"].Exists ? json["rope_scaling"] : ropeParams;
        double theta = json["rope_theta"].Exists ? Positive("rope_theta", 10000.0)
            : ropeParams.IsObject && ropeParams["rope_theta"].Exists ? ropeParams["rope_theta"].Double() : 10000.0;
        if (theta <= 0) throw ropeParams["rope_theta"].Expected("a number > 0");
        var dtype = json["torch_dtype"].Exists ? json["torch_dtype"] : json["dtype"];

        return new ModelConfig(
            Architecture: arch,
            HiddenSize: hidden,
            IntermediateSize: Size("intermediate_size"),
            NumLayers: json["num_hidden_layers"].Exists ? json["num_hidden_layers"].Int(1, 10_000) : throw new SharpTuneException($"{source}: missing \"num_hidden_layers\""),
            NumHeads: heads,
            NumKvHeads: kvHeads,
            HeadDim: headDim,
            VocabSize: json["vocab_size"].Exists ? json["vocab_size"].Int(1, 1 << 24) : throw new SharpTuneException($"{source}: missing \"vocab_size\""),
            RmsNormEps: Positive("rms_norm_eps", 1e-6),
            RopeTheta: theta,
            RopeScaling: ParseRopeScaling(scalingNode),
            MaxPositionEmbeddings: json["max_position_embeddings"].Exists ? json["max_position_embeddings"].Int(1, 1 << 24) : 4096,
            TieWordEmbeddings: Flag("tie_word_embeddings", false),
            AttentionBias: arch == "Qwen2ForCausalLM" || Flag("attention_bias", false),
            MlpBias: Flag("mlp_bias", false),
            QkNorm: arch == "Qwen3ForCausalLM",
            DType: dtype.StringOrNull() ?? "float32",
            BosTokenId: TokenId(json["bos_token_id"]),
            EosTokenIds: TokenIds(json["eos_token_id"]));
    }

    static RopeScaling? ParseRopeScaling(JsonField node)
    {
        if (!node.Exists) return null;
        node.Object();
        string type = (node["rope_type"].Exists ? node["rope_type"] : node["type"]).StringOrNull() ?? "default";
        double Get(string key, double fallback)
        {
            double v = node[key].DoubleOrNull() ?? fallback;
            return v > 0 ? v : throw node[key].Expected("a number > 0");
        }
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling(type, Get("factor", 1)),
            "llama3" when Get("high_freq_factor", 4) <= Get("low_freq_factor", 1) => throw node["high_freq_factor"].Expected("a number above low_freq_factor"),
            "llama3" => new RopeScaling(type, Get("factor", 8), Get("low_freq_factor", 1), Get("high_freq_factor", 4),
                node["original_max_position_embeddings"].Exists ? node["original_max_position_embeddings"].Int(1, 1 << 24) : 8192),
            _ => throw new SharpTuneException($"{node.File}: rope scaling type {SharpTuneException.Quote(type)} is not supported (supported: default, linear, llama3)"),
        };
    }

    /// <summary>A token id or a list of them; each must be a whole number >= 0 that fits int32.</summary>
    internal static int[] TokenIds(JsonField node) => node.IsArray
        ? node.Items().Select(i => i.Int(0, int.MaxValue)).ToArray()
        : node.Exists ? [node.Int(0, int.MaxValue)] : [];

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
        if (!File.Exists(path) && !Directory.Exists(path)) return new([], null, null, null, null, null);
        var json = JsonFile.Read(path);
        double? NonNegative(string k) => json[k].DoubleOrNull() is { } v && v < 0 ? throw json[k].Expected("a number >= 0") : json[k].DoubleOrNull();
        return new(ModelConfig.TokenIds(json["eos_token_id"]), json["bos_token_id"].Exists ? json["bos_token_id"].Int(0, int.MaxValue) : null,
            NonNegative("temperature"), NonNegative("top_p"), json["top_k"].Exists ? json["top_k"].Int(0, int.MaxValue) : null,
            json["do_sample"].BoolOrNull());
    }
}
