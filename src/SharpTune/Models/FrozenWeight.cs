using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>A projection's frozen weight [out, in]: dense, or kept compressed (Quantization) and expanded for
/// each use. <see cref="Linear"/> computes through it, so LoRA sits on top of either.</summary>
public interface IFrozenWeight : IDisposable
{
    long OutFeatures { get; }
    long InFeatures { get; }
    /// <summary>Bytes the weight occupies where it lives.</summary>
    long StorageBytes { get; }
    /// <summary>The weight as a dense [out, in] tensor in <paramref name="dtype"/>; a new tensor for a compressed store.</summary>
    Tensor Dense(ScalarType dtype);
    /// <summary>x Wᵀ + b in x's dtype.</summary>
    Tensor Linear(Tensor x, Tensor? bias);
    /// <summary>Rows [start, start + count) of the weight, dense in <paramref name="dtype"/> (a new tensor). By default
    /// through the whole <see cref="Dense"/>; a store whose rows stand alone expands only those.</summary>
    Tensor DenseRows(long start, long count, ScalarType dtype)
    {
        using var all = Dense(dtype);
        return all.narrow(0, start, count).clone();
    }
}

/// <summary>A plain tensor in the compute dtype.</summary>
public sealed class DenseWeight(Tensor weight) : IFrozenWeight
{
    public Tensor Tensor { get; } = weight;
    public long OutFeatures => Tensor.shape[0];
    public long InFeatures => Tensor.shape[1];
    public long StorageBytes => Tensor.NumberOfElements * Tensor.ElementSize;
    public Tensor Dense(ScalarType dtype) => Tensor.to(dtype);
    public Tensor Linear(Tensor x, Tensor? bias) => F.linear(x, Tensor, bias);
    public void Dispose() => Tensor.Dispose();
}

/// <summary>Makes the frozen weight of one projection while a checkpoint loads: <paramref name="weightName"/> is
/// the checkpoint name ("model.layers.0.self_attn.q_proj.weight"), <paramref name="shape"/> [out, in] as config.json
/// implies. It reads what it needs through <paramref name="checkpoint"/> (which records what was used).</summary>
public delegate IFrozenWeight ProjectionLoader(ModelFolder checkpoint, string weightName, long[] shape, Device device, ScalarType dtype);
