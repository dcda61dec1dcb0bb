using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>The TorchScript that reaches libtorch's rms_norm (fused on a GPU): compiled and run here on the CPU, where
/// aten::rms_norm is the same formula as HF's, so values and gradients agree to fp32 rounding (about 1e-7 relative;
/// the bounds, 1e-5 and 1e-4, leave room for other SIMD widths and summation orders, and a wrong eps misses by 0.5); the
/// model itself keeps the eager formula on the CPU.</summary>
public class FusedRmsNormTests
{
    [Fact]
    public void ScriptComputesHfRmsNormWithItsGradients()
    {
        var cpu = TestPaths.Cpu;   // loads libtorch
        Assert.False(FusedRmsNorm.Available(cpu, float32));
        Assert.False(FusedRmsNorm.Available(cpu, bfloat16));
        using var unit = FusedRmsNorm.Compile();
        using var scope = NewDisposeScope();
        using var gen = new Generator(7);
        var x = (randn([3, 5, 48], generator: gen) * 4).requires_grad_(true);
        var w = rand([48], generator: gen) + 0.5;
        var upstream = randn([3, 5, 48], generator: gen);
        var fused = (Tensor)unit.invoke("rms_norm", x, w, 1e-5);
        var gFused = autograd.grad([fused], [x], [upstream])[0];
        var eager = FusedRmsNorm.Eager(x, w, 1e-5);
        var gEager = autograd.grad([eager], [x], [upstream])[0];
        double Rel(Tensor a, Tensor b) => ((a - b).norm() / b.norm()).item<float>();
        Assert.True(Rel(fused, eager) < 1e-5, $"values: {Rel(fused, eager):E2}");
        Assert.True(Rel(gFused, gEager) < 1e-4, $"gradients: {Rel(gFused, gEager):E2}");
        // eps matters (a wrong argument order or a default eps would show): rows of zeros normalize to zero either way,
        // so compare a small-magnitude row where eps dominates.
        var small = full([1, 48], 1e-3f);
        var withEps = (Tensor)unit.invoke("rms_norm", small, w, 1.0);
        Assert.True(Rel(withEps, FusedRmsNorm.Eager(small, w, 1.0)) < 1e-5);
        Assert.True(Rel(withEps, FusedRmsNorm.Eager(small, w, 1e-6)) > 0.5);
    }
}
