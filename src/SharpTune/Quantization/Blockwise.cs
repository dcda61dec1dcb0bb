using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>Block-wise absmax quantization onto a code (bitsandbytes' quantize_blockwise / quantize_4bit): each block
/// of <c>blockSize</c> consecutive values (flattened, row-major) is divided by its largest magnitude and every value
/// becomes the index of the nearest code value. Dequantized: code[index] · absmax.</summary>
public static class Blockwise
{
    /// <returns>indices [n] (uint8) and one absmax per block [ceil(n / blockSize)] (fp32)</returns>
    public static (Tensor Indices, Tensor Absmax) Quantize(Tensor x, Tensor code, int blockSize)
    {
        using var scope = NewDisposeScope();
        var flat = x.reshape(-1).to(float32);
        long n = flat.shape[0], blocks = (n + blockSize - 1) / blockSize, pad = blocks * blockSize - n;
        if (pad > 0) flat = cat([flat, zeros(pad, float32, flat.device)]);
        var view = flat.view(blocks, blockSize);
        var absmax = view.abs().amax([1]);                                          // [blocks]
        var normalized = view / where(absmax > 0, absmax, ones_like(absmax)).unsqueeze(1);
        var indices = Nearest(normalized.reshape(-1), code.to(float32, flat.device));
        if (pad > 0) indices = indices.narrow(0, 0, n);
        return (indices.contiguous().MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>code[indices] · absmax of each block, in fp32, flat [n].</summary>
    public static Tensor Dequantize(Tensor indices, Tensor absmax, Tensor code, int blockSize)
    {
        using var scope = NewDisposeScope();
        long n = indices.shape[0], blocks = absmax.shape[0], pad = blocks * blockSize - n;
        var values = code.to(float32, indices.device).index_select(0, indices.to(int32));
        if (pad > 0) values = cat([values, zeros(pad, float32, values.device)]);
        var result = (values.view(blocks, blockSize) * absmax.to(float32).unsqueeze(1)).reshape(-1);
        return (pad > 0 ? result.narrow(0, 0, n) : result).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Index (uint8) of the nearest code value for each value; a value halfway between two codes takes the
    /// lower one, as bitsandbytes' thresholds do. The code need not be sorted (FP4 is not).</summary>
    public static Tensor Nearest(Tensor values, Tensor code)
    {
        using var scope = NewDisposeScope();
        var (mids, order) = Midpoints(code);
        var position = bucketize(values, mids, true);
        return order.index_select(0, position).MoveToOuterDisposeScope();
    }

    /// <summary>The midpoints between the code's sorted values [count − 1] and the sort order (uint8): the nearest code to x
    /// is order[number of midpoints below x], as <see cref="Nearest"/> finds it.</summary>
    public static (Tensor Midpoints, Tensor Order) Midpoints(Tensor code)
    {
        using var scope = NewDisposeScope();
        var (sorted, order) = code.sort();
        var mids = (sorted.narrow(0, 1, sorted.shape[0] - 1) + sorted.narrow(0, 0, sorted.shape[0] - 1)) / 2;
        return (mids.MoveToOuterDisposeScope(), order.to(ScalarType.Byte).MoveToOuterDisposeScope());
    }
}
