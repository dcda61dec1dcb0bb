using SharpTune.Data;
using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

public class ChoiceTests
{
    static DatasetRow Row(params (string Key, object? Value)[] values)
    {
        var d = new OrderedDictionary<string, object?>();
        foreach (var (k, v) in values) d[k] = v;
        return new DatasetRow("set.jsonl:3", 2, d);
    }

    [Fact]
    public void ReadsMmluMedMcqaAndPlainLayouts()
    {
        var mmlu = ChoiceReader.Parse(Row(("question", "2+2?"), ("subject", "elementary_mathematics"), ("choices", new List<object?> { "3", "4", "5", "6" }), ("answer", 1L)));
        Assert.Equal(["3", "4", "5", "6"], mmlu.Options);
        Assert.Equal((1, "elementary_mathematics"), (mmlu.Answer, mmlu.Subject));
        var med = ChoiceReader.Parse(Row(("question", "Q"), ("opa", "a"), ("opb", "b"), ("opc", "c"), ("opd", "d"), ("cop", 3L), ("subject_name", "Anatomy")));
        Assert.Equal((4, 3, "Anatomy"), (med.Options.Count, med.Answer, med.Subject));
        var plain = ChoiceReader.Parse(Row(("question", "Q"), ("A", "x"), ("B", "y"), ("C", "z"), ("answer", "C")));
        Assert.Equal((3, 2, "all"), (plain.Options.Count, plain.Answer, plain.Subject));
        var keyed = ChoiceReader.Parse(Row(("question", "Q"), ("options", new Dictionary<string, object?> { ["B"] = "y", ["A"] = "x" }), ("answer", "(b)")));
        Assert.Equal(["x", "y"], keyed.Options);
        Assert.Equal(1, keyed.Answer);
    }

    [Fact]
    public void AnAnswerOutsideTheOptionsNamesTheRow()
    {
        var e = Assert.Throws<SharpTuneException>(() => ChoiceReader.Parse(Row(("question", "Q"), ("choices", new List<object?> { "x", "y", "z", "w" }), ("answer", "E"))));
        Assert.Equal("set.jsonl:3: answer letter 'E' is not one of the options A–D", e.Message);
        e = Assert.Throws<SharpTuneException>(() => ChoiceReader.Parse(Row(("question", "Q"), ("choices", new List<object?> { "x", "y" }), ("answer", 2L))));
        Assert.StartsWith("set.jsonl:3: answer index 2 is outside the 2 options", e.Message);
        e = Assert.Throws<SharpTuneException>(() => ChoiceReader.Parse(Row(("question", "Q"), ("choices", new List<object?> { "x", "y" }))));
        Assert.StartsWith("set.jsonl:3: no \"answer\"", e.Message);
    }

    [Fact]
    public void PromptIsMmlusWithShotsOfTheSameSubject()
    {
        var q1 = new ChoiceQuestion("r1", "What is 1+1?", ["1", "2"], 1, "math");
        var q2 = new ChoiceQuestion("r2", "What is 2+2?", ["4", "5"], 0, "math");
        var q3 = new ChoiceQuestion("r3", "Capital of France?", ["Paris", "Rome"], 0, "geography");
        var all = new[] { q1, q2, q3 };
        Assert.Equal([q1], ChoiceEvaluator.Shots(all, q2, 5));
        Assert.Equal(
            "The following are multiple choice questions (with answers) about math.\n\n" +
            "What is 1+1?\nA. 1\nB. 2\nAnswer: B\n\n" +
            "What is 2+2?\nA. 4\nB. 5\nAnswer:",
            ChoiceEvaluator.Prompt(q2, ChoiceEvaluator.Shots(all, q2, 1)));
    }

    [Theory]
    [InlineData("<think>it could be A or B</think>The answer is (C).", 4, 2)]
    [InlineData(" B", 4, 1)]
    [InlineData("Answer: D because", 4, 3)]
    [InlineData("I think E", 4, -1)]
    [InlineData("A", 2, 0)]
    [InlineData(" B\n\nQuestion: next one\nAnswer: C", 4, 1)]
    [InlineData("<think>first\n\nthen Answer: A?</think>\nThe answer is D", 4, 3)]
    public void ExtractsTheGeneratedLetter(string text, int options, int expected) => Assert.Equal(expected, ChoiceEvaluator.ExtractLetter(text, options));

    [Fact]
    public void BatchesStayWithinTheTokenBudgetLongestFirst()
    {
        // sorted 50, 40, 20, 10 (+10 new tokens each): [50, 40] = 2 × 60 = 120; [20, 10] = 2 × 30
        Assert.Equal([[1, 3], [2, 0]], TokenBatches.Plan([10, 50, 20, 40], 10, 120, 8));
        Assert.Equal([[1, 3], [2, 0]], TokenBatches.Plan([10, 50, 20, 40], 10, 10_000, 2));
        // a row larger than the budget still gets a batch of its own
        Assert.Equal([[0], [1]], TokenBatches.Plan([500, 5], 0, 100, 8));
    }
}
