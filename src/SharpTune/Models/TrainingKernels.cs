using System.Runtime.InteropServices;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Fused CUDA kernels with their own backward for the decoder's memory-bound parts in training
/// (TrainingKernels.cu, a native extension built on first use, <see cref="CudaExtension"/>):
/// - SwiGLU, silu(gate)·up: one pass forward instead of two kernels (five passes over [N, I]), one backward instead of
///   three, and no saved silu(gate) (autograd's product keeps it: 2·N·I bytes per layer).
/// - Rotary embeddings in the flash layout (B, T, heads, D): one kernel each way instead of four forward and about five
///   back (the backward is the rotation by the opposite angle, taken in the same roundings as autograd's).
/// - The loss's cross-entropy with its gradient written over the logits (<see cref="CrossEntropyInPlace"/>): no fp32 copy
///   of a chunk's logits, one read for the log-sum-exp and one read and write for the gradient.
/// Both keep the op-by-op forms' roundings in the activation dtype. Checked once per process on the GPU against the
/// op-by-op forms with autograd (values and gradients, <see cref="Check"/>); where the extension cannot be built (CPU,
/// no nvcc), disagrees, or SHARPTUNE_TRAINING_KERNELS=off, callers compute op by op.
/// Also plain entries whose callers check them against their own stock-op paths on first use: the compressed lm_head's
/// loss one slice of the head's rows at a time (<see cref="SlicedLse"/>, <see cref="SlicedSoftmaxGradInPlace"/>;
/// Training/CausalLoss) and the 8-bit AdamW step (<see cref="AdamW8bitStep"/>; Training/AdamW8bit).
/// </summary>
internal static unsafe class TrainingKernels
{
    /// <summary>SHARPTUNE_TRAINING_KERNELS=off keeps the op-by-op forms (to compare against them).</summary>
    public const string SwitchVariable = "SHARPTUNE_TRAINING_KERNELS";

    static readonly Lock Gate = new();
    static CudaExtension? _native;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr*, int> _swigluForward;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, IntPtr*, int> _swigluBackward;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, int, IntPtr*, int> _rope;
    static delegate* unmanaged<IntPtr, IntPtr, double, IntPtr*, int> _crossEntropy;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, int, IntPtr*, int> _ropePairs;   // RopePairs.cu; null: the element-wise kernel
    static delegate* unmanaged<IntPtr, IntPtr, long, IntPtr, IntPtr, IntPtr, int> _slicedLse;
    static delegate* unmanaged<IntPtr, IntPtr, long, IntPtr, double, int> _slicedSoftmaxGrad;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr,
        float, float, float, float, float, float, float, int, int> _adamW8bit;
    static bool? _available;

    /// <summary>Why the kernels are off in this process (null while they are on or not yet tried).</summary>
    public static string? Unavailable { get; private set; }

    /// <summary>The check's largest differences from the op-by-op forms, for the run's log.</summary>
    public static string? CheckSummary { get; private set; }

    /// <summary>One line for the run's log, after trying the kernels for <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static string Describe(Device device, ScalarType dtype, Action<string>? onBuild = null) => Available(device, dtype, onBuild)
        ? $"SwiGLU and rotary embeddings (and the loss's cross-entropy): fused CUDA kernels with their backward ({CheckSummary})"
        : $"SwiGLU and rotary embeddings (and the loss's cross-entropy): op by op ({Unavailable ?? "needs bf16 or fp16"})";

    /// <summary>Whether the kernels serve <paramref name="dtype"/> activations on <paramref name="device"/>; the first CUDA
    /// call builds (about a minute, once per machine; <paramref name="onBuild"/> hears of it) and checks them.</summary>
    public static bool Available(Device device, ScalarType dtype, Action<string>? onBuild = null)
    {
        if (device.type != DeviceType.CUDA || dtype is not (ScalarType.BFloat16 or ScalarType.Float16)) return false;
        if (_available is { } known) return known;
        lock (Gate)
        {
            if (_available is { } again) return again;
            Unavailable = Load(onBuild) ?? Check(device, dtype);
            if (Unavailable is null) CheckSummary += "; " + LoadRopePairs(device, dtype, onBuild);
            _available = Unavailable is null;
            return _available.Value;
        }
    }

