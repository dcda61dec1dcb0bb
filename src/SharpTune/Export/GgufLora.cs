using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>
/// A PEFT LoRA adapter as llama.cpp's LoRA GGUF (for `llama-cli --lora` and Ollama's ADAPTER): general.type
/// "adapter", adapter.type "lora", adapter.lora.alpha, and for each adapted weight "&lt;gguf name&gt;.lora_a" [r, in]
/// and ".lora_b" [out, r]. llama.cpp scales by alpha / r, so alpha is written as scaling · r (rsLoRA included).
/// Llama's q/k rows are permuted in B as in the base GGUF.
/// </summary>
public static class GgufLora
{
    public static void Write(MergedWeights weights, GgmlType type, string path, Action<int, int>? progress = null)
    {
        if (weights.Lora is not { } lora) throw new SharpTuneException("--format gguf-lora needs --adapter");
        if (type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16))
            throw new SharpTuneException($"--quant: a GGUF LoRA adapter is written as f32, f16 or bf16, not {type.ToString().ToLowerInvariant()}");
        var c = weights.Config;
        var w = new GgufWriter();
        w.Add("general.architecture", GgufModel.Architecture(c));
        w.Add("general.type", "adapter");
        w.Add("general.name", GgufModel.DisplayName(weights.ModelDir) + " LoRA");
        w.Add("adapter.type", "lora");
        w.Add("adapter.lora.alpha", (float)(lora.Scaling * lora.Rank));
        var pairs = weights.Pairs.ToDictionary(p => p.Module + ".weight");
        foreach (var (name, _) in weights.Weights)
        {
            if (!pairs.TryGetValue(name, out var pair)) continue;
            string gguf = GgufModel.TensorName(name);
            string weightName = name;
            w.AddTensor(new GgufTensor(gguf + ".lora_a", [lora.Rank, pair.InFeatures], type, s =>
            {
                using var scope = NewDisposeScope();
                TensorEncoding.Write(weights.ReadLora(weightName)!.Value.A, type, s);
            }));
            w.AddTensor(new GgufTensor(gguf + ".lora_b", [pair.OutFeatures, lora.Rank], type, s =>
            {
                using var scope = NewDisposeScope();
                var b = weights.ReadLora(weightName)!.Value.B;
                if (GgufModel.RopePermutationHeads(c, weightName) is int heads) b = GgufModel.PermuteForLlamaRope(b, heads);
                TensorEncoding.Write(b, type, s);
            }));
        }
        w.Write(path, progress);
    }
}
