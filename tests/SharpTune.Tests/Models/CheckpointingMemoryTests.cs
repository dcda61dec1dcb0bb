using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

[CollectionDefinition(nameof(CheckpointingMemoryTests), DisableParallelization = true)]
public class CheckpointingMemoryCollection;

/// <summary>Training steps with the recomputed MLP in pieces and a compressed lm_head leave no tensor behind: the live
/// tensor count is the same after three more steps (alone in its collection: the count is process-wide).</summary>
[Collection(nameof(CheckpointingMemoryTests))]
public class CheckpointingMemoryTests
{
    [Theory]
    [InlineData(16, false)]
    [InlineData(16, true)]
    [InlineData(0, true)]
    public void StepsKeepTheLiveTensorCountFlat(int mlpChunk, bool int8Head)
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        string dir = TestPaths.NewTinyModel(seed: 3);
        using var folder = ModelFolder.Open(dir);
        using var model = folder.LoadModel(TestPaths.Cpu, bfloat16, WeightQuantization.For("nf4", dir));
        if (int8Head) model.CompressHead(Int8Weight.Quantize, "lm_head_quantization");
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8), seed: 1);
        model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, mlpChunk: mlpChunk, trainableOfProjection: adapter.TrainableOf);
        using var ids = randint(3, model.Config.VocabSize, [2, 40], generator: new Generator(7));
        void Step()
        {
            using var scope = NewDisposeScope();
            adapter.BeginStep(bfloat16);
            CausalLoss.ForwardBackward(model, ids, ids, normalizer: 78, chunk: 32);
            model.Checkpointing!.AfterBackward();
            adapter.CollectGradients();
            adapter.EndStep();
        }
        Step();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long live = Tensor.TotalCount;
        for (int i = 0; i < 3; i++) Step();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(live, Tensor.TotalCount);
    }
}
