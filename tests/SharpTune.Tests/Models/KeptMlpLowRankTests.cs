using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Layers that keep their MLP's gate and up outputs take the LoRA gradients of gate, up and down by hand
/// (Linear.LowRank: ∂B = s·Gᵀ(x Aᵀ), ∂A = (s·G B)ᵀ x, and x's share (s·G B) A) instead of through autograd over the adapter
/// terms. Both forms must give the same loss and gradients: in fp32 the same products in another order (1e-5 of each
/// gradient's largest entry), in bf16 with the step's copies within bf16 rounding of the products (2e-2). The hand path
/// must actually run (its factors are asked for) and the autograd one must not (no factors).</summary>
public class KeptMlpLowRankTests
{
    [Theory]
    [InlineData(false, 1e-5)]
    [InlineData(true, 2e-2)]
    public void HandGradientsEqualAutogradOnes(bool bf16, double tolerance)
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = ckpt.LoadModel(TestPaths.Cpu, bf16 ? bfloat16 : float32);
        using var adapter = LoraAdapter.Load(Path.Combine(TestPaths.Model("qwen2"), "peft_adapter"), model);
        using (no_grad()) foreach (var pair in adapter.Pairs) pair.B.add_(0.05);   // B ≠ 0 everywhere: every path carries gradient
        model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, keepMlp: 2, trainableOfProjection: adapter.TrainableOf);
        var factors = model.Projections.ToDictionary(p => p, p => p.LowRank);
        Assert.All(model.Layers, l => Assert.NotNull(l.Down.LowRank));
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 5, 9, 33, 41, 7, 8, 100, 17, 3, 250, 12, 6 }).view(2, 6);

        (float Loss, Tensor Grads) Pass(bool hand)
        {
            adapter.Gradients.zero_();
            if (bf16) adapter.BeginStep(bfloat16);
            if (hand)   // what the hand path checks before it runs: the factors are the tensors whose gradients autograd collects
                foreach (var p in model.Layers.SelectMany(l => new[] { l.Gate, l.Up, l.Down }))
                {
                    var f = factors[p]!();
                    Assert.Equal([f.A, f.B], adapter.TrainableOf(p), ReferenceEqualityComparer.Instance);
                }
            var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 10);
            model.Checkpointing!.AfterBackward();
            if (bf16) { adapter.CollectGradients(); adapter.EndStep(); }
            return (loss.item<float>(), adapter.Gradients.clone());
        }

        int asked = 0;   // counted from here: the checks in Pass call the unwrapped factors
        foreach (var (p, f) in factors) p.LowRank = () => { asked++; return f!(); };
        var (handLoss, handGrads) = Pass(hand: true);
        Assert.Equal(3 * model.Layers.Length, asked);   // gate, up and down of each layer, once
        foreach (var p in factors.Keys) p.LowRank = null;
        var (autoLoss, autoGrads) = Pass(hand: false);
        Assert.Equal(autoLoss, handLoss, 4);
        double scale = autoGrads.abs().max().item<float>();
        Assert.True(scale > 0, "the reference gradient is zero");
        double diff = (handGrads - autoGrads).abs().max().item<float>();
        Assert.True(diff <= tolerance * scale, $"max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");
        foreach (var (p, f) in factors) p.LowRank = f;
    }
}
