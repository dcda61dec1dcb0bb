using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Training;

/// <summary>The chunked loss's explicit cross-entropy gradient against autograd through libtorch's cross_entropy (the
/// path it replaced): same loss and same gradient of the logits, with ignored rows, on the CPU.</summary>
public class CausalLossTests
{
    static (Tensor Logits, Tensor Target) Case(ScalarType dtype)
    {
        var g = new Generator(11);
        var logits = (randn([37, 101], generator: g) * 4).to(dtype);
        var target = randint(0, 101, [37], generator: g);
        foreach (int row in new[] { 0, 5, 6, 36 }) target[row] = CausalLoss.IgnoreIndex;   // prompt tokens and the end
        return (logits, target);
    }

    static (double Loss, Tensor Grad) Autograd(Tensor logits, Tensor target, double normalizer)
    {
        var x = logits.detach().requires_grad_(true);
        var loss = F.cross_entropy(x.to(float32), target, ignore_index: CausalLoss.IgnoreIndex, reduction: nn.Reduction.Sum);
        (loss / normalizer).backward();
        return (loss.item<float>(), x.grad!.detach());
    }

    /// <summary>fp32: loss within 1e-6 relative, gradient within 1e-6 of its largest value (rounding order only).</summary>
    [Fact]
    public void ExplicitGradientEqualsAutogradsInFloat32()
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        using var scope = NewDisposeScope();
        var (logits, target) = Case(float32);
        var (refLoss, refGrad) = Autograd(logits, target, 23);
        var (loss, grad) = CausalLoss.CrossEntropyWithGradient(logits.clone(), target, 23);
        Assert.True(Math.Abs(loss.item<float>() - refLoss) <= 1e-6 * refLoss, $"loss {loss.item<float>()} vs {refLoss}");
        double scale = refGrad.abs().max().item<float>();
        double diff = (grad - refGrad).abs().max().item<float>();
        Assert.True(diff <= 1e-6 * scale, $"max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");
        Assert.Equal(0, grad[5].abs().max().item<float>());                  // an ignored row has no gradient
        Assert.True(Math.Abs(grad[1].sum().item<float>()) <= 1e-6 * scale);   // a scored row's gradient sums to 0 (softmax − onehot)
    }

    /// <summary>bf16 logits: both compute in fp32 and round the gradient to bf16 once, so they differ by at most one
    /// bf16 step (at most 2⁻⁷ of the value) where the fp32 values straddle a rounding boundary.</summary>
    [Fact]
    public void ExplicitGradientEqualsAutogradsInBFloat16()
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        using var scope = NewDisposeScope();
        var (logits, target) = Case(bfloat16);
        var (refLoss, refGrad) = Autograd(logits, target, 23);
        var (loss, grad) = CausalLoss.CrossEntropyWithGradient(logits.clone(), target, 23);
        Assert.Equal(ScalarType.BFloat16, grad.dtype);
        Assert.True(Math.Abs(loss.item<float>() - refLoss) <= 1e-6 * refLoss, $"loss {loss.item<float>()} vs {refLoss}");
        var r = refGrad.to(float32);
        double diff = ((grad.to(float32) - r).abs() - r.abs() * Math.Pow(2, -7)).max().item<float>();
        Assert.True(diff <= 1e-12, $"a gradient differs by more than one bf16 step: excess {diff:E2}");
    }
}
