using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Activation offload holds the checkpoints' saved inputs in buffers of its own (OffloadBuffers), reused across
/// steps and row lengths. On the CPU the same path runs with plain memory: rows of 24, then 64, then 24 tokens (shorter,
/// longer, shorter) give, step by step, exactly the loss and adapter gradients of the same steps without offload (the
/// offload only moves bytes), and the buffers are allocated once per layer and grown once, not per length or step.</summary>
public class OffloadBuffersTests
{
    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel(seed: 5));

    static List<(float Loss, Tensor Grads)> Steps(bool offload, int mlpChunk, out ActivationCheckpointing checkpointing)
    {
        using var ckpt = ModelFolder.Open(Tiny.Value);
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32, WeightQuantization.For("nf4", Tiny.Value));
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8), seed: 1);
        using (no_grad()) foreach (var p in adapter.Pairs) p.B.normal_(0, 0.05, generator: new Generator((ulong)p.Target.Name.Length));
        model.Checkpointing = checkpointing = new ActivationCheckpointing(adapter.TrainableOf, offload: offload, mlpChunk: mlpChunk,
            trainableOfProjection: adapter.TrainableOf);
        var results = new List<(float, Tensor)>();
        long step = 0;
        foreach (long length in new long[] { 24, 64, 24 })
        {
            using var scope = NewDisposeScope();
            model.Checkpointing.BeginStep(step++);
            var ids = randint(3, model.Config.VocabSize, [2, length], generator: new Generator((ulong)(7 + length)));
            adapter.BeginStep(float32);
            var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 2 * (length - 1));
            model.Checkpointing.AfterBackward();
            adapter.CollectGradients();
            adapter.EndStep();
            results.Add((loss.item<float>(), adapter.Gradients.clone().DetachFromDisposeScope()));
        }
        return results;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32)]   // the MLP recomputed in pieces of 32 tokens, 16 positions of both rows: 24 = 16 + 8, 64 = 4 × 16
    public void OffloadedStepsOfChangingLengthsGiveTheGradientsOfStepsWithoutOffload(int mlpChunk)
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        var plain = Steps(offload: false, mlpChunk, out var without);
        var offloaded = Steps(offload: true, mlpChunk, out var with);
        Assert.Null(without.Offload);
        for (int i = 0; i < plain.Count; i++)
        {
            using var reference = plain[i].Grads;
            using var grads = offloaded[i].Grads;
            Assert.Equal(plain[i].Loss, offloaded[i].Loss);
            Assert.True(reference.count_nonzero().item<long>() > reference.numel() / 2, "most adapter values must get a gradient");
            Assert.True(reference.allclose(grads, rtol: 0, atol: 0), $"step {i + 1}: the gradients differ by up to {(grads - reference).abs().max().item<float>():E2}");
        }
        // One buffer per layer (each input is held until its layer's backward), allocated at 24 tokens and grown once at 64:
        // more than twice the values, past the power of two that 24 tokens rounded up to.
        int layers = TinyLayers();
        Assert.Equal(layers, with.Offload!.Count);
        Assert.Equal(2 * layers, with.Offload.Allocations);
    }

    static int TinyLayers()
    {
        using var ckpt = ModelFolder.Open(Tiny.Value);
        return ckpt.Config.NumLayers;
    }
}
