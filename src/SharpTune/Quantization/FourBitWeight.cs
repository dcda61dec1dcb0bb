using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>The absmax of each block of a 4-bit weight: plain fp32, or double-quantized as bitsandbytes does
/// (QLoRA §3): the mean is subtracted (<see cref="Offset"/>), and the rest is quantized to 8 bits with the signed
/// dynamic map in blocks of <see cref="NestedBlockSize"/>, each with its own fp32 absmax.</summary>
public sealed class BlockScales : IDisposable
{
    public Tensor? Plain { get; init; }          // [blocks] fp32, when not double-quantized
    public Tensor? Codes { get; init; }          // [blocks] uint8
    public Tensor? NestedAbsmax { get; init; }   // [ceil(blocks / nested)] fp32
    public Tensor? NestedCode { get; init; }     // [256] fp32
    public float Offset { get; init; }
    public int NestedBlockSize { get; init; } = 256;

    public bool DoubleQuantized => Codes is not null;

    public static BlockScales DoubleQuantize(Tensor absmax, int nestedBlockSize = 256)
    {
        using var scope = NewDisposeScope();
        float offset = absmax.mean().item<float>();
        var code = tensor(Codebooks.Dynamic(signed: true), device: absmax.device);
        var (codes, nested) = Blockwise.Quantize(absmax - offset, code, nestedBlockSize);
        return new BlockScales
        {
            Codes = codes.DetachFromDisposeScope(), NestedAbsmax = nested.DetachFromDisposeScope(), NestedCode = code.DetachFromDisposeScope(),
            Offset = offset, NestedBlockSize = nestedBlockSize,
        };
    }

    /// <summary>The absmax of every block, fp32.</summary>
    public Tensor Values() => Plain is not null ? Plain.alias()
        : Blockwise.Dequantize(Codes!, NestedAbsmax!, NestedCode!, NestedBlockSize).add_(Offset);

    public long StorageBytes => new[] { Plain, Codes, NestedAbsmax, NestedCode }.Sum(t => t is null ? 0 : t.NumberOfElements * t.ElementSize);

    public void Dispose()
    {
        Plain?.Dispose(); Codes?.Dispose(); NestedAbsmax?.Dispose(); NestedCode?.Dispose();
    }
}

/// <summary>
/// A weight in 4 bits (NF4 or FP4), laid out as bitsandbytes' Params4bit: the [out, in] weight flattened row-major,
/// quantized in blocks of <see cref="BlockSize"/> values against a 16-value code, two indices per byte (the first
/// value in the high nibble). Used as a dense weight in the compute dtype, expanded for each product.
/// </summary>
public sealed class FourBitWeight : IFrozenWeight
{
    public required string Format { get; init; }     // "nf4" or "fp4"
    public required Tensor Packed { get; init; }     // [out·in / 2] uint8
    public required Tensor Code { get; init; }       // [16] fp32
    public required BlockScales Absmax { get; init; }
    public required long OutFeatures { get; init; }
    public required long InFeatures { get; init; }
    public int BlockSize { get; init; } = 64;
    readonly Dictionary<ScalarType, Tensor> _pairTables = new();

    public long StorageBytes => Packed.NumberOfElements + Code.NumberOfElements * 4 + Absmax.StorageBytes;

    public static float[] CodeOf(string format) => format switch
    {
        "nf4" => Codebooks.Nf4,
        "fp4" => Codebooks.Fp4,
        _ => throw new SharpTuneException($"4-bit format '{format}' is not supported (nf4 or fp4)"),
    };

    /// <summary>Quantizes a dense [out, in] weight on its device; <paramref name="name"/> names it in errors.</summary>
    public static FourBitWeight Quantize(string name, Tensor weight, string format, int blockSize = 64, bool doubleQuantize = true)
    {
        long outF = weight.shape[0], inF = weight.shape[1], n = outF * inF;
        if (n % blockSize != 0)
            throw new SharpTuneException($"{name}: shape [{outF}, {inF}] has {n} values, not a multiple of {format}'s block of {blockSize}; use quantization: int8 or none for this model");
        using var scope = NewDisposeScope();
        var code = tensor(CodeOf(format), device: weight.device);
        var (indices, absmax) = Blockwise.Quantize(weight, code, blockSize);
        var pairs = indices.view(n / 2, 2);
        var packed = pairs.select(1, 0).bitwise_left_shift(4).bitwise_or(pairs.select(1, 1));
        var scales = doubleQuantize ? BlockScales.DoubleQuantize(absmax) : new BlockScales { Plain = absmax.DetachFromDisposeScope() };
        return new FourBitWeight
        {
            Format = format, Packed = packed.contiguous().DetachFromDisposeScope(), Code = code.DetachFromDisposeScope(), Absmax = scales,
            OutFeatures = outF, InFeatures = inF, BlockSize = blockSize,
        };
    }

    /// <summary>code[i] · absmax of the block, as [out, in] in <paramref name="dtype"/>: the fused kernel on CUDA
    /// where it is available, else <see cref="DenseStock"/> (the same values bit for bit).</summary>
    public Tensor Dense(ScalarType dtype) => QuantKernels.Available(Packed.device) ? QuantKernels.FourBit(this, dtype) : DenseStock(dtype);

    /// <summary>The dequantization in stock torch ops: bytes are decoded through a 256-entry table of (high, low) code
    /// pairs, one lookup per byte. In fp32 this is bitsandbytes' dequantization exactly; in bf16 the code and absmax
    /// are rounded to bf16 before their product.</summary>
    public Tensor DenseStock(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        long blocks = OutFeatures * InFeatures / BlockSize;
        var absmax = Absmax.Values().to(dtype);
        var values = PairTable(dtype).index_select(0, Packed.to(int32)).view(blocks, BlockSize);
        return (values * absmax.unsqueeze(1)).view(OutFeatures, InFeatures).MoveToOuterDisposeScope();
    }

    public Tensor Linear(Tensor x, Tensor? bias) => FrozenLinear.Apply(this, x, bias);

    Tensor PairTable(ScalarType dtype)
    {
        if (_pairTables.TryGetValue(dtype, out var table)) return table;
        using var scope = NewDisposeScope();
        var bytes = arange(256, int32, Code.device);
        var pairs = stack([Code.index_select(0, bytes.bitwise_right_shift(4)), Code.index_select(0, bytes.bitwise_and(15))], 1);   // [256, 2]
        table = pairs.to(dtype).DetachFromDisposeScope();
        _pairTables[dtype] = table;
        return table;
    }

    public void Dispose()
    {
        Packed.Dispose(); Code.Dispose(); Absmax.Dispose();
        foreach (var t in _pairTables.Values) t.Dispose();
    }
}
