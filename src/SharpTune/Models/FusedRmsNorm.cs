using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// RMSNorm through libtorch's own op (aten::rms_norm: on CUDA one fused kernel forward and one backward, computing in
/// fp32 and rounding once), reached through TorchScript because TorchSharp does not bind it. The eager formula
/// (<see cref="CausalLM.RmsNorm"/>) takes eight kernels forward, about twelve backward, and keeps two fp32 copies of
/// its input for backward. The fused op rounds once where HF's formula rounds twice (the normalized value to the
/// activation dtype, then its product with the weight): the two differ by at most about one unit in the last place.
/// Checked once per process against the eager formula (values and gradients); used on CUDA in bf16/fp16 only, so CPU
/// and fp32 results stay HF's exactly. SHARPTUNE_RMSNORM=eager turns it off.
/// </summary>
public static class FusedRmsNorm
{
    const string Script = """
        def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
            return torch.rms_norm(x, [weight.size(0)], weight, eps)

        """;   // TorchScript's parser wants the source to end with a newline

    static readonly Lock Gate = new();
    static jit.CompilationUnit? _unit;
    static bool? _available;

    /// <summary>Why the fused op is not used (null while unchecked or when it is used).</summary>
    public static string? Unavailable { get; private set; }

    /// <summary>Whether RMSNorm of <paramref name="dtype"/> activations on <paramref name="device"/> runs fused; the
    /// first call on a CUDA device compiles and checks it.</summary>
    public static bool Available(Device device, ScalarType dtype)
    {
        if (device.type != DeviceType.CUDA || dtype is not (ScalarType.BFloat16 or ScalarType.Float16)) return false;
        lock (Gate)
        {
            _available ??= Check(device, dtype);
            return _available.Value;
        }
    }

    /// <summary>weight ⊙ x / √(mean(x²) + eps) over the last dimension, in x's dtype.</summary>
    public static Tensor Apply(Tensor x, Tensor weight, double eps) => (Tensor)_unit!.invoke("rms_norm", x, weight, eps);

    /// <summary>The TorchScript function (compiling resolves the op's schema, also where no GPU is).</summary>
    internal static jit.CompilationUnit Compile() => jit.compile(Script);

    /// <summary>HF's formula: normalized in fp32, rounded to x's dtype, times the weight.</summary>
    internal static Tensor Eager(Tensor x, Tensor weight, double eps)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(float32);
        var normed = xf * rsqrt(xf.pow(2).mean([-1], keepdim: true) + eps);
        return (weight * normed.to(x.dtype)).MoveToOuterDisposeScope();
    }

    static bool Check(Device device, ScalarType dtype)
    {
        if (Environment.GetEnvironmentVariable("SHARPTUNE_RMSNORM") is "eager")
        {
            Unavailable = "SHARPTUNE_RMSNORM=eager";
            return false;
        }
        try
        {
            _unit = Compile();
            using var scope = NewDisposeScope();
            // The first caller may be generation under no_grad (where the inference kernels are off): without grad
            // mode the check's autograd.grad aborts the process inside libtorch instead of throwing.
            using var grad = enable_grad();
            var x = (randn([64, 256], float32, device) * 3).to(dtype).requires_grad_(true);
            var w = (rand([256], float32, device) + 0.5).to(dtype);
            var upstream = randn([64, 256], float32, device).to(dtype);
            var fast = Apply(x, w, 1e-6);
            var gFast = autograd.grad([fast], [x], [upstream])[0];
            var reference = Eager(x, w, 1e-6);
            var gRef = autograd.grad([reference], [x], [upstream])[0];
            double Rel(Tensor a, Tensor b) => ((a.to(float32) - b.to(float32)).norm() / b.to(float32).norm()).item<float>();
            double errOut = Rel(fast, reference), errGrad = Rel(gFast, gRef);
            // bf16 keeps 8 bits: one rounding apart is ~2e-3 relative in norm; a wrong op is off by order 1.
            if (!(errOut < 1e-2 && errGrad < 2e-2))
            {
                Unavailable = $"the fused op disagrees with the eager formula (relative error {errOut:g2} in values, {errGrad:g2} in gradients)";
                return false;
            }
            return true;
        }
        catch (Exception e)
        {
            Unavailable = $"the fused op is not usable here ({e.Message.Split('\n')[0].Trim()})";
            return false;
        }
    }
}
