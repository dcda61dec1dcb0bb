using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>Chooses how the frozen projections load: dense, quantized while streaming from safetensors (nf4, fp4,
/// int8), or as a bitsandbytes checkpoint stored them. Embeddings, norms and lm_head stay dense, as in QLoRA.</summary>
public static class WeightQuantization
{
    public static readonly IReadOnlyList<string> Kinds = ["none", "nf4", "fp4", "int8"];

    public static void Validate(string kind, string where)
    {
        if (!Kinds.Contains(kind)) throw new SharpTuneException($"{where}: expected {string.Join(", ", Kinds)}, got '{kind}'");
    }

    /// <summary>The loader for <paramref name="modelDir"/> with <paramref name="kind"/>; null: plain dense loading.
    /// A pre-quantized bitsandbytes checkpoint loads as stored (kind none expands it to dense; another 4-bit type is refused).</summary>
    public static ProjectionLoader? For(string kind, string modelDir)
    {
        Validate(kind, "quantization");
        if (BnbCheckpoint.QuantType(modelDir) is { } stored)
        {
            if (kind is not ("none" or "nf4" or "fp4") || (kind != "none" && kind != stored))
                throw new SharpTuneException($"{Path.Combine(modelDir, "config.json")}: the checkpoint is already quantized to {stored} by bitsandbytes; "
                    + $"use quantization {stored} (or none to expand it), not {kind}");
            return BnbCheckpoint.Loader(dense: kind == "none");
        }
        return kind switch
        {
            "none" => null,
            "nf4" or "fp4" => (checkpoint, name, shape, device, dtype) => Quantized(checkpoint, name, shape, device, w => FourBitWeight.Quantize(name, w, kind)),
            "int8" => (checkpoint, name, shape, device, dtype) => Quantized(checkpoint, name, shape, device, Int8Weight.Quantize),
            _ => throw new InvalidOperationException(kind),
        };
    }

    /// <summary>The embedding lookup for a model quantized with <paramref name="kind"/>:
    /// its table stays in pinned host memory, the GPU reads the rows it needs over the bus (QuantKernels), so the 1 GB
    /// table of an 8B model is off the GPU; null for a dense model. Where the kernel is unavailable, rows are indexed on
    /// the host and copied. Embeddings tied to lm_head stay on the GPU (the loader decides).</summary>
    public static Func<Tensor, Tensor, Tensor>? HostEmbedding(string kind)
    {
        Validate(kind, "quantization");
        return kind == "none" ? null : HostRows;
    }

    /// <summary>Rows <paramref name="ids"/> (on the GPU) of a table in pinned host memory, gathered by the GPU over the bus.</summary>
    public static Tensor HostRows(Tensor table, Tensor ids) =>
        QuantKernels.Available(ids.device) ? QuantKernels.GatherHostRows(table, ids) : table.index_select(0, ids.cpu()).to(ids.device);

    /// <summary>Reads one weight as stored, moves it to the device, quantizes it there and frees the dense copy:
    /// only one projection is ever dense in memory.</summary>
    static IFrozenWeight Quantized(ModelFolder checkpoint, string name, long[] shape, Device device, Func<Tensor, IFrozenWeight> quantize)
    {
        if (checkpoint.Has(name) && !checkpoint.Tensors[name].Shape.SequenceEqual(shape))
            throw new SharpTuneException($"{checkpoint.FileOf(name)}: weight '{name}' has shape [{string.Join(", ", checkpoint.Tensors[name].Shape)}], config.json implies [{string.Join(", ", shape)}]");
        using var scope = NewDisposeScope();
        using var raw = checkpoint.ReadRaw(name);
        return quantize(raw.to(device));
    }
}
