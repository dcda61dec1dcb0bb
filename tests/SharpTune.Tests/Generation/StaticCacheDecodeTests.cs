using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Generation;

/// <summary>Decoding over the static KV cache (one-token steps write at a column held on the device and attend over
/// the whole capacity under a mask) against the uncached reference: a full forward pass over the whole sequence for
/// every new token, each prompt alone. fp32 on the CPU; greedy tokens identical, logits within 1e-4.</summary>
public class StaticCacheDecodeTests
{
    static CausalLM Load(string arch)
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model(arch));
        return ckpt.LoadModel(TestPaths.Cpu, float32);
    }

    /// <summary>Greedy continuation of one prompt by full forward passes, no cache.</summary>
    static int[] UncachedGreedy(CausalLM model, int[] prompt, int newTokens)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = prompt.Select(i => (long)i).ToList();
        for (int t = 0; t < newTokens; t++)
        {
            using var stepScope = NewDisposeScope();
            var logits = model.Forward(tensor(ids.ToArray()).view(1, -1));
            ids.Add(logits.select(1, ids.Count - 1).argmax(-1).item<long>());
        }
        return ids.Skip(prompt.Length).Select(i => (int)i).ToArray();
    }

    /// <summary>(architecture, new tokens, whole-cache steps: op by op in the form a CUDA graph replays).</summary>
    public static TheoryData<string, int, bool> Cases => new()
    {
        { "llama", 1, false }, { "llama", 6, false }, { "llama", 19, false },
        { "qwen2", 1, false }, { "qwen2", 6, false }, { "qwen2", 19, false },
        { "qwen3", 1, false }, { "qwen3", 6, false }, { "qwen3", 19, false },
        { "llama", 6, true }, { "llama", 19, true }, { "qwen2", 6, true }, { "qwen2", 19, true }, { "qwen3", 6, true }, { "qwen3", 19, true },
    };

    [Theory, MemberData(nameof(Cases))]
    public void BatchOfDifferentPromptLengthsGivesTheUncachedGreedyTokens(string arch, int newTokens, bool wholeCache)
    {
        using var model = Load(arch);
        // Lengths 1..13 with 19 new tokens cross the cache's 16-column rounding; the shortest row is mostly padding.
        int[][] prompts = [[5, 17, 99, 3, 250, 41, 7], [12], [9, 8, 7, 6, 5, 4, 3, 2, 1, 11, 13, 15, 17], [300, 301, 302]];
        var generator = new TokenGenerator(model) { WholeCacheSteps = wholeCache };
        var batch = generator.Generate(prompts, new GenerationOptions(MaxNewTokens: newTokens));
        Assert.Equal("eager", generator.LastTimings!.DecodePath);
        for (int b = 0; b < prompts.Length; b++)
        {
            Assert.Equal(UncachedGreedy(model, prompts[b], newTokens), batch[b].Ids);
            Assert.Equal(FinishReason.Length, batch[b].FinishReason);
        }
    }

    [Theory, InlineData("llama"), InlineData("qwen2"), InlineData("qwen3")]
    public void StepColumnWritesGiveTheFullPassLogits(string arch)
    {
        using var model = Load(arch);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 5, 17, 99, 3, 250, 41, 7, 8, 60, 61 }).view(1, 10);
        var full = model.Forward(ids);
        using var cache = new KvCache(model.Config, 1, 16, float32, TestPaths.Cpu);
        model.Forward(ids.narrow(1, 0, 6), cache: cache);
        cache.StepColumn = tensor(new long[] { 6 });
        var written = zeros([1, 16], ScalarType.Bool);
        written.narrow(1, 0, 6).fill_(true);
        for (int t = 6; t < 10; t++)
        {
            written.index_fill_(1, cache.StepColumn, true);
            var step = model.Forward(ids.narrow(1, t, 1), positions: tensor(new long[] { t }).view(1, 1), cache: cache, mask: written.view(1, 1, 1, 16));
            double diff = (step.squeeze(1) - full.select(1, t)).abs().max().item<float>();
            Assert.True(diff <= 1e-4, $"position {t}: max |Δlogit| = {diff:E2}");
            cache.StepColumn.add_(1);
        }
    }

    [Fact]
    public void PromptTuningVirtualTokensDecodeOverTheStaticCache()
    {
        using var model = Load("qwen2");
        using var adapter = Adapters.Load(Path.Combine(TestPaths.Model("qwen2"), "peft_prompt_tuning_adapter"), model);
        int[][] prompts = [[5, 17, 99, 3], [41, 7]];
        var batch = new TokenGenerator(model).Generate(prompts, new GenerationOptions(MaxNewTokens: 9));
        for (int b = 0; b < prompts.Length; b++) Assert.Equal(UncachedGreedy(model, prompts[b], 9), batch[b].Ids);
    }

    [Fact]
    public void VirtualTokensCountAgainstTheContext()
    {
        // qwen2's fixture: a context of 512 positions; the prompt-tuning adapter prepends 5 virtual tokens.
        using var model = Load("qwen2");
        using var adapter = Adapters.Load(Path.Combine(TestPaths.Model("qwen2"), "peft_prompt_tuning_adapter"), model);
        var generator = new TokenGenerator(model);
        var e = Assert.Throws<SharpTuneException>(() => generator.Generate([Enumerable.Repeat(7, 507).ToArray()], new GenerationOptions(MaxNewTokens: 4)));
        Assert.Contains("507 tokens after the adapter's 5 virtual tokens", e.Message);
        var (ids, reason) = generator.Generate([Enumerable.Repeat(7, 500).ToArray()], new GenerationOptions(MaxNewTokens: 50))[0];
        Assert.Equal(7, ids.Length);   // positions 505..511 are the last the context holds
        Assert.Equal(FinishReason.Length, reason);
    }
}
