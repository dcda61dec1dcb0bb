using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

public class ReasoningTextTests
{
    [Fact]
    public void SplitsClosedOpenedAndPlainGenerations()
    {
        var closed = ReasoningText.Split("<think>\nadd the doses\n</think>\n\n40 mg");
        Assert.Equal(("add the doses", "40 mg", true, true), (closed.Reasoning, closed.Answer, closed.HasReasoning, closed.Closed));
        // R1's template opens <think> in the prompt: the generation starts inside the block
        var opened = ReasoningText.Split("weigh first</think>70 kg");
        Assert.Equal(("weigh first", "70 kg", true, true), (opened.Reasoning, opened.Answer, opened.HasReasoning, opened.Closed));
        var unfinished = ReasoningText.Split("<think>still going");
        Assert.Equal(("still going", "", true, false), (unfinished.Reasoning, unfinished.Answer, unfinished.HasReasoning, unfinished.Closed));
        var plain = ReasoningText.Split("just an answer");
        Assert.Equal(("", "just an answer", false, false), (plain.Reasoning, plain.Answer, plain.HasReasoning, plain.Closed));
    }

    [Fact]
    public void ScoresTheAnswerAndTheReasoningApart()
    {
        var predictions = new List<PredictionRow> { new("<think>a b c</think>x y", "eos"), new("<think>a b", "length") };
        var references = new List<ReferenceRow> { new("x y", "a b c"), new("z", "a b") };
        var s = TextScores.Of(predictions, references, new ScoreOptions(["rouge1", "exact_match"]));
        Assert.Equal(0.5, s.Answer["exact_match"], 12);          // "x y" = "x y"; "" ≠ "z"
        Assert.Equal(1.0, s.Reasoning!["rouge1"], 12);           // both reasonings match exactly
        Assert.Equal(2.5, s.ReasoningStats!.MeanReasoningWords, 12);
        Assert.Equal(0.5, s.ReasoningStats.ClosedShare, 12);
        Assert.Equal(0.5, s.ReasoningStats.UnfinishedShare, 12);
    }
}
