using SharpTune.Models;
using SharpTune.Quantization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Quantization;

/// <summary>The quantized projection's product keeps no expanded weight for backward (it expands it again there):
/// its output and input gradient must be those of autograd's own linear over the same dense weight.</summary>
public class FrozenLinearTests
{
    static (Tensor Y, Tensor Grad) Run(Func<Tensor, Tensor> f, Tensor x0, Tensor g)
    {
        var x = x0.detach().requires_grad_(true);
        var y = f(x);
        y.backward([g]);
        return (y.detach(), x.grad!.detach().clone());
    }

    [Theory]
    [InlineData("nf4", true)]
    [InlineData("int8", false)]
    [InlineData("int8", true)]
    public void OutputAndInputGradientEqualAutogradsLinear(string kind, bool bias)
    {
        _ = TestPaths.Cpu;
        using var scope = NewDisposeScope();
        using var gen = new Generator(7);
        var dense = randn([48, 128], float32, generator: gen) * 0.02;
        using var weight = kind == "int8" ? (IFrozenWeight)Int8Weight.Quantize(dense) : FourBitWeight.Quantize("w", dense, kind);
        var b = bias ? randn([48], float32, generator: gen) : null;
        var x0 = randn([2, 5, 128], float32, generator: gen);
        var g = randn([2, 5, 48], float32, generator: gen);

        var (y, grad) = Run(x => FrozenLinear.Apply(weight, x, b), x0, g);
        var w = weight.Dense(float32);
        var (yRef, gradRef) = Run(x => F.linear(x, w, b), x0, g);

        // Same operations on the same values: equal up to the summation order of the matrix products (fp32, K = 48..128).
        Assert.True(y.allclose(yRef, rtol: 1e-5, atol: 1e-6), "outputs differ");
        Assert.True(grad.allclose(gradRef, rtol: 1e-5, atol: 1e-6), "input gradients differ");
        Assert.Equal(new long[] { 2, 5, 128 }, grad.shape);
    }

    [Fact]
    public void WithoutGradientItIsAPlainProduct()
    {
        _ = TestPaths.Cpu;
        using var scope = NewDisposeScope();
        using var weight = FourBitWeight.Quantize("w", randn([64, 64], float32) * 0.02, "nf4");
        var x = randn([3, 64], float32);
        using (no_grad())
        {
            var y = FrozenLinear.Apply(weight, x.requires_grad_(true), null);
            Assert.False(y.requires_grad);
        }
        var y2 = FrozenLinear.Apply(weight, randn([3, 64], float32), null);   // an input without gradient: no graph
        Assert.False(y2.requires_grad);
    }
}
