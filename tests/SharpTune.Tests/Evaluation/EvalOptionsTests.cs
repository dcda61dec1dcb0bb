using SharpTune.Data;
using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

/// <summary>eval's numeric settings are refused out of range, before any model loads (the smoke fuzzer found
/// <c>--samples -1</c> accepted).</summary>
public class EvalOptionsTests
{
    static EvalOptions Options => new() { ModelDir = "m", Data = new DatasetSource("d.jsonl") };

    [Fact]
    public void OutOfRangeCountsAreRefused()
    {
        foreach (var (options, expected) in new (EvalOptions, string)[]
                 {
                     (Options with { SampleCount = -1 }, "--samples must be >= 0, got -1"),
                     (Options with { Limit = -1 }, "--limit must be >= 0, got -1"),
                     (Options with { Shots = -2 }, "--shots must be >= 0, got -2"),
                     (Options with { MaxNewTokens = 0 }, "--max-new-tokens must be positive, got 0"),
                 })
            Assert.Equal(expected, Assert.Throws<SharpTuneException>(options.Validate).Message);
        Options.Validate();
    }
}
