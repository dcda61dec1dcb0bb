using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Logits and greedy tokens against HF transformers (fixtures from scripts/fixtures/model_parity.py).
/// Tolerance: max |Δlogit| ≤ 1e-4 in fp32 on the CPU; greedy tokens identical.</summary>
public class ParityTests
{
    public static TheoryData<string> Architectures => new() { "llama", "qwen2", "qwen3" };

    static CausalLM Load(string arch)
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model(arch));
        return ckpt.LoadModel(TestPaths.Cpu, float32);
    }

    [Theory, MemberData(nameof(Architectures))]
    public void LogitsMatchTransformers(string arch)
    {
        using var model = Load(arch);
        using var reference = SafetensorsFile.Open(Path.Combine(TestPaths.Model(arch), "logits.safetensors"));
        using var scope = NewDisposeScope();
        var ids = reference.Read("input_ids");
        var expected = reference.Read("logits_fp32");
        using var noGrad = no_grad();
        var logits = model.Forward(ids);
        Assert.Equal(expected.shape, logits.shape);
        double maxDiff = (logits - expected).abs().max().item<float>();
        Assert.True(maxDiff <= 1e-4, $"{arch}: max |Δlogit| = {maxDiff:E2}");
    }

    [Theory, MemberData(nameof(Architectures))]
    public void GreedyTokensMatchTransformers(string arch)
    {
        using var model = Load(arch);
        var greedy = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Model(arch), "greedy.json"))).RootElement;
        int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var generator = new TokenGenerator(model);

        var single = generator.Generate([Ints(greedy.GetProperty("prompt"))], new GenerationOptions(MaxNewTokens: 32));
        Assert.Equal(Ints(greedy.GetProperty("greedy")), single[0].Ids);
        Assert.Equal(FinishReason.Length, single[0].FinishReason);

        var prompts = greedy.GetProperty("batch_prompts").EnumerateArray().Select(Ints).ToList();
        var batch = generator.Generate(prompts, new GenerationOptions(MaxNewTokens: 12));
        var expected = greedy.GetProperty("batch_greedy").EnumerateArray().Select(Ints).ToList();
        Assert.Equal(expected[0], batch[0].Ids);
        Assert.Equal(expected[1], batch[1].Ids);
    }

    [Fact]
    public void KvCacheDecodeEqualsFullForward()
    {
        using var model = Load("qwen3");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 5, 17, 99, 3, 250, 41, 7, 8 }).view(1, 8);
        var full = model.Forward(ids);
        using var cache = new KvCache(model.Config, 1, 16, float32, TestPaths.Cpu);
        model.Forward(ids.narrow(1, 0, 5), cache: cache);
        Tensor? last = null;
        for (int t = 5; t < 8; t++) last = model.Forward(ids.narrow(1, t, 1), cache: cache);
        double diff = (last!.squeeze(1) - full.select(1, 7)).abs().max().item<float>();
        Assert.True(diff < 1e-5, $"max |Δ| = {diff:E2}");
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndStopsOnEos()
    {
        using var model = Load("llama");
        var generator = new TokenGenerator(model);
        var sampling = new SamplingOptions(Temperature: 0.9, TopK: 50, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 7);
        var a = generator.Generate([[5, 6, 7]], new GenerationOptions(MaxNewTokens: 20, Sampling: sampling));
        var b = generator.Generate([[5, 6, 7]], new GenerationOptions(MaxNewTokens: 20, Sampling: sampling));
        Assert.Equal(a[0].Ids, b[0].Ids);
        int eos = a[0].Ids[3];
        var stopped = generator.Generate([[5, 6, 7]], new GenerationOptions(MaxNewTokens: 20, Sampling: sampling, EosTokenIds: [eos]));
        Assert.Equal(FinishReason.Eos, stopped[0].FinishReason);
        Assert.Equal(eos, stopped[0].Ids[^1]);
        Assert.True(stopped[0].Ids.Length <= 4);
    }
}
