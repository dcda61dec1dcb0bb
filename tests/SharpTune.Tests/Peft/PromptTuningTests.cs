using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>Prompt tuning against PEFT (fixture by scripts/fixtures/dora_prompt_tuning_reference.py: PEFT's
/// PROMPT_TUNING adapter on the tiny Qwen2 and its logits for the real tokens, fp32 on the CPU). Tolerance 1e-4.</summary>
public class PromptTuningTests
{
    static string Fixture => TestPaths.Model("qwen2");
    static string PeftPrompt => Path.Combine(Fixture, "peft_prompt_tuning_adapter");

    static CausalLM LoadBase()
    {
        using var ckpt = ModelFolder.Open(Fixture);
        return ckpt.LoadModel(TestPaths.Cpu, float32);
    }

    [Fact]
    public void PeftPromptTuningAdapterLoadsAndGivesPeftLogits()
    {
        using var model = LoadBase();
        using var adapter = Assert.IsType<PromptTuning>(Adapters.Load(PeftPrompt, model));
        Assert.Equal(5, adapter.VirtualTokenCount);
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var expected = SafetensorsFile.Open(Path.Combine(PeftPrompt, "logits.safetensors"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = model.Forward(reference.Read("input_ids"));
        double diff = (logits - expected.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(diff <= 1e-4, $"max |Δlogit| = {diff:E2}");
        Assert.True((logits - reference.Read("logits_fp32")).abs().max().item<float>() > 1e-2, "the virtual tokens must change the logits");
    }

    [Fact]
    public void CachedGenerationStepsGiveTheFullPassLogits()
    {
        using var model = LoadBase();
        using var adapter = Adapters.Load(PeftPrompt, model);
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = reference.Read("input_ids").narrow(0, 0, 1);
        long T = ids.shape[1];
        var full = model.Forward(ids);
        var cache = new KvCache(model.Config, 1, T + 16, model.DType, model.Device);
        var prefill = model.Forward(ids.narrow(1, 0, T - 2), cache: cache);
        var step1 = model.Forward(ids.narrow(1, T - 2, 1), cache: cache);
        var step2 = model.Forward(ids.narrow(1, T - 1, 1), cache: cache);
        var stepped = cat([prefill, step1, step2], 1);
        Assert.True((stepped - full).abs().max().item<float>() <= 1e-4);
    }

    /// <summary>Generation leaves room in its KV cache for the virtual tokens as well as the prompt and the answer
    /// (it ran out at the last step: "the KV cache holds 242 positions; 243 were needed", found by the smoke fuzzer
    /// through train --peft prompt_tuning); greedy generation repeats the full pass's choices.</summary>
    [Fact]
    public void GenerationKeepsRoomForTheVirtualTokens()
    {
        using var model = LoadBase();
        using var adapter = Adapters.Load(PeftPrompt, model);
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "logits.safetensors"));
        using var scope = NewDisposeScope();
        var prompt = reference.Read("input_ids").narrow(0, 0, 1).data<long>().Select(id => (int)id).ToArray();
        var result = new TokenGenerator(model).Generate([prompt], new GenerationOptions(MaxNewTokens: 6));
        Assert.Equal(6, result[0].Ids.Length);
        Assert.Equal(FinishReason.Length, result[0].FinishReason);
        using var noGrad = no_grad();
        var ids = tensor(prompt.Concat(result[0].Ids[..5]).Select(id => (long)id).ToArray()).unsqueeze(0);
        var choices = model.Forward(ids).argmax(-1)[0].data<long>().ToArray()[(prompt.Length - 1)..];
        Assert.Equal(result[0].Ids.Select(id => (long)id), choices);
    }

    [Fact]
    public void SavedAdapterIsPeftsFormat()
    {
        using var model = LoadBase();
        using var adapter = Adapters.Load(PeftPrompt, model);
        string dir = Path.Combine(TestPaths.TempDir(), "pt");
        adapter.Save(dir);
        using var ours = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        using var peft = SafetensorsFile.Open(Path.Combine(PeftPrompt, "adapter_model.safetensors"));
        Assert.Equal(peft.Entries.Keys, ours.Entries.Keys);
        using var a = ours.Read("prompt_embeddings");
        using var b = peft.Read("prompt_embeddings");
        Assert.True(a.equal(b).all().item<bool>());
        var config = JsonFile.ReadObject(Path.Combine(dir, "adapter_config.json"));
        Assert.Equal(("PROMPT_TUNING", 5), (config["peft_type"]!.GetValue<string>(), config["num_virtual_tokens"]!.GetValue<int>()));
    }
}
