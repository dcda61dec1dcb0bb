using SharpTune.Bench;
using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

public class TokenizerBenchmarkTests
{
    /// <summary>Prints single-thread throughput on the test corpus (compare with Fixtures/tokenizer/hf_speed.txt);
    /// run alone with --filter "Category=Bench".</summary>
    [Fact]
    [Trait("Category", "Bench")]
    public void Benchmark_Qwen3_CountsTheReferenceTokens()
    {
        var output = new StringWriter();
        var result = TokenizerBenchmark.Run(RealTokenizerDir("qwen3"), FixturePath("corpus.json.gz"), warmPasses: 1,
            output);
        Console.WriteLine(output.ToString());
        long expectedTokens = IdLists(Reference("qwen3").GetProperty("ids")).Sum(ids => (long)ids.Length);
        Assert.Equal(expectedTokens, result.Tokens);
        Assert.Contains("MB/s", output.ToString());
    }
}
