using SharpTune.Generation;

namespace SharpTune.Tests;

/// <summary>The README's library example, as code that compiles and runs (on the tiny model, on the CPU).</summary>
public class ReadmeTests
{
    [Fact]
    public void LibraryExampleRuns()
    {
        string path = TestPaths.NewTinyModel();
        // --- as in README.md, with the path and device changed
        using var m = PretrainedModel.Load(path, device: "cpu");
        var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
        var result = generator.Generate([m.EncodeChat([new("user", "What is 17 × 23?")])],
            new GenerationOptions(MaxNewTokens: 16, Sampling: new SamplingOptions(Temperature: 0.6, TopP: 0.95, Seed: 1), EosTokenIds: m.EosTokenIds));
        // ---
        Assert.Single(result);
        Assert.InRange(result[0].OutputIds.Length, 1, 16);
        Assert.StartsWith("<｜begin▁of▁sentence｜><｜User｜>What is 17 × 23?<｜Assistant｜><think>\n", m.RenderChat([new("user", "What is 17 × 23?")]));
    }
}
