using TorchSharp;

namespace SharpTune.Tests.Models;

/// <summary>The comparison that the checkpointing tests share: a loss and a flat adapter gradient against a reference
/// computed another way (without checkpointing, the MLP whole, ...), within a relative loss tolerance and a gradient
/// tolerance as a fraction of the reference's largest value. The reference must be a real gradient: nonzero, and
/// reaching most adapter values.</summary>
static class AdapterGradients
{
    public static void AssertClose(float loss, float referenceLoss, torch.Tensor grads, torch.Tensor reference, double lossTolerance, double gradTolerance)
    {
        Assert.True(Math.Abs(loss - referenceLoss) <= lossTolerance * referenceLoss, $"loss {loss} vs {referenceLoss}");
        double scale = reference.abs().max().item<float>();
        Assert.True(scale > 0, "the reference gradient is zero");
        Assert.True(reference.count_nonzero().item<long>() > reference.numel() / 2, "most adapter values must get a gradient");
        double diff = (grads - reference).abs().max().item<float>();
        Assert.True(diff <= gradTolerance * scale, $"max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");
    }
}
