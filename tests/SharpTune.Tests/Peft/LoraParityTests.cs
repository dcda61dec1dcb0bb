using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>LoRA against transformers+peft (fixture: a PEFT-made adapter on the tiny Qwen2, its logits, loss
/// and gradients). Tolerances in fp32 on the CPU: logits 1e-4, loss 1e-5 relative, gradients 1e-4 relative to each tensor's max.</summary>
public class LoraParityTests
{
    static string Fixture => TestPaths.Model("qwen2");

    static CausalLM LoadBase()
    {
        using var ckpt = ModelFolder.Open(Fixture);
        return ckpt.LoadModel(TestPaths.Cpu, float32);
    }

    [Fact]
    public void PeftAdapterLoadsAndGivesPeftLogits()
    {
        using var model = LoadBase();
        using var adapter = LoraAdapter.Load(Path.Combine(Fixture, "peft_adapter"), model);
        Assert.Equal(2 * 7 * 2, adapter.Parameters.Count());
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(Fixture, "peft_adapter", "logits.safetensors"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.Forward(reference.Read("input_ids"));
        double diff = (logits - expected.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(diff <= 1e-4, $"max |Δlogit| = {diff:E2}");
        var baseDiff = (logits - reference.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(baseDiff > 1e-2, "the adapter must change the logits");
    }

    [Theory]
    [InlineData(1024, false)]
    [InlineData(7, false)]   // many chunks, uneven last one
    [InlineData(1024, true)]  // activation checkpointing: layers recomputed in backward
    [InlineData(1024, true, 1)]  // only the first of the two layers recomputed, the second keeps its activations
    [InlineData(1024, true, 0, 1)]  // the first layer keeps its MLP's gate and up outputs: backward recomputes attention only
    [InlineData(1024, true, 0, 2)]
    [InlineData(1024, true, 0, 0, 5)]  // the recomputed MLP in pieces of 5 tokens (24 = 4 × 5 + 4)
    [InlineData(7, true, 0, 0, 1)]     // one token per piece
    [InlineData(1024, true, 0, 1, 5)]  // the first layer keeps its MLP, the second recomputes it in pieces
    public void LossAndGradientsMatchPeft(long chunk, bool checkpointing, int checkpointLayers = 0, int keepMlp = 0, int mlpChunk = 0)
    {
        using var model = LoadBase();
        using var adapter = LoraAdapter.Load(Path.Combine(Fixture, "peft_adapter"), model);
        if (checkpointing)
            model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, layers: checkpointLayers, keepMlp: keepMlp,
                trainableOfProjection: adapter.TrainableOf, mlpChunk: mlpChunk);
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "lora_grads.safetensors"));
        using var inputs = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var scope = NewDisposeScope();
        var ids = inputs.Read("input_ids");
        var labels = reference.Read("labels");
        long scored = (CausalLoss.ShiftLabels(labels) != CausalLoss.IgnoreIndex).sum().item<long>();
        var lossSum = CausalLoss.ForwardBackward(model, ids, labels, scored, chunk: chunk);
        model.Checkpointing?.AfterBackward();
        double loss = lossSum.item<float>() / scored;
        double expectedLoss = reference.Read("loss").item<float>();
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-5 * expectedLoss, $"loss {loss} vs peft {expectedLoss}");

        foreach (var pair in adapter.Pairs)
            foreach (var (ab, p) in new[] { ("lora_A", pair.A), ("lora_B", pair.B) })
            {
                var expected = reference.Read(LoraAdapter.PeftName(pair.Target.Name, ab));
                double scale = expected.abs().max().item<float>();
                double diff = (p.grad! - expected).abs().max().item<float>();
                Assert.True(scale > 0, $"{pair.Target.Name}.{ab}: reference gradient is zero");
                Assert.True(diff <= 1e-4 * scale, $"{pair.Target.Name}.{ab}: max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");
            }
    }

    [Fact]
    public void SavedAdapterRoundTripsInPeftLayout()
    {
        using var model = LoadBase();
        string dir = TestPaths.TempDir();
        long count;
        using (var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8), seed: 1))
        {
            count = adapter.TrainableParameterCount;
            using var noGrad = no_grad();
            foreach (var p in adapter.Pairs) p.B.normal_(0, 0.1);
            adapter.Save(dir, baseModel: "tiny-qwen2");
        }
        using (var file = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors")))
            Assert.Contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", file.Entries.Keys);
        using var loaded = LoraAdapter.Load(dir, model);
        Assert.Equal(count, loaded.TrainableParameterCount);
        Assert.Equal(8.0 / 4, loaded.Options.Scaling);
    }

    /// <summary>sharptune_adapter was written by LoraAdapter.Save; scripts/fixtures/peft_loads_ours.py showed that PEFT
    /// loads it and gives these logits (max |Δ| 2.4e-7 fp32 CPU, 0.0048 bf16 CUDA). Guards the saved format.</summary>
    [Fact]
    public void AdapterFormatThatPeftLoadedStillLoads()
    {
        using var model = LoadBase();
        string dir = Path.Combine(Fixture, "sharptune_adapter");
        using var adapter = LoraAdapter.Load(dir, model);
        using var inputs = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(dir, "sharptune_logits.safetensors"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double diff = (model.Forward(inputs.Read("input_ids")) - expected.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(diff <= 1e-5, $"max |Δlogit| = {diff:E2}");
    }

    [Fact]
    public void DropoutActsOnlyWhileTraining()
    {
        using var model = LoadBase();
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8, Dropout: 0.5), seed: 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var p in adapter.Pairs) p.B.normal_(0, 0.1);
        var ids = tensor(new long[] { 5, 9, 33, 41, 7 }).view(1, -1);
        double Diff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
        Assert.Equal(0, Diff(model.Forward(ids), model.Forward(ids)));
        adapter.Training = true;
        Assert.True(Diff(model.Forward(ids), model.Forward(ids)) > 1e-4);
    }

    [Fact]
    public void AdapterForAnotherModelIsRejectedClearly()
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("qwen3"));   // head_dim 24: other q/k/v/o shapes
        using var other = ckpt.LoadModel(TestPaths.Cpu, float32);
        var e = Assert.Throws<SharpTuneException>(() => LoraAdapter.Load(Path.Combine(Fixture, "peft_adapter"), other).Dispose());
        Assert.Contains("adapter_model.safetensors", e.Message);
    }
}
