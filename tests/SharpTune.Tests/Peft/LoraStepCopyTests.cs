using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>LoRA in a bf16 training step uses copies of A and B taken once per step (BeginStep) instead of casting at
/// each use: the loss and the fp32 gradients must be those of the casting path, with and without activation
/// checkpointing, and a step after the values changed must see the new values. Both paths run the same bf16 kernels
/// on the same inputs, so they agree to a small fraction of bf16 rounding (1e-3 of each gradient's largest entry).</summary>
public class LoraStepCopyTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    [InlineData(true, 2)]   // both layers keep their MLP's gate and up outputs
    public void StepCopiesGiveTheCastingPathsLossAndGradients(bool checkpointing, int keepMlp = 0)
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = ckpt.LoadModel(TestPaths.Cpu, bfloat16);
        using var adapter = LoraAdapter.Load(Path.Combine(TestPaths.Model("qwen2"), "peft_adapter"), model);
        if (checkpointing) model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, keepMlp: keepMlp, trainableOfProjection: adapter.TrainableOf);
        // Kept MLPs take their LoRA gradients by hand when the factors are in the activations' dtype (the copies), which the
        // casting path's fp32 factors are not: both through autograd here, so that the same kernels run (the hand form
        // against autograd's: KeptMlpLowRankTests).
        foreach (var p in model.Projections) p.LowRank = null;
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 5, 9, 33, 41, 7, 8, 100, 17, 3, 250, 12, 6 }).view(2, 6);

        (float Loss, Tensor Grads) Pass(bool copies)
        {
            adapter.Gradients.zero_();
            if (copies)
            {
                adapter.BeginStep(bfloat16);
                Assert.All(adapter.TrainableOf(model.Layers[0]), t => Assert.Equal(ScalarType.BFloat16, t.dtype));   // the copies are in use
            }
            var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 10);
            model.Checkpointing?.AfterBackward();
            if (copies) { adapter.CollectGradients(); adapter.EndStep(); }
            return (loss.item<float>(), adapter.Gradients.clone());
        }

        var (castLoss, castGrads) = Pass(copies: false);
        var (copyLoss, copyGrads) = Pass(copies: true);
        Assert.Equal(castLoss, copyLoss, 3);
        double scale = castGrads.abs().max().item<float>();
        Assert.True(scale > 0, "the reference gradient is zero");
        double diff = (copyGrads - castGrads).abs().max().item<float>();
        Assert.True(diff <= 1e-3 * scale, $"max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");

        // The optimizer changes Values between steps: the next step's copies must follow.
        using (no_grad()) adapter.Values.mul_(1.5);
        var (castLoss2, _) = Pass(copies: false);
        var (copyLoss2, _) = Pass(copies: true);
        Assert.NotEqual(castLoss, castLoss2);
        Assert.Equal(castLoss2, copyLoss2, 3);
    }
}
