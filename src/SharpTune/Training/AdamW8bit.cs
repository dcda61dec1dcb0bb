using SharpTune.Models;
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
/// On CUDA the same step runs as one fused kernel per parameter (<see cref="TrainingKernels.AdamW8bitStep"/>: ~50 stock
/// ops per slice become one launch, no temporaries), checked once per process against the stock ops (<see cref="CheckKernel"/>).
/// The state and its layout are the same either way, so a checkpoint resumes under either.
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

    /// <summary>Whether a CUDA step may take the fused kernel (false: the stock ops, as on the CPU).</summary>
    internal bool UseKernel { get; init; } = true;
    TrainingKernels.ByteCode? _signedTables, _unsignedTables;   // the kernel's code tables, made on its first use

    public void Step(double lr)
    {
        StepCount++;
        Apply(lr, UseKernel && _params.Count > 0 && KernelServes(_params[0].Value.device));
    }

    /// <summary>Step <see cref="StepCount"/> over every parameter, fused where the kernel takes the parameter.</summary>
    void Apply(double lr, bool fused)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int i = 0; i < _params.Count; i++)
        {
            var (p, g) = _params[i];
            if (fused && p.dtype == float32 && g.dtype == float32 && p.is_contiguous() && g.is_contiguous())
            {
                FusedStep(i, lr);
                continue;
            }
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

    /// <summary>The step above for parameter <paramref name="i"/> in one launch. AdamW.Update's scalars, each rounded to
    /// fp32 as the stock op that takes it rounds it (a division by a scalar is a product with its fp32 reciprocal).</summary>
    void FusedStep(int i, double lr)
    {
        double bias1 = 1 - Math.Pow(Beta1, StepCount), bias2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        var scalars = new TrainingKernels.AdamScalars(Decay: (float)(1 - lr * WeightDecay), MomentWeight: (float)(1 - Beta1),
            Beta2: (float)Beta2, OneMinusBeta2: (float)(1 - Beta2), InverseBias2: 1f / (float)bias2Sqrt, Eps: (float)Eps,
            StepSize: (float)(-lr / bias1), DecayOn: WeightDecay != 0);
        _signedTables ??= Tables(_signed);
        _unsignedTables ??= Tables(_unsigned);
        var (p, g) = _params[i];
        TrainingKernels.AdamW8bitStep(p, g, _mCodes[i], _mAbsmax[i], _vCodes[i], _vAbsmax[i], _signedTables.Value, _unsignedTables.Value, scalars);
    }

    static TrainingKernels.ByteCode Tables(Tensor code)
    {
        var (mids, order) = Blockwise.Midpoints(code);
        return new(code, mids.DetachFromDisposeScope(), order.DetachFromDisposeScope());
    }

    static readonly Lock KernelGate = new();
    static bool? _kernelServes;

    /// <summary>Why the fused step is not in use in this process (null while it is, or before the first CUDA step).</summary>
    public static string? KernelUnavailable { get; private set; }

    /// <summary>The first-use check's differences from the stock ops, for the run's log.</summary>
    public static string? KernelCheckSummary { get; private set; }

    /// <summary>One line for the run's log: how the 8-bit AdamW step runs on <paramref name="device"/>.</summary>
    public static string Describe(Device device) => KernelServes(device)
        ? $"8-bit AdamW: fused CUDA kernel, one launch per step ({KernelCheckSummary})"
        : $"8-bit AdamW: stock ops, slice by slice ({KernelUnavailable})";

    static bool KernelServes(Device device)
    {
        if (device.type != DeviceType.CUDA) return false;
        if (_kernelServes is { } known) return known;
        lock (KernelGate)
        {
            if (_kernelServes is { } again) return again;
            KernelUnavailable = TrainingKernels.Loaded(device) ? CheckKernel(device) : TrainingKernels.LoadFailure;
            _kernelServes = KernelUnavailable is null;
            return _kernelServes.Value;
        }
    }

    /// <summary>Null when the fused step agrees with the stock ops, else what differs. Three steps of a parameter of
    /// 37 blocks and a partial one (gradients of magnitudes 1e-4..1, one block of zero gradients, so an all-zero block
    /// of moments), weight decay on; before each step the fused optimizer takes the stock one's parameter and state, so
    /// that each step is compared from equal inputs. The kernel computes every quantity in the stock ops' fp32
    /// roundings, so it may differ only where nvcc contracts a product and a sum differently from ATen's kernels, by a
    /// rounding step: bounds |Δp| ≤ 1e-6·max|p| + 1e-5·lr, absmax within 1e-5 relative, and a code may differ only by
    /// one place in the sorted map (a moment one rounding step from a midpoint between two codes), in at most 1 value in
    /// 1,000. A wrong formula or table is off far beyond these. Inputs are deterministic (the random generators stay).</summary>
    static string? CheckKernel(Device device)
    {
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            const long n = 37 * BlockSize + 100;
            const double lr = 1e-2;
            var index = arange(n, dtype: float32, device: device);
            var blockScale = ((index / BlockSize).floor().remainder(5) - 4).mul_(Math.Log(10)).exp_();   // 1e-4 .. 1 by block
            var (pStock, gStock) = ((index * 0.37).sin() * 0.5, zeros(n, float32, device));
            var (pFused, gFused) = (pStock.clone(), zeros(n, float32, device));
            using var stock = new AdamW8bit([(pStock, gStock)], weightDecay: 0.01) { UseKernel = false };
            using var fused = new AdamW8bit([(pFused, gFused)], weightDecay: 0.01);
            double worstP = 0, worstAbsmax = 0;
            long differing = 0;
            for (int step = 1; step <= 3; step++)
            {
                gStock.copy_((index * (0.11 * step)).cos() * blockScale);
                gStock.narrow(0, 5 * BlockSize, BlockSize).zero_();
                gFused.copy_(gStock);
                pFused.copy_(pStock);
                foreach (var ((_, a), (_, b)) in stock.State().Zip(fused.State())) b.copy_(a);
                stock.StepCount = fused.StepCount = step;
                stock.Apply(lr, fused: false);
                fused.Apply(lr, fused: true);
                double bound = 1e-6 * pStock.abs().max().item<float>() + 1e-5 * lr;
                worstP = Math.Max(worstP, (pFused - pStock).abs().max().item<float>() / bound);
                foreach (var (s, f) in new[] { (stock._mAbsmax[0], fused._mAbsmax[0]), (stock._vAbsmax[0], fused._vAbsmax[0]) })
                    worstAbsmax = Math.Max(worstAbsmax, ((f - s).abs() / s.abs().clamp_min(1e-30)).max().item<float>());
                foreach (var (s, f, code) in new[] { (stock._mCodes[0], fused._mCodes[0], stock._signed), (stock._vCodes[0], fused._vCodes[0], stock._unsigned) })
                {
                    var (_, order) = code.sort();
                    var place = argsort(order);   // a code's place in the sorted map
                    var apart = (place.index_select(0, f.to(int64)) - place.index_select(0, s.to(int64))).abs();
                    if (apart.max().item<long>() > 1) return $"the fused 8-bit AdamW step picks a code more than one place from the stock one's (step {step})";
                    differing += apart.sum().item<long>();
                }
            }
            KernelCheckSummary = $"checked against the stock ops: parameters within {worstP:F2} of the bound, absmax {worstAbsmax:E1} relative, " +
                $"{differing} of {6 * n} codes one place apart";
            if (worstP > 1 || worstAbsmax > 1e-5 || differing * 1000 > 6 * n)
                return $"the fused 8-bit AdamW step disagrees with the stock ops ({KernelCheckSummary})";
            return null;
        }
        catch (Exception e)
        {
            return $"the fused 8-bit AdamW step is not usable here ({ErrorText.Message(e.Message, 200)})";
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
        foreach (var t in new[] { _signedTables, _unsignedTables }) { t?.Midpoints.Dispose(); t?.Order.Dispose(); }
    }
}
