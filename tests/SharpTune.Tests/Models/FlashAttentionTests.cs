using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Packed rows by document boundaries: the layout, the CPU fallback (a mask derived from the boundaries),
/// and the TorchScript that reaches the flash kernel on a GPU (compiled here; run and checked against SDPA at first
/// use on a GPU).</summary>
public class FlashAttentionTests
{
    [Fact]
    public void LayoutCutsRowsIntoDocumentsWithPaddingAsItsOwn()
    {
        var (cu, max) = PackedDocuments.Layout(rows: 2, length: 8, [[3, 4], [5]]);
        Assert.Equal([0, 3, 7, 8, 13, 16], cu);   // row 0: 3 + 4 + 1 pad; row 1: 5 + 3 pads
        Assert.Equal(5, max);
    }

    [Fact]
    public void MaskFromBoundariesIsCausalWithinEachDocument()
    {
        var cpu = TestPaths.Cpu;   // loads libtorch
        using var scope = NewDisposeScope();
        var docs = new PackedDocuments(tensor(new[] { 0, 2, 4 }, int32, cpu), 2);
        var mask = docs.ToMask(1, 4)[0, 0];
        bool[,] expected = { { true, false, false, false }, { true, true, false, false }, { false, false, true, false }, { false, false, true, true } };
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                Assert.Equal(expected[i, j], mask[i, j].item<bool>());
    }

    [Fact]
    public void ScriptCompilesAndTheCpuFallsBackToSdpa()
    {
        var cpu = TestPaths.Cpu;   // loads libtorch
        using var unit = FlashAttention.Compile();
        Assert.False(FlashAttention.Available(cpu, float32));
        Assert.False(FlashAttention.Available(cpu, bfloat16));
    }

    [Fact]
    public void PackedUploadGivesEachExampleItsUnpackedLogits()
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32);
        int[] a = [5, 9, 33, 41, 7, 8, 100], b = [17, 3, 250, 12, 6];
        var examples = new[] { new TokenizedExample(a, a), new TokenizedExample(b, b) };
        var batch = Batcher.Collate([Packer.Concatenate(examples), Packer.Single([examples[1]])[0]], padId: 0, padMultiple: 16);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var d = TrainStep.Upload(batch, TestPaths.Cpu);
        Assert.NotNull(d.Documents);
        Assert.Equal(16, batch.Length);
        var packed = model.Forward(d.Ids, d.Positions, documents: d.Documents);
        var aloneA = model.Forward(tensor(a.Select(x => (long)x).ToArray()).view(1, -1));
        var aloneB = model.Forward(tensor(b.Select(x => (long)x).ToArray()).view(1, -1));

        double Diff(Tensor x, Tensor y) => (x - y).abs().max().item<float>();
        Assert.True(Diff(packed[0].narrow(0, 0, a.Length), aloneA[0]) < 1e-5);
        Assert.True(Diff(packed[0].narrow(0, a.Length, b.Length), aloneB[0]) < 1e-5);
        Assert.True(Diff(packed[1].narrow(0, 0, b.Length), aloneB[0]) < 1e-5);
        Assert.False(packed.isnan().any().item<bool>());
    }
}
