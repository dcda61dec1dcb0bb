using SharpTune.Generation;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Generation;

/// <summary>Teacher-forced decoding (the check of the decode path on the GPU, scripts/bench/decode_check.py) against
/// an uncached full forward pass over each prompt plus its continuation alone: fp32 on the CPU, logits within 1e-4,
/// in the op-by-op form and in the form a CUDA graph replays (whole cache under a mask).</summary>
public class ForcedLogitsTests
{
    [Theory]
    [InlineData("llama", false), InlineData("qwen2", false), InlineData("qwen3", false)]
    [InlineData("llama", true), InlineData("qwen2", true), InlineData("qwen3", true)]
    public void EveryStepGivesTheFullPassLogitsOfItsPosition(string arch, bool wholeCache)
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model(arch));
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Rows of different lengths (left padding); 13 + 7 tokens cross the cache's 16-column rounding.
        int[][] prompts = [[5, 17, 99, 3, 250, 41, 7], [12], [9, 8, 7, 6, 5, 4, 3, 2, 1, 11, 13, 15, 17]];
        int[][] continuations = [[1, 2, 3, 4, 5, 6, 7], [300, 12, 12, 40, 2, 9, 100], [7, 7, 7, 7, 8, 8, 8]];
        var generator = new TokenGenerator(model) { WholeCacheSteps = wholeCache };
        var logits = generator.ForcedLogits(prompts, continuations);
        Assert.Equal(new long[] { 3, 7, model.Config.VocabSize }, logits.shape);
        for (int b = 0; b < prompts.Length; b++)
        {
            var sequence = prompts[b].Concat(continuations[b].SkipLast(1)).Select(i => (long)i).ToArray();
            var full = model.Forward(tensor(sequence).view(1, -1)).squeeze(0);                  // [T, V]
            var expected = full.narrow(0, prompts[b].Length - 1, continuations[b].Length);    // before each fed token
            double diff = (logits[b] - expected).abs().max().item<float>();
            Assert.True(diff <= 1e-4, $"row {b}: max |Δlogit| = {diff:E2}");
            Assert.True(expected.std().item<float>() > 1e-2, "the logits must be spread for the comparison to mean anything");
        }
    }

    [Fact]
    public void BadContinuationsAreRefusedByName()
    {
        using var ckpt = ModelFolder.Open(TestPaths.Model("llama"));
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32);
        var e = Assert.Throws<SharpTuneException>(() => new TokenGenerator(model).ForcedLogits([[1, 2], [3]], [[4, 5], [6]]));
        Assert.Contains("same number of tokens", e.Message);
        foreach (int bad in new[] { 1 << 30, -5 })
        {
            e = Assert.Throws<SharpTuneException>(() => new TokenGenerator(model).ForcedLogits([[1, 2]], [[4, bad]]));
            Assert.Contains($"token id {bad}, outside the model's vocabulary", e.Message);
        }
        e = Assert.Throws<SharpTuneException>(() => new TokenGenerator(model).ForcedLogits([[1, 2]], [new int[model.Config.MaxPositionEmbeddings - 1]]));
        Assert.Contains($"leaves room for {model.Config.MaxPositionEmbeddings - 2} of the", e.Message);
        int steps = (int)(TokenGenerator.MaxForcedLogitsBytes / 4 / model.Config.VocabSize) + 1;   // one step too many
        e = Assert.Throws<SharpTuneException>(() => new TokenGenerator(model).ForcedLogits([[1, 2]], [new int[steps]]));
        Assert.Contains("feed fewer rows or steps", e.Message);
    }

    [Theory]
    [InlineData("{\"prompt_ids\": [1, 2], \"continuation_ids\": [3]}\n{\"prompt_ids\": [4], \"continuation_ids\": [5, 6]}\n", "rows.jsonl:2", "same number of steps")]
    [InlineData("{\"prompt_ids\": [1, 2]}\n", "rows.jsonl:1", "no \"continuation_ids\" list")]
    [InlineData("{\"prompt_ids\": [1, -2], \"continuation_ids\": [3]}\n", "rows.jsonl:1", "\"prompt_ids\"[1] is -2")]
    [InlineData("{\"prompt_ids\": [], \"continuation_ids\": [3]}\n", "rows.jsonl:1", "\"prompt_ids\" is empty")]
    [InlineData("", "rows.jsonl", "no rows")]
    public void BadRowsFileIsNamedWithItsRow(string content, string where, string what)
    {
        string path = Path.Combine(TestPaths.TempDir(), "rows.jsonl");
        File.WriteAllText(path, content);
        var e = Assert.Throws<SharpTuneException>(() => ForcedRows.Read(path));
        Assert.Contains(where, e.Message);
        Assert.Contains(what, e.Message);
    }
}