    /// <summary>Whether the extension is built and loaded for CUDA <paramref name="device"/>, whatever the activation dtype,
    /// for the entries whose callers check them against their own stock-op path (<see cref="AdamW8bitStep"/>, the sliced
    /// loss); <see cref="LoadFailure"/> says why not.</summary>
    public static bool Loaded(Device device, Action<string>? onBuild = null)
    {
        if (device.type != DeviceType.CUDA) return false;
        lock (Gate) return Load(onBuild) is null;
    }

    /// <summary>Why the extension could not be loaded (null while it is, or before the first try).</summary>
    public static string? LoadFailure { get; private set; }
    static bool _loadTried;

    /// <summary>Builds and loads the extension once per process (under <see cref="Gate"/>); null when it is loaded.</summary>
    static string? Load(Action<string>? onBuild)
    {
        if (_loadTried) return LoadFailure;
        _loadTried = true;
        if (string.Equals(Environment.GetEnvironmentVariable(SwitchVariable), "off", StringComparison.OrdinalIgnoreCase))
            return LoadFailure = $"{SwitchVariable}=off";
        using var stream = typeof(TrainingKernels).Assembly.GetManifestResourceStream("SharpTune.Models.TrainingKernels.cu")
            ?? throw new InvalidOperationException("TrainingKernels.cu is not embedded");
        _native = CudaExtension.Load("training_kernels", new StreamReader(stream).ReadToEnd(), out string why, onBuild);
        if (_native is null) return LoadFailure = why;
        _swigluForward = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, int>)_native.Function("st_swiglu_forward");
        _swigluBackward = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, IntPtr*, int>)_native.Function("st_swiglu_backward");
        _rope = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, int, IntPtr*, int>)_native.Function("st_rope");
        _crossEntropy = (delegate* unmanaged<IntPtr, IntPtr, double, IntPtr*, int>)_native.Function("st_cross_entropy_inplace");
        _slicedLse = (delegate* unmanaged<IntPtr, IntPtr, long, IntPtr, IntPtr, IntPtr, int>)_native.Function("st_sliced_lse");
        _slicedSoftmaxGrad = (delegate* unmanaged<IntPtr, IntPtr, long, IntPtr, double, int>)_native.Function("st_sliced_softmax_grad");
        _adamW8bit = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr,
            float, float, float, float, float, float, float, int, int>)_native.Function("st_adamw8bit_step");
        return null;
    }

    /// <summary>silu(gate)·up, differentiable in both where autograd records.</summary>
    public static Tensor SwiGlu(Tensor gate, Tensor up)
    {
        if (!is_grad_enabled() || !(gate.requires_grad || up.requires_grad)) return SwiGluForward(gate, up);
        SwiGluFunction.RethrowFailure();
        using var scope = NewDisposeScope();   // apply() allocates a spare output copy: let the scope free it
        return SwiGluFunction.apply(gate, up)[0].MoveToOuterDisposeScope();
    }

    /// <summary>Whether <see cref="Rope"/> takes these tensors: x (B, T, heads, D) contiguous, cos and signed sin
    /// [B, T, 1, D] contiguous, one dtype.</summary>
    public static bool RopeFits(Tensor x, Tensor cos, Tensor signedSin) =>
        x.dim() == 4 && cos.dim() == 4 && cos.shape[2] == 1 && cos.shape[0] == x.shape[0] && cos.shape[1] == x.shape[1] &&
        cos.shape[3] == x.shape[3] && signedSin.shape.SequenceEqual(cos.shape) && x.is_contiguous() && cos.is_contiguous() &&
        signedSin.is_contiguous() && x.dtype == cos.dtype && x.dtype == signedSin.dtype;

    /// <summary>x (B, T, heads, D) rotated as <see cref="Models.Rope.Apply"/> does, differentiable in x.</summary>
    public static Tensor Rope(Tensor x, Tensor cos, Tensor signedSin)
    {
        if (!is_grad_enabled() || !x.requires_grad) return RopeKernel(x, cos, signedSin, backward: false);
        RopeFunction.RethrowFailure();
        using var scope = NewDisposeScope();
        return RopeFunction.apply(x, cos, signedSin)[0].MoveToOuterDisposeScope();
    }

    /// <summary>The gradient of x for the gradient of <see cref="Rope"/>'s output (the rotation by the opposite angle), for a
    /// backward taken by hand: the kernel alone, where <see cref="Available"/> and <see cref="RopeFits"/>.</summary>
    internal static Tensor RopeBackward(Tensor grad, Tensor cos, Tensor signedSin) => RopeKernel(grad, cos, signedSin, backward: true);

    /// <summary>Cross-entropy of logits [N, V] (contiguous, activation dtype, no autograd) against targets [N] (int64, -100 =
    /// not scored): overwrites the logits with the gradient of sum(CE over scored rows) / <paramref name="normalizer"/>,
    /// (softmax − onehot(target)) / normalizer on scored rows and 0 on the others, computed in fp32 and rounded once; returns
    /// each row's CE [N] fp32 (0 where not scored). The quantities of the op-by-op form in CausalLoss.</summary>
    public static Tensor CrossEntropyInPlace(Tensor logits, Tensor target, double normalizer)
    {
        IntPtr loss;
        _native!.Check(_crossEntropy(logits.Handle, target.Handle, normalizer, &loss));
        return Tensor.UnsafeCreateTensor(loss);
    }

    /// <summary>One slice of a compressed lm_head's loss: folds logits [N, C] (contiguous, activation dtype) of vocabulary
    /// columns [<paramref name="start"/>, start + C) into each row's running log-sum-exp (<paramref name="max"/> and
    /// <paramref name="sum"/> of exp(x − max), [N] fp32) and sets <paramref name="picked"/> [N] to the logit of each row's
    /// target that lies in the slice; in place, one launch.</summary>
    public static void SlicedLse(Tensor logits, Tensor target, long start, Tensor max, Tensor sum, Tensor picked) =>
        _native!.Check(_slicedLse(logits.Handle, target.Handle, start, max.Handle, sum.Handle, picked.Handle));

    /// <summary>Overwrites one slice's logits [N, C] (columns [<paramref name="start"/>, start + C)) with their gradient,
    /// (exp(x − lse) − onehot(target)) / normalizer on scored rows and 0 on the others, in fp32, rounded once.</summary>
    public static void SlicedSoftmaxGradInPlace(Tensor logits, Tensor target, long start, Tensor lse, double normalizer) =>
        _native!.Check(_slicedSoftmaxGrad(logits.Handle, target.Handle, start, lse.Handle, normalizer));

    /// <summary>A block-wise 8-bit code for <see cref="AdamW8bitStep"/>: its values [256] fp32, the midpoints between its
    /// sorted values [255] fp32, and the sort order [256] uint8 (a value's code: order[count of midpoints below it]).</summary>
    public readonly record struct ByteCode(Tensor Values, Tensor Midpoints, Tensor Order);

    /// <summary>The scalars of one AdamW step, each rounded to fp32 as the stock op that takes it rounds it.</summary>
    public readonly record struct AdamScalars(float Decay, float MomentWeight, float Beta2, float OneMinusBeta2, float InverseBias2,
        float Eps, float StepSize, bool DecayOn);

    /// <summary>One 8-bit AdamW step over a flat fp32 parameter and its gradient [n], in place: dequantize m and v (codes
    /// [n] uint8, absmax per 256 values fp32), AdamW's update, new absmax, nearest codes. One launch, no host sync.</summary>
    public static void AdamW8bitStep(Tensor p, Tensor g, Tensor mCodes, Tensor mAbsmax, Tensor vCodes, Tensor vAbsmax,
        ByteCode signedCode, ByteCode unsignedCode, AdamScalars s) =>
        _native!.Check(_adamW8bit(p.Handle, g.Handle, mCodes.Handle, mAbsmax.Handle, vCodes.Handle, vAbsmax.Handle,
            signedCode.Values.Handle, signedCode.Midpoints.Handle, signedCode.Order.Handle,
            unsignedCode.Values.Handle, unsignedCode.Midpoints.Handle, unsignedCode.Order.Handle,
            s.Decay, s.MomentWeight, s.Beta2, s.OneMinusBeta2, s.InverseBias2, s.Eps, s.StepSize, s.DecayOn ? 1 : 0));

    static Tensor SwiGluForward(Tensor gate, Tensor up)
    {
        IntPtr y;
        _native!.Check(_swigluForward(gate.Handle, up.Handle, &y));
        return Tensor.UnsafeCreateTensor(y);
    }

    /// <summary>The gradients of gate and up for the gradient of silu(gate)·up: SwiGLU's backward kernel alone (for a
    /// backward taken by hand; only where <see cref="Available"/>).</summary>
    internal static (Tensor GateGrad, Tensor UpGrad) SwiGluBackward(Tensor grad, Tensor gate, Tensor up)
    {
        IntPtr dg, du;
        _native!.Check(_swigluBackward(grad.Handle, gate.Handle, up.Handle, &dg, &du));
        return (Tensor.UnsafeCreateTensor(dg), Tensor.UnsafeCreateTensor(du));
    }

    static Tensor RopeKernel(Tensor x, Tensor cos, Tensor signedSin, bool backward)
    {
        IntPtr y;
        if (_ropePairs != null) _ropeExtension!.Check(_ropePairs(x.Handle, cos.Handle, signedSin.Handle, backward ? 1 : 0, &y));
        else _native!.Check(_rope(x.Handle, cos.Handle, signedSin.Handle, backward ? 1 : 0, &y));
        return Tensor.UnsafeCreateTensor(y);
    }

    static CudaExtension? _ropeExtension;

    /// <summary>Builds RopePairs.cu (its own extension, so that a failure there costs only itself) and takes it for the
    /// rotary embeddings if it gives exactly what the element-wise kernel gives (same roundings, forward and backward) on
    /// the Llama head size and an odd one; says which kernel serves.</summary>
    static string LoadRopePairs(Device device, ScalarType dtype, Action<string>? onBuild)
    {
        using var stream = typeof(TrainingKernels).Assembly.GetManifestResourceStream("SharpTune.Models.RopePairs.cu")
            ?? throw new InvalidOperationException("RopePairs.cu is not embedded");
        _ropeExtension = CudaExtension.Load("training_rope_pairs", new StreamReader(stream).ReadToEnd(), out string why, onBuild);
        if (_ropeExtension is null) return $"rope: element-wise kernel (the paired one is unavailable: {why})";
        var candidate = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, int, IntPtr*, int>)_ropeExtension.Function("st_rope_pairs");
        try
        {
            using var scope = NewDisposeScope();
            foreach (var (b, t, heads, d) in new[] { (2L, 5L, 3L, 128L), (1L, 3L, 2L, 6L) })
            {
                var x = ((arange(b * t * heads * d, dtype: float32, device: device).view(b, t, heads, d) * 0.37).sin() * 3).to(dtype);
                var angle = arange(b * t * d, dtype: float32, device: device).view(b, t, 1, d) * 0.05;
                var cos = angle.cos().to(dtype);
                var sin = angle.sin().to(dtype);
                sin.narrow(-1, 0, d / 2).neg_();
                foreach (int backward in new[] { 0, 1 })
                {
                    IntPtr y;
                    _ropeExtension.Check(candidate(x.Handle, cos.Handle, sin.Handle, backward, &y));
                    using var paired = Tensor.UnsafeCreateTensor(y);
                    using var reference = RopeKernel(x, cos, sin, backward == 1);
                    if ((paired != reference).any().item<bool>())
                        return $"rope: element-wise kernel (the paired one differs from it at ({b}, {t}, {heads}, {d}), backward {backward})";
                }
            }
        }
        catch (Exception e)
        {
            return $"rope: element-wise kernel (the paired one failed: {ErrorText.Message(e.Message, 200)})";
        }
        _ropePairs = candidate;
        return "rope: paired kernel (equal to the element-wise one)";
    }

    sealed class SwiGluFunction : autograd.MultiTensorFunction<SwiGluFunction>
    {
        static readonly BackwardResults Results = new("the fused SwiGLU's backward failed");
        public override string Name => "FusedSwiGlu";
        public static void RethrowFailure() => Results.RethrowFailure();

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (gate, up) = ((Tensor)vars[0], (Tensor)vars[1]);
            ctx.save_for_backward([gate, up]);
            return [SwiGluForward(gate, up)];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            Results.ReleaseEarlier();
            List<Tensor> result;
            try
            {
                using var scope = NewDisposeScope();   // backward runs on autograd's thread: its own scope
                var saved = ctx.get_saved_variables();
                var (dg, du) = SwiGluBackward(grads[0], saved[0], saved[1]);
                result = [dg.MoveToOuterDisposeScope(), du.MoveToOuterDisposeScope()];
            }
            catch (Exception e)
            {
                Results.Fail(e);
                result = [zeros_like(grads[0]), zeros_like(grads[0])];
            }
            foreach (var g in grads) g?.Dispose();   // handles made for us on autograd's thread, outside any scope
            Results.Keep(result);
            return result;
        }
    }

    sealed class RopeFunction : autograd.MultiTensorFunction<RopeFunction>
    {
        static readonly BackwardResults Results = new("the fused rotary embedding's backward failed");
        public override string Name => "FusedRope";
        public static void RethrowFailure() => Results.RethrowFailure();

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, cos, sin) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
            ctx.save_for_backward([cos, sin]);
            return [RopeKernel(x, cos, sin, backward: false)];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            Results.ReleaseEarlier();
            Tensor gx;
            try
            {
                using var scope = NewDisposeScope();
                var saved = ctx.get_saved_variables();
                gx = RopeKernel(grads[0], saved[0], saved[1], backward: true).MoveToOuterDisposeScope();
            }
            catch (Exception e)
            {
                Results.Fail(e);
                gx = zeros_like(grads[0]);
            }
            foreach (var g in grads) g?.Dispose();
            Results.Keep([gx]);
            return [gx, null!, null!];
        }
    }

    /// <summary>Null when the kernels agree with the op-by-op forms under autograd (values and gradients), else what
    /// differs. The loss, summed in fp32 from the same bf16 logits, agrees to 1e-5 relative (only the order of the sums
    /// differs); its gradient is rounded once to bf16 like the op-by-op one. Inputs are deterministic (the check must not move the random generators). Bound: relative error in norm
    /// below 1e-2 for values and gradients; the kernels keep the op-by-op roundings, so they differ by at most a rounding
    /// step here and there (bf16: 2⁻⁸ relative), while a wrong formula is off by order 1.</summary>
    static string? Check(Device device, ScalarType dtype)
    {
        try
        {
            using var scope = NewDisposeScope();
            double Rel(Tensor a, Tensor b) => ((a.to(float32) - b.to(float32)).norm() / b.to(float32).norm()).item<float>();
            double Max(Tensor a, Tensor b) => (a.to(float32) - b.to(float32)).abs().max().item<float>();

            // SwiGLU on [67, 300] (odd sizes: the vectorized body and the scalar tail), gate spanning silu's bend.
            var gate = ((arange(67 * 300, dtype: float32, device: device).view(67, 300) * 0.013).sin() * 6).to(dtype).requires_grad_(true);
            var up = ((arange(67 * 300, dtype: float32, device: device).view(67, 300) * 0.007).cos() * 2).to(dtype).requires_grad_(true);
            var upstream = ((arange(67 * 300, dtype: float32, device: device).view(67, 300) * 0.031).sin()).to(dtype);
            Tensor fused, reference;
            using (enable_grad())
            {
                fused = SwiGlu(gate, up);
                reference = nn.functional.silu(gate) * up;
            }
            var gFused = autograd.grad([fused], [gate, up], [upstream]);
            var gRef = autograd.grad([reference], [gate, up], [upstream]);
            double swiglu = Rel(fused, reference), swigluGate = Rel(gFused[0], gRef[0]), swigluUp = Rel(gFused[1], gRef[1]);
            double swigluMax = Max(fused, reference);

            // Rope on (B, T, heads, D) = (2, 5, 3, 8) with cos and signed sin [2, 5, 1, 8].
            var x = ((arange(2 * 5 * 3 * 8, dtype: float32, device: device).view(2, 5, 3, 8) * 0.23).sin()).to(dtype).requires_grad_(true);
            var angle = arange(2 * 5 * 8, dtype: float32, device: device).view(2, 5, 1, 8) * 0.05;
            var cos = angle.cos().to(dtype);
            var sin = angle.sin().to(dtype);
            sin.narrow(-1, 0, 4).neg_();
            var ropeUpstream = ((arange(2 * 5 * 3 * 8, dtype: float32, device: device).view(2, 5, 3, 8) * 0.11).cos()).to(dtype);
            Tensor rFused, rRef;
            using (enable_grad())
            {
                rFused = Rope(x, cos, sin);
                rRef = x * cos + x.roll(4, -1) * sin;   // Rope.Apply's op-by-op form
            }
            var rgFused = autograd.grad([rFused], [x], [ropeUpstream])[0];
            var rgRef = autograd.grad([rRef], [x], [ropeUpstream])[0];
            double rope = Rel(rFused, rRef), ropeGrad = Rel(rgFused, rgRef);

            // Cross-entropy on [5, 1003] logits (odd vocabulary: the vectorized body and the scalar tail), one row not
            // scored, against autograd through cross_entropy in fp32: sum over scored rows / 3.
            var logits = ((arange(5 * 1003, dtype: float32, device: device).view(5, 1003) * 0.37).sin() * 8).to(dtype);
            var target = tensor(new long[] { 7, -100, 1002, 0, 500 }, device: device);
            var ceLoss = CrossEntropyInPlace(logits.clone(), target, 3).sum();
            var ceGrad = logits.clone();
            CrossEntropyInPlace(ceGrad, target, 3).Dispose();
            var reference32 = logits.to(float32).requires_grad_(true);
            Tensor ceRef;
            using (enable_grad()) ceRef = nn.functional.cross_entropy(reference32, target, ignore_index: -100, reduction: nn.Reduction.Sum);
            var ceGradRef = autograd.grad([ceRef / 3], [reference32])[0];
            double ce = Math.Abs(ceLoss.item<float>() - ceRef.item<float>()) / Math.Abs(ceRef.item<float>()), ceG = Rel(ceGrad, ceGradRef);

            CheckSummary = $"checked against op by op, relative error: SwiGLU {swiglu:E1} (max abs {swigluMax:E1}), gradients {swigluGate:E1}/{swigluUp:E1}; " +
                $"rope {rope:E1}, gradient {ropeGrad:E1}; cross-entropy {ce:E1}, gradient {ceG:E1}";
            const double bound = 1e-2;
            if (!(swiglu < bound && swigluGate < bound && swigluUp < bound && rope < bound && ropeGrad < bound && ce < 1e-5 && ceG < bound))
                return $"the fused kernels disagree with the op-by-op forms ({CheckSummary})";
            SwiGluFunction.RethrowFailure();
            RopeFunction.RethrowFailure();
            return null;
        }
        catch (Exception e)
        {
            return $"the fused kernels are not usable here ({ErrorText.Message(e.Message, 200)})";
        }
    }
}
