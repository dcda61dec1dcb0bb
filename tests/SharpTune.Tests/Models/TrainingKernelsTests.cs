using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Models;

/// <summary>The fused training kernels (TrainingKernels.cu) run only on CUDA, where they are checked at first use against
/// the op-by-op forms under autograd (values and gradients; the trainer logs the differences). Here, on the CPU: the
/// fallback (the kernels are off and the training forward is the op-by-op one), and the backward formulas the kernels
/// implement, written op by op, against autograd of the forward forms: exact for rope in bf16 (the same roundings in the
/// same order), 1e-6 relative for SwiGLU in fp32 (the closed form of silu's derivative against autograd's).</summary>
public class TrainingKernelsTests
{
    [Fact]
    public void CpuTrainsWithTheOpByOpForms()
    {
        var cpu = TestPaths.Cpu;   // loads libtorch
        Assert.False(TrainingKernels.Available(cpu, bfloat16));
        Assert.False(TrainingKernels.Available(cpu, float32));
        using var scope = NewDisposeScope();
        using var gen = new Generator(11);
        var x = randn([2, 5, 3, 8], generator: gen).to(bfloat16);
        var angle = arange(2 * 5 * 8, dtype: float32).view(2, 5, 1, 8) * 0.1;
        var (cos, sin) = (angle.cos().to(bfloat16), angle.sin().to(bfloat16));
        Assert.True(Rope.Apply(x, cos, sin, training: true).equal(x * cos + x.roll(4, -1) * sin).all().item<bool>());
        var gate = randn([4, 6], generator: gen);
        var up = randn([4, 6], generator: gen);
        Assert.True(CausalLM.MlpActivation(gate, up, training: true).equal(F.silu(gate) * up).all().item<bool>());
    }

    [Fact]
    public void RopeBackwardIsTheKernelsFormula()
    {
        _ = TestPaths.Cpu;   // loads libtorch before any torch call
        using var scope = NewDisposeScope();
        using var gen = new Generator(5);
        const int D = 16;
        var x = randn([2, 7, 3, D], generator: gen).to(bfloat16).requires_grad_(true);   // (B, T, heads, D)
        var angle = arange(2 * 7 * D, dtype: float32).view(2, 7, 1, D) * 0.07;
        var cos = angle.cos().to(bfloat16);
        var sin = angle.sin().to(bfloat16);
        sin.narrow(-1, 0, D / 2).neg_();   // signed sin, as Rope.CosSin makes it
        var g = randn([2, 7, 3, D], generator: gen).to(bfloat16);
        var autogradGrad = autograd.grad([Rope.Apply(x, cos, sin)], [x], [g])[0];
        // The kernel's backward: gx[d] = round(g[d]·cos[d]) + round(g[p]·sin[p]), p = d ± D/2 (roll by D/2 is its own inverse).
        var formula = g * cos + (g * sin).roll(D / 2, -1);
        Assert.True(autogradGrad.equal(formula).all().item<bool>(), "rope backward differs from the kernel's formula");
        // Not the forward rotation applied to g (a wrong sign would give this):
        Assert.False(autogradGrad.equal(g * cos + g.roll(D / 2, -1) * sin).all().item<bool>());
    }

    [Fact]
    public void SwiGluBackwardIsTheKernelsFormula()
    {
        _ = TestPaths.Cpu;
        using var scope = NewDisposeScope();
        using var gen = new Generator(9);
        var gate = (randn([5, 40], generator: gen) * 4).requires_grad_(true);
        var up = randn([5, 40], generator: gen).requires_grad_(true);
        var dy = randn([5, 40], generator: gen);
        var grads = autograd.grad([F.silu(gate) * up], [gate, up], [dy]);
        // The kernel's backward: du = dy·silu(g); dg = (dy·u)·s·(1 + g·(1 − s)), s = sigmoid(g).
        var s = gate.detach().sigmoid();
        var du = dy * F.silu(gate.detach());
        var dg = dy * up.detach() * s * (1 + gate.detach() * (1 - s));
        double Rel(Tensor a, Tensor b) => ((a - b).norm() / b.norm()).item<float>();
        Assert.True(Rel(du, grads[1]) < 1e-6, $"up gradient: {Rel(du, grads[1]):E2}");
        Assert.True(Rel(dg, grads[0]) < 1e-6, $"gate gradient: {Rel(dg, grads[0]):E2}");
    }
}
