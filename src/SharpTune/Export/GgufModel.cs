using System.Text.RegularExpressions;
using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>
/// How llama.cpp's llama, qwen2 and qwen3 architectures name and lay out a Hugging Face model's weights and
/// settings (from llama.cpp's converter, convert_hf_to_gguf.py, and gguf-py's constants).
/// </summary>
public static partial class GgufModel
{
    public static string Architecture(ModelConfig c) => c.Architecture switch
    {
        "LlamaForCausalLM" => "llama",
        "Qwen2ForCausalLM" => "qwen2",
        "Qwen3ForCausalLM" => "qwen3",
        var a => throw new SharpTuneException($"config.json: architecture {a} has no GGUF export"),
    };

    static readonly (string Hf, string Gguf)[] LayerNames =
    [
        ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"), ("self_attn.q_norm", "attn_q_norm"),
        ("self_attn.k_norm", "attn_k_norm"), ("post_attention_layernorm", "ffn_norm"), ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"),
    ];

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")]
    private static partial Regex LayerWeight();

    /// <summary>The GGUF tensor name of a checkpoint weight ("model.layers.3.mlp.up_proj.weight" → "blk.3.ffn_up.weight").</summary>
    public static string TensorName(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        var m = LayerWeight().Match(hfName);
        if (m.Success)
            foreach (var (hf, gguf) in LayerNames)
                if (m.Groups[2].Value == hf) return $"blk.{m.Groups[1].Value}.{gguf}.{m.Groups[3].Value}";
        throw new SharpTuneException($"weight {hfName} has no GGUF name");
    }

    /// <summary>llama.cpp runs Llama's RoPE on interleaved pairs, HF on halves: its converter permutes the rows of
    /// q_proj and k_proj (per head: [first half, second half] → interleaved). Qwen2/3 use the halves layout (NEOX).</summary>
    public static Tensor PermuteForLlamaRope(Tensor w, int heads)
    {
        long rows = w.shape[0];
        var rest = w.shape.Skip(1).ToArray();
        long[] split = [heads, 2, rows / heads / 2, .. rest];
        return w.reshape(split).transpose(1, 2).reshape(w.shape).contiguous();
    }

    /// <summary>The head count whose rows a weight's permutation works on, or null when it needs none.</summary>
    public static int? RopePermutationHeads(ModelConfig c, string hfName) =>
        c.Architecture != "LlamaForCausalLM" ? null
        : hfName.Contains(".self_attn.q_proj.") ? c.NumHeads
        : hfName.Contains(".self_attn.k_proj.") ? c.NumKvHeads
        : null;

    /// <summary>general.file_type values (llama.cpp's LLAMA_FTYPE) of the types we write.</summary>
    public static uint FileType(GgmlType t) => t switch { GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q8_0 => 7, GgmlType.BF16 => 32, _ => 0 };

    /// <summary>The architecture's hyperparameters, as llama.cpp's loader reads them.</summary>
    public static void AddHyperparameters(GgufWriter w, ModelConfig c, string name, GgmlType fileType)
    {
        string arch = Architecture(c);
        w.Add("general.architecture", arch);
        w.Add("general.name", name);
        w.Add("general.file_type", FileType(fileType));
        w.Add("general.quantization_version", 2u);
        w.Add($"{arch}.vocab_size", (uint)c.VocabSize);
        w.Add($"{arch}.context_length", (uint)c.MaxPositionEmbeddings);
        w.Add($"{arch}.embedding_length", (uint)c.HiddenSize);
        w.Add($"{arch}.block_count", (uint)c.NumLayers);
        w.Add($"{arch}.feed_forward_length", (uint)c.IntermediateSize);
        w.Add($"{arch}.attention.head_count", (uint)c.NumHeads);
        w.Add($"{arch}.attention.head_count_kv", (uint)c.NumKvHeads);
        w.Add($"{arch}.attention.key_length", (uint)c.HeadDim);       // explicit: Qwen3's head_dim is not hidden/heads
        w.Add($"{arch}.attention.value_length", (uint)c.HeadDim);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps);
        w.Add($"{arch}.rope.freq_base", (float)c.RopeTheta);
        w.Add($"{arch}.rope.dimension_count", (uint)c.HeadDim);
        if (c.RopeScaling is { Type: "linear" } s)
        {
            w.Add($"{arch}.rope.scaling.type", "linear");
            w.Add($"{arch}.rope.scaling.factor", (float)s.Factor);
        }
        if (c.RopeScaling is { Type: not ("linear" or "llama3") } other)
            throw new SharpTuneException($"config.json: rope scaling '{other.Type}' has no GGUF export");
    }

    /// <summary>Llama 3.1's frequency scaling as llama.cpp applies it: a rope_freqs tensor of per-frequency divisors
    /// (θ_i / factor_i), the ratio of the unscaled to the scaled inverse frequencies.</summary>
    public static Tensor? RopeFreqs(ModelConfig c)
    {
        if (c.RopeScaling is not { Type: "llama3" }) return null;
        using var scope = NewDisposeScope();
        var scaled = Rope.InverseFrequencies(c);
        var plain = Rope.InverseFrequencies(c with { RopeScaling = null });
        return (plain / scaled).MoveToOuterDisposeScope();
    }

    /// <summary>A display name for general.name: the model folder's name.</summary>
    public static string DisplayName(string modelDir) => Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd('/', '\\'));

    /// <summary>Writes a model GGUF (f32, f16, bf16 or q8_0) of base + adapter to <paramref name="path"/>, streaming one weight at a time.</summary>
    public static void Write(MergedWeights weights, Tokenizer tokenizer, GgmlType fileType, string path, Action<int, int>? progress = null)
    {
        var c = weights.Config;
        var vocab = GgufVocab.Load(weights.ModelDir, tokenizer, c.VocabSize, c.BosTokenId);
        var w = new GgufWriter();
        AddHyperparameters(w, c, DisplayName(weights.ModelDir), fileType);
        vocab.AddTo(w);
        if (RopeFreqs(c) is { } freqs)
        {
            long[] shape = freqs.shape;
            w.AddTensor(new GgufTensor("rope_freqs.weight", shape, GgmlType.F32, s => { TensorEncoding.Write(freqs, GgmlType.F32, s); freqs.Dispose(); }));
        }
        foreach (var (name, shape) in weights.Weights)
        {
            string hfName = name;
            var type = TensorEncoding.TypeFor(fileType, shape);
            w.AddTensor(new GgufTensor(TensorName(hfName), shape, type, s =>
            {
                using var scope = NewDisposeScope();
                var t = weights.Read(hfName);
                if (RopePermutationHeads(c, hfName) is int heads) t = PermuteForLlamaRope(t, heads);
                TensorEncoding.Write(t, type, s);
            }));
        }
        w.Write(path, progress);
    }
}
