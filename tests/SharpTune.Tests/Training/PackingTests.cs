using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>A packed row (several examples end to end, block-diagonal mask, positions restarting) gives each
/// example exactly the logits it gets alone: no cross-contamination.</summary>
public class PackingTests
{
    [Fact]
    public void PackedExamplesSeeOnlyThemselves()
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32);
        int[] a = [5, 9, 33, 41, 7, 8, 100], b = [17, 3, 250, 12, 6];
        var examples = new[] { new TokenizedExample(a, a), new TokenizedExample(b, b) };
        var batch = Batcher.Collate([Packer.Concatenate(examples), Packer.Single([examples[1]])[0]], padId: 0);   // row 2 padded

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (ids, _, positions, mask) = TrainStep.ToDevice(batch, TestPaths.Cpu);
        Assert.NotNull(mask);
        var packed = model.Forward(ids, positions, mask: mask);
        var aloneA = model.Forward(tensor(a.Select(x => (long)x).ToArray()).view(1, -1));
        var aloneB = model.Forward(tensor(b.Select(x => (long)x).ToArray()).view(1, -1));

        double Diff(Tensor x, Tensor y) => (x - y).abs().max().item<float>();
        Assert.True(Diff(packed[0].narrow(0, 0, a.Length), aloneA[0]) < 1e-5);
        Assert.True(Diff(packed[0].narrow(0, a.Length, b.Length), aloneB[0]) < 1e-5);
        Assert.True(Diff(packed[1].narrow(0, 0, b.Length), aloneB[0]) < 1e-5);   // a right-padded row is unaffected by its padding
        Assert.False(packed.isnan().any().item<bool>());
    }
}
