using SharpTune.Generation;
using SharpTune.Models;

namespace SharpTune.Tests.Generation;

public class TextGenerationTests
{
    [Fact]
    public void StreamedPiecesAddUpToTheTextAndStopStringsCut()
    {
        string dir = TestPaths.NewTinyModel(seed: 3);
        using var m = PretrainedModel.Load(dir, "cpu");
        var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
        var prompt = m.EncodeText("Weight 70 kg");
        var streamed = new System.Text.StringBuilder();
        var full = generator.Generate([prompt], new GenerationOptions(MaxNewTokens: 40), (_, piece) => streamed.Append(piece))[0];
        Assert.Equal(full.Text, streamed.ToString());
        Assert.True(full.Text.Length > 4);

        string late = full.Text.Substring(full.Text.Length / 2, 3), early = full.Text.Substring(1, 2);
        var streamedCut = new System.Text.StringBuilder();
        var cut = generator.Generate([prompt], new GenerationOptions(MaxNewTokens: 40, StopStrings: [late, early]), (_, piece) => streamedCut.Append(piece))[0];
        Assert.Equal(FinishReason.Stop, cut.FinishReason);
        int first = Math.Min(full.Text.IndexOf(late, StringComparison.Ordinal), full.Text.IndexOf(early, StringComparison.Ordinal));
        Assert.Equal(full.Text[..first], cut.Text);              // cut at the earliest stop string, whatever the list order
        Assert.Equal(cut.Text, streamedCut.ToString());          // and no part of a stop string was streamed
    }

    [Fact]
    public void CancellingEndsGenerationAfterTheCurrentToken()
    {
        using var m = PretrainedModel.Load(TestPaths.NewTinyModel(seed: 3), "cpu");
        var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
        using var cts = new CancellationTokenSource();
        int pieces = 0;
        var result = generator.Generate([m.EncodeText("Weight 70 kg")], new GenerationOptions(MaxNewTokens: 40),
            (_, _) => { if (++pieces == 3) cts.Cancel(); }, cts.Token)[0];
        Assert.Equal(FinishReason.Cancelled, result.FinishReason);
        Assert.True(result.OutputIds.Length < 40, $"{result.OutputIds.Length} tokens");
    }

    [Theory]
    [InlineData("<think>why</think>42", false, "why", "42")]
    [InlineData("plan</think>\n\nThe answer", true, "plan", "The answer")]
    [InlineData("just an answer", false, null, "just an answer")]
    public void AWholeGenerationSplitsIntoReasoningAndAnswer(string text, bool opens, string? reasoning, string answer) =>
        Assert.Equal((reasoning, answer), ReasoningSplitter.Split(text, opens));

    [Theory]
    [InlineData(true, new[] { "plan", "</th", "ink>\n\nThe answer" }, "plan", "\n\nThe answer")]
    [InlineData(false, new[] { "<thi", "nk>why</think>", "42" }, "why", "42")]
    [InlineData(false, new[] { "no reasoning at all" }, "", "no reasoning at all")]
    public void ReasoningIsSeparatedFromTheAnswer(bool startsInReasoning, string[] pieces, string reasoning, string answer)
    {
        var splitter = new ReasoningSplitter(startsInReasoning);
        var segments = pieces.SelectMany(splitter.Push).ToList();
        if (splitter.Flush() is { } rest) segments.Add(rest);
        Assert.Equal(reasoning, string.Concat(segments.Where(s => s.IsReasoning).Select(s => s.Text)));
        Assert.Equal(answer, string.Concat(segments.Where(s => !s.IsReasoning).Select(s => s.Text)));
    }
}
