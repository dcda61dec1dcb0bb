using SharpTune.Demo;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>A recomputed layer with compressed weights takes its backward by hand (the seven projections and their LoRA
/// gradients outside autograd, ActivationCheckpointing.HandBackward): the loss and every adapter gradient must equal those of
/// autograd through the same model without checkpointing (FrozenLinear's forward and backward, the adapters recorded op by
/// op), on the CPU, two layers (the first one's input needs no gradient, the second's does), two rows of 40 tokens,
/// grouped-query attention with q/k/v biases (Qwen2), head norms (Qwen3), 4-bit and int8 weights, the MLP whole and in
/// pieces (mlp_chunk; each piece's adapter gradients summed in fp32), adapters on all seven projections or on two. Tolerances: fp32 loss 1e-6
/// relative and gradients 1e-5 of the largest (the same products, summed in another order); bf16 2e-2 (the adapter's scale
/// taken inside one product where autograd rounds twice, each within a few bf16 steps, 2⁻⁸). The hand path must actually
/// run: it asks each projection for its factors once per step.</summary>
public class HandBackwardTests
{
    static readonly Lazy<string> Qwen2 = new(() => NewModel("Qwen2ForCausalLM"));
    static readonly Lazy<string> Qwen3 = new(() => NewModel("Qwen3ForCausalLM"));

    static string NewModel(string architecture)
    {
        _ = TestPaths.Cpu;
        string dir = Path.Combine(TestPaths.TempDir(), "tiny");
        TinyModel.Create(dir, new TinyModelOptions(architecture, HiddenSize: 64, Layers: 2, IntermediateSize: 128, Seed: 5));
        return dir;
    }

    /// <summary>One step's loss and adapter gradients, and how many times the projections' factors were asked for.</summary>
    static (float Loss, Tensor Grads, int Asked) Step(string dir, string quantization, ScalarType dtype, bool checkpointing, int mlpChunk = 0,
        string[]? targets = null)
    {
        using var ckpt = ModelFolder.Open(dir);
        using var model = ckpt.LoadModel(TestPaths.Cpu, dtype, WeightQuantization.For(quantization, dir));
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8, TargetModules: targets), seed: 1);
        using (no_grad()) foreach (var p in adapter.Pairs) p.B.normal_(0, 0.05, generator: new Generator((ulong)p.Target.Name.Length));
        int asked = 0;
        foreach (var p in model.Projections)
            if (p.LowRank is { } f) p.LowRank = () => { asked++; return f(); };
        model.Checkpointing = checkpointing ? new ActivationCheckpointing(adapter.TrainableOf, trainableOfProjection: adapter.TrainableOf, mlpChunk: mlpChunk) : null;
        using var scope = NewDisposeScope();
        var ids = randint(3, model.Config.VocabSize, [2, 40], generator: new Generator(7));
        adapter.BeginStep(dtype);   // bf16: the adapters' bf16 step copies are what both forms differentiate
        var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 78);
        model.Checkpointing?.AfterBackward();
        adapter.CollectGradients();
        adapter.EndStep();
        return (loss.item<float>(), adapter.Gradients.clone().DetachFromDisposeScope(), asked);
    }

    [Theory]
    [InlineData("qwen2", "nf4", false)]
    [InlineData("qwen2", "nf4", true)]
    [InlineData("qwen2", "int8", false)]
    [InlineData("qwen3", "nf4", false)]
    [InlineData("qwen3", "fp4", true)]
    [InlineData("qwen2", "nf4", false, 32)]   // the MLP in pieces of 32 tokens (16 positions of both rows): 80 rows = 32 + 32 + 16
    [InlineData("qwen2", "nf4", true, 32)]
    [InlineData("qwen3", "int8", false, 7)]
    [InlineData("qwen2", "nf4", false, 0, "v_proj,up_proj")]   // projections without adapters: frozen products only
    [InlineData("qwen2", "nf4", false, 32, "q_proj,down_proj")]
    public void HandGradientsEqualAutogradWithoutCheckpointing(string architecture, string quantization, bool bf16, int mlpChunk = 0,
        string? targets = null)
    {
        string dir = architecture == "qwen2" ? Qwen2.Value : Qwen3.Value;
        var dtype = bf16 ? bfloat16 : float32;
        var targetList = targets?.Split(',');
        var (plainLoss, plain, plainAsked) = Step(dir, quantization, dtype, checkpointing: false, targets: targetList);
        var (loss, grads, asked) = Step(dir, quantization, dtype, checkpointing: true, mlpChunk, targetList);
        Assert.Equal(0, plainAsked);
        Assert.Equal((targetList?.Length ?? 7) * 2, asked);   // each adapted projection, two layers: the hand path ran in each layer
        double lossTolerance = bf16 ? 1e-2 : 1e-6, gradTolerance = bf16 ? 2e-2 : 1e-5;
        using (plain) using (grads)
            AdapterGradients.AssertClose(loss, plainLoss, grads, plain, lossTolerance, gradTolerance);
    }

    /// <summary>Dense (bf16) layers keep autograd's form: the peer of the comparison is not changed.</summary>
    [Fact]
    public void DenseLayersKeepAutogradsForm()
    {
        var (_, grads, asked) = Step(Qwen2.Value, "none", float32, checkpointing: true);
        grads.Dispose();
        Assert.Equal(0, asked);
    }
}
