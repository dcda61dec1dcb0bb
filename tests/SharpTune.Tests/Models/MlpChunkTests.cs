using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Activation checkpointing with the recomputed MLP in pieces (mlp_chunk) against the whole-sequence
/// recomputation, on the CPU: the same loss and the same adapter gradients, on a 4-bit base with DoRA (whose weight
/// norm each piece recomputes) and LoRA, two rows, pieces that do not divide the sequence. Tolerances in fp32: loss
/// 1e-6 relative, gradients 1e-5 of the largest (only the summation order differs: per piece, then added); bf16 below.</summary>
public class MlpChunkTests
{
    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel(seed: 3));

    static (float Loss, Tensor Grads) Step(bool dora, int mlpChunk, ScalarType dtype, bool byProjection = true, bool checkpointing = true)
    {
        using var ckpt = ModelFolder.Open(Tiny.Value);
        using var model = ckpt.LoadModel(TestPaths.Cpu, dtype, WeightQuantization.For("nf4", Tiny.Value));
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8, UseDora: dora), seed: 1);
        using (no_grad()) foreach (var p in adapter.Pairs) p.B.normal_(0, 0.05, generator: new Generator((ulong)p.Target.Name.Length));
        model.Checkpointing = checkpointing ? new ActivationCheckpointing(adapter.TrainableOf, mlpChunk: mlpChunk,
            trainableOfProjection: byProjection ? (Func<Linear, IReadOnlyList<Tensor>>)adapter.TrainableOf : null) : null;
        using var scope = NewDisposeScope();
        var ids = randint(3, model.Config.VocabSize, [2, 40], generator: new Generator(7));
        adapter.BeginStep(dtype);   // bf16: the adapters' bf16 step copies are what the recomputation differentiates
        var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 78);
        model.Checkpointing?.AfterBackward();
        adapter.CollectGradients();
        adapter.EndStep();
        return (loss.item<float>(), adapter.Gradients.clone().DetachFromDisposeScope());
    }

    [Theory]
    [InlineData(false, 32, false)]   // pieces of 32 tokens over both rows, 16 positions each: 40 = 16 + 16 + 8
    [InlineData(true, 32, false)]
    [InlineData(false, 1, false)]    // fewer tokens than rows: one position per piece
    [InlineData(false, 32, true)]
    [InlineData(true, 32, false, false)]   // without the per-projection split: every tensor asked of both parts
    [InlineData(false, 32, true, false)]
    public void PiecewiseRecomputationGivesTheWholeSequencesGradients(bool dora, int mlpChunk, bool bf16, bool byProjection = true)
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        var dtype = bf16 ? bfloat16 : float32;
        var (wholeLoss, whole) = Step(dora, 0, dtype);
        var (pieceLoss, pieces) = Step(dora, mlpChunk, dtype, byProjection);
        // bf16: products over a piece round differently from products over the whole sequence (and so does what
        // follows them); a gradient sums 80 tokens' terms, each within a few bf16 steps (2⁻⁸): 2e-2 of the largest.
        double lossTolerance = bf16 ? 1e-2 : 1e-6, gradTolerance = bf16 ? 2e-2 : 1e-5;
        using (whole) using (pieces)
            AdapterGradients.AssertClose(pieceLoss, wholeLoss, pieces, whole, lossTolerance, gradTolerance);
    }

    /// <summary>The recomputation skips the 4-bit down projection's frozen product (its input gradient is one product with
    /// the expanded weight): the loss and adapter gradients equal those of autograd through the layers without
    /// checkpointing (FrozenLinear's forward and backward), whole-sequence and in pieces; with DoRA (no skip) as well.
    /// fp32: loss 1e-6 relative, gradients 1e-5 of the largest (the summation order differs).</summary>
    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 32)]
    [InlineData(true, 0)]
    public void RecomputationWithoutTheDownProductGivesAutogradsGradients(bool dora, int mlpChunk)
    {
        _ = TestPaths.Cpu;
        var (plainLoss, plain) = Step(dora, 0, float32, checkpointing: false);
        var (loss, grads) = Step(dora, mlpChunk, float32);
        using (plain) using (grads)
            AdapterGradients.AssertClose(loss, plainLoss, grads, plain, 1e-6, 1e-5);
    }
}
