using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class ExampleTokenizerTests
{
    private const int Ignore = TokenizedExample.IgnoreIndex;

    private static FormattedExample Pair(string prompt, string response) =>
        new("x", [new TextSegment(prompt, false), new TextSegment(response, true)]);

    [Fact]
    public void ResponseOnly_LabelsPromptAsIgnored_AndTrainsEos()
    {
        var e = ExampleTokenizer.Tokenize(Pair("ab", "cd"), CharTokenizer.Spec(), new TokenizeOptions(100), out bool truncated)!;
        Assert.False(truncated);
        Assert.Equal([CharTokenizer.Bos, 'a', 'b', 'c', 'd', CharTokenizer.Eos], e.InputIds);
        Assert.Equal([Ignore, Ignore, Ignore, 'c', 'd', CharTokenizer.Eos], e.Labels);
        Assert.Equal(3, e.LabelCount);
    }

    [Fact]
    public void AllTokens_TrainsEverythingButTheFirst()
    {
        var e = ExampleTokenizer.Tokenize(Pair("ab", "c"), CharTokenizer.Spec(bos: false), new TokenizeOptions(100) { LossOn = LossOn.All }, out _)!;
        Assert.Equal(['a', 'b', 'c', CharTokenizer.Eos], e.InputIds);
        Assert.Equal([Ignore, 'b', 'c', CharTokenizer.Eos], e.Labels);
    }

    [Fact]
    public void SegmentsAreEncodedSeparately_SoThePromptMatchesInference()
    {
        var calls = new List<string>();
        var spec = new TokenizerSpec(t => { calls.Add(t); return CharTokenizer.Encode(t); }, CharTokenizer.Eos, "t");
        ExampleTokenizer.Tokenize(Pair("### Response:\n", "<think>"), spec, new TokenizeOptions(100), out _);
        Assert.Equal(["### Response:\n", "<think>"], calls);
    }

    [Fact]
    public void EosAndBosAlreadyInTheText_AreNotDoubled()
    {
        // A chat template's turn end: "...<eos>\n" holds the EOS, followed by a newline.
        var spec = CharTokenizer.Spec() with { BosId = 'P' };
        var e = ExampleTokenizer.Tokenize(Pair("P:", "ok<eos>\n"), spec, new TokenizeOptions(100), out _)!;
        Assert.Equal(['P', ':', 'o', 'k', CharTokenizer.Eos, '\n'], e.InputIds);
        Assert.Equal([Ignore, Ignore, 'o', 'k', CharTokenizer.Eos, '\n'], e.Labels);
    }

    [Fact]
    public void Truncation_KeepsTheStart_AndIsCounted_AndEmptyResultsAreDropped()
    {
        var examples = new[] { Pair("ab", "cdefgh"), Pair("a", "b"), Pair("abcdefgh", "i") };
        var (kept, report) = ExampleTokenizer.TokenizeAll(examples, CharTokenizer.Spec(), new TokenizeOptions(5));
        Assert.Equal(2, kept.Count);
        Assert.Equal([CharTokenizer.Bos, 'a', 'b', 'c', 'd'], kept[0].InputIds);
        Assert.Equal([Ignore, Ignore, Ignore, 'c', 'd'], kept[0].Labels);
        Assert.Equal(new TokenizationReport(Examples: 2, Truncated: 1, Dropped: 1, Tokens: 9, LabelTokens: 4), report);
    }

    [Fact]
    public void Parallel_GivesTheSameResultAsOneThread()
    {
        var examples = Enumerable.Range(0, 300).Select(i => Pair(new string('p', i % 17), new string('r', 1 + i % 13) + i)).ToList();
        var one = ExampleTokenizer.TokenizeAll(examples, CharTokenizer.Spec(), new TokenizeOptions(24) { Parallelism = 1 });
        var many = ExampleTokenizer.TokenizeAll(examples, CharTokenizer.Spec(), new TokenizeOptions(24) { Parallelism = 4 });
        Assert.Equal(one.Report, many.Report);
        Assert.Equal(one.Examples.Select(e => string.Join(",", e.InputIds) + "|" + string.Join(",", e.Labels)),
                     many.Examples.Select(e => string.Join(",", e.InputIds) + "|" + string.Join(",", e.Labels)));
    }

    [Fact]
    public void R1Format_EndToEnd_DecodesBackToTheText()
    {
        var example = new Example("m") { Question = "Q", Reasoning = "R", Answer = "A" };
        var formatted = PromptFormat.R1Reasoning.Format(example);
        var e = ExampleTokenizer.Tokenize(formatted, CharTokenizer.Spec(), new TokenizeOptions(4096), out _)!;
        Assert.Equal("<bos>" + formatted.Text + "<eos>", CharTokenizer.Decode(e.InputIds));
        Assert.Equal("<think>\nR\n</think>\nA<eos>", CharTokenizer.Decode(e.Labels.Where(l => l != Ignore)));
    }
}
