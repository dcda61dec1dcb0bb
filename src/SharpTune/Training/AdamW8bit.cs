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
        double bias1 = 1 - Math.Pow(Beta1, StepCount);
        double bias2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        for (int i = 0; i < _params.Count; i++)
        {
            var (p, g) = _params[i];
            var m = Blockwise.Dequantize(_mCodes[i], _mAbsmax[i], _signed, BlockSize).view_as(p);
            var v = Blockwise.Dequantize(_vCodes[i], _vAbsmax[i], _unsigned, BlockSize).view_as(p);
            if (WeightDecay != 0) p.mul_(1 - lr * WeightDecay);
            m.lerp_(g, 1 - Beta1);
            v.mul_(Beta2).addcmul_(g, g, 1 - Beta2);
            var denom = (v.sqrt() / bias2Sqrt).add_(Eps);
            p.addcdiv_(m, denom, -lr / bias1);
            Store(m, _signed, _mCodes[i], _mAbsmax[i]);
            Store(v, _unsigned, _vCodes[i], _vAbsmax[i]);
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
