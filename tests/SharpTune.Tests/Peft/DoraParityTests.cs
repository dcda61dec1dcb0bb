using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>DoRA against PEFT (fixture by scripts/fixtures/dora_prompt_tuning_reference.py: a PEFT-made DoRA adapter on
/// the tiny Qwen2 and PEFT's logits, fp32 on the CPU). Tolerance: logits 1e-4.</summary>
public class DoraParityTests
{
    static string Fixture => TestPaths.Model("qwen2");
    static string PeftDora => Path.Combine(Fixture, "peft_dora_adapter");

    static CausalLM LoadBase()
    {
        using var ckpt = ModelFolder.Open(Fixture);
        return ckpt.LoadModel(TestPaths.Cpu, float32);
    }

    [Fact]
    public void PeftDoraAdapterLoadsAndGivesPeftLogits()
    {
        using var model = LoadBase();
        using var adapter = LoraAdapter.Load(PeftDora, model);
        Assert.True(adapter.Options.UseDora);
        Assert.Equal(2 * 7 * 3, adapter.Parameters.Count());
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(PeftDora, "logits.safetensors"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.Forward(reference.Read("input_ids"));
        double diff = (logits - expected.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(diff <= 1e-4, $"max |Δlogit| = {diff:E2}");
        Assert.True((logits - reference.Read("logits_fp32")).abs().max().item<float>() > 1e-2, "the adapter must change the logits");
    }

    [Fact]
    public void SavedDoraAdapterHasPeftsNamesShapesAndValues()
    {
        using var model = LoadBase();
        using var adapter = LoraAdapter.Load(PeftDora, model);
        string dir = Path.Combine(TestPaths.TempDir(), "dora");
        adapter.Save(dir);
        using var ours = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        using var peft = SafetensorsFile.Open(Path.Combine(PeftDora, "adapter_model.safetensors"));
        Assert.Equal(peft.Entries.Keys.Order(), ours.Entries.Keys.Order());
        foreach (var name in peft.Entries.Keys)
        {
            using var a = ours.Read(name);
            using var b = peft.Read(name);
            Assert.True(a.to(float32).equal(b.to(float32)).all().item<bool>(), name);
        }
        Assert.Contains("\"use_dora\": true", File.ReadAllText(Path.Combine(dir, "adapter_config.json")));
    }

    [Fact]
    public void FreshDoraStartsAtTheBaseModel()
    {
        using var model = LoadBase();
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8, UseDora: true));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.Forward(reference.Read("input_ids"));
        Assert.True((logits - reference.Read("logits_fp32")).abs().max().item<float>() <= 1e-4, "m = ‖W‖ and B = 0 leave the outputs unchanged");
    }
}
