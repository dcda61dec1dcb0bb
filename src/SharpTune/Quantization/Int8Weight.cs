using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>A weight in 8 bits, row-wise absmax (the weight side of LLM.int8(), Dettmers et al. 2022, without its
/// outlier decomposition): each output row is scaled so that its largest magnitude maps to 127 and rounded to the
/// nearest integer. Used dequantized in the compute dtype (no int8 matmul), so the error is the rounding alone:
/// at most half a step, absmax/254, per value.</summary>
public sealed class Int8Weight : IFrozenWeight
{
    public required Tensor Values { get; init; }   // [out, in] int8
    public required Tensor Scale { get; init; }    // [out] fp32: absmax / 127
    public long OutFeatures => Values.shape[0];
    public long InFeatures => Values.shape[1];
    public long StorageBytes => Values.NumberOfElements + Scale.NumberOfElements * 4;

    /// <summary>Quantizes <paramref name="weight"/> [out, in] a block of rows at a time, so that its fp32 temporaries stay
    /// small (an 8B model's lm_head would need 4 GB at once).</summary>
    public static Int8Weight Quantize(Tensor weight) => Quantize(weight, weight.device);

    /// <summary>Quantizes <paramref name="weight"/> onto <paramref name="device"/>, moving one block of rows there at a
    /// time: a weight in host memory never has its dense form on the GPU (the same values as quantizing it there).</summary>
    public static Int8Weight Quantize(Tensor weight, Device device)
    {
        using var scope = NewDisposeScope();
        long rows = weight.shape[0];
        var values = empty(weight.shape, ScalarType.Int8, device);
        var scales = empty([rows], float32, device);
        for (long start = 0; start < rows; start += RowBlock)
        {
            using var block = NewDisposeScope();
            long count = Math.Min(RowBlock, rows - start);
            var w = weight.narrow(0, start, count).to(device).to(float32);
            var absmax = w.abs().amax([1]);
            var scale = where(absmax > 0, absmax, ones_like(absmax)) / 127;
            values.narrow(0, start, count).copy_((w / scale.unsqueeze(1)).round().clamp(-127, 127).to(ScalarType.Int8));
            scales.narrow(0, start, count).copy_(scale);
        }
        return new Int8Weight { Values = values.DetachFromDisposeScope(), Scale = scales.DetachFromDisposeScope() };
    }

    const long RowBlock = 4096;

    /// <summary>values · scale of the row as [out, in] in <paramref name="dtype"/>: the fused kernel on CUDA where it is
    /// available, else <see cref="DenseStock"/> (the same values bit for bit).</summary>
    public Tensor Dense(ScalarType dtype) => QuantKernels.Available(Values.device) ? QuantKernels.Int8(this, dtype) : DenseStock(dtype);

    /// <summary>The dequantization in stock torch ops; in bf16 the scale is rounded to bf16 before the product.</summary>
    public Tensor DenseStock(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        return (Values.to(dtype) * Scale.to(dtype).unsqueeze(1)).MoveToOuterDisposeScope();
    }

    public Tensor Linear(Tensor x, Tensor? bias) => FrozenLinear.Apply(this, x, bias);

    /// <summary>Rows stand alone (one scale each): only [start, start + count) is expanded, through views of the values
    /// and scales (contiguous, so the kernel takes them as they are).</summary>
    public Tensor DenseRows(long start, long count, ScalarType dtype)
    {
        using var values = Values.narrow(0, start, count);
        using var scale = Scale.narrow(0, start, count);
        return new Int8Weight { Values = values, Scale = scale }.Dense(dtype);
    }

    public void Dispose() { Values.Dispose(); Scale.Dispose(); }
}
