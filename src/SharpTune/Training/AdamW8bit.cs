using SharpTune.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// AdamW whose two moments are stored in 8 bits, block-wise (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
/// Quantization"; bitsandbytes' AdamW8bit): each block of <see cref="BlockSize"/> values keeps its absmax in fp32 and
/// one byte per value, an index into the dynamic tree map (signed for m, unsigned for v). A step dequantizes both
/// moments, applies the AdamW update of <see cref="AdamW"/> in fp32 (the parameter uses the updated, unquantized
/// moments), then quantizes the moments again with the blocks' new absmax. State: 2 bytes per parameter plus
/// 8 bytes per block, against 8 for fp32 AdamW; saved as is, so a resumed run continues bit for bit.
/// The step runs over slices of <see cref="SliceValues"/> values (whole blocks): the fp32 moments and the
/// requantization's temporaries then exist for one slice at a time (~0.1 GB) instead of for every parameter at once
/// (1.2 GB for r=16 on an 8B model, the largest transient of a QLoRA step). Blocks are independent and every
/// operation is elementwise, so the result is the same bit for bit.
/// </summary>
public sealed class AdamW8bit : IOptimizer
{
    public const int BlockSize = 256;
    readonly IReadOnlyList<(Tensor Value, Tensor Grad)> _params;
    readonly Tensor _signed, _unsigned;
    readonly Tensor[] _mCodes, _mAbsmax, _vCodes, _vAbsmax;
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public int StepCount { get; private set; }
    /// <summary>Values per slice of a step; a whole number of blocks.</summary>
    internal long SliceValues { get; init; } = 1L << 22;

    public AdamW8bit(IReadOnlyList<(Tensor Value, Tensor Grad)> parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        _params = parameters;
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        var device = parameters.Count > 0 ? parameters[0].Value.device : CPU;
        _signed = tensor(Codebooks.Dynamic(signed: true), device: device).DetachFromDisposeScope();
        _unsigned = tensor(Codebooks.Dynamic(signed: false), device: device).DetachFromDisposeScope();
        (_mCodes, _mAbsmax) = ZeroState(_signed);
        (_vCodes, _vAbsmax) = ZeroState(_unsigned);
    }

    (Tensor[] Codes, Tensor[] Absmax) ZeroState(Tensor code)
    {
        var codes = new Tensor[_params.Count];
        var absmax = new Tensor[_params.Count];
        for (int i = 0; i < _params.Count; i++)
        {
            using var scope = NewDisposeScope();
            var (c, a) = Blockwise.Quantize(zeros_like(_params[i].Value, dtype: float32), code, BlockSize);
            codes[i] = c.DetachFromDisposeScope();
            absmax[i] = a.DetachFromDisposeScope();
        }
        return (codes, absmax);
    }

    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        StepCount++;
        for (int i = 0; i < _params.Count; i++)
        {
            var (p, g) = _params[i];
            var (flatP, flatG) = (p.view(-1), g.view(-1));
            long n = flatP.shape[0];
            for (long start = 0; start < n; start += SliceValues)
            {
                using var sliceScope = NewDisposeScope();
                long len = Math.Min(SliceValues, n - start), b0 = start / BlockSize, blocks = (len + BlockSize - 1) / BlockSize;
                var (ps, gs) = (flatP.narrow(0, start, len), flatG.narrow(0, start, len));
                var (mCodes, mAbsmax) = (_mCodes[i].narrow(0, start, len), _mAbsmax[i].narrow(0, b0, blocks));
                var (vCodes, vAbsmax) = (_vCodes[i].narrow(0, start, len), _vAbsmax[i].narrow(0, b0, blocks));
                var m = Blockwise.Dequantize(mCodes, mAbsmax, _signed, BlockSize);
                var v = Blockwise.Dequantize(vCodes, vAbsmax, _unsigned, BlockSize);
                AdamW.Update(ps, gs, m, v, lr, StepCount, Beta1, Beta2, Eps, WeightDecay);
                Store(m, _signed, mCodes, mAbsmax);
                Store(v, _unsigned, vCodes, vAbsmax);
            }
        }
    }

    static void Store(Tensor values, Tensor code, Tensor codes, Tensor absmax)
    {
        var (c, a) = Blockwise.Quantize(values, code, BlockSize);
        codes.copy_(c);
        absmax.copy_(a);
    }

    public void ZeroGrad()
    {
        foreach (var (_, g) in _params) g.zero_();
    }

    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        Enumerable.Range(0, _params.Count).SelectMany(i => new[]
        {
            ($"m8.{i}.codes", _mCodes[i]), ($"m8.{i}.absmax", _mAbsmax[i]), ($"v8.{i}.codes", _vCodes[i]), ($"v8.{i}.absmax", _vAbsmax[i]),
        });

    public void LoadState(Func<string, Tensor> read, int stepCount)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _params.Count; i++)
            foreach (var (name, target) in new[] { ($"m8.{i}.codes", _mCodes[i]), ($"m8.{i}.absmax", _mAbsmax[i]), ($"v8.{i}.codes", _vCodes[i]), ($"v8.{i}.absmax", _vAbsmax[i]) })
            {
                using var t = read(name);
                if (!t.shape.SequenceEqual(target.shape) || t.dtype != target.dtype)
                    throw new SharpTuneException($"optimizer state '{name}' is {t.dtype} [{string.Join(", ", t.shape)}], expected {target.dtype} [{string.Join(", ", target.shape)}]");
                target.copy_(t);
            }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var t in _mCodes.Concat(_mAbsmax).Concat(_vCodes).Concat(_vAbsmax)) t.Dispose();
        _signed.Dispose(); _unsigned.Dispose();
    }
}
