using System.Text.Json;
using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

/// <summary>BLEU (13a and zh) and chrF against sacrebleu itself on the committed pairs (Fixtures/eval/pairs.jsonl:
/// punctuation, numbers, entities, unicode, emoji, Python-only whitespace, an empty prediction, Chinese, Japanese),
/// each pair alone and all together. Tolerance 0.01, the bar. The fixture is made on a machine with
/// sacrebleu: python3 scripts/fixtures/eval_reference.py > tests/SharpTune.Tests/Fixtures/eval/sacrebleu.json</summary>
public class SacrebleuFixtureTests
{
    const double Tol = 0.01;

    static string Dir => Path.Combine(TestPaths.Fixtures, "eval");

    [Fact]
    public void BleuAndChrfMatchSacrebleu()
    {
        string path = Path.Combine(Dir, "sacrebleu.json");
        Assert.True(File.Exists(path),
            "Fixtures/eval/sacrebleu.json is missing: make it where sacrebleu is installed with " +
            "python3 scripts/fixtures/eval_reference.py > tests/SharpTune.Tests/Fixtures/eval/sacrebleu.json");
        var pairs = File.ReadLines(Path.Combine(Dir, "pairs.jsonl")).Where(l => l.Trim().Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement).Select(e => (Name: e.GetProperty("name").GetString()!,
                Prediction: e.GetProperty("prediction").GetString()!, Reference: e.GetProperty("reference").GetString()!)).ToList();
        using var fixture = JsonDocument.Parse(File.ReadAllText(path));
        var expected = fixture.RootElement.GetProperty("pairs").EnumerateArray().ToList();
        Assert.Equal(pairs.Count, expected.Count);
        var failures = new List<string>();
        for (int i = 0; i < pairs.Count; i++)
        {
            Assert.Equal(pairs[i].Name, expected[i].GetProperty("name").GetString());
            Check(pairs[i].Name, [pairs[i].Prediction], [pairs[i].Reference], expected[i], failures);
        }
        Check("corpus", pairs.Select(p => p.Prediction).ToList(), pairs.Select(p => p.Reference).ToList(), fixture.RootElement.GetProperty("corpus"), failures);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    static void Check(string name, List<string> predictions, List<string> references, JsonElement expected, List<string> failures)
    {
        var ours = new Dictionary<string, double>
        {
            ["bleu_13a"] = Bleu.Corpus(predictions, references, "13a").Score,
            ["bleu_zh"] = Bleu.Corpus(predictions, references, "zh").Score,
            ["chrf"] = Chrf.Corpus(predictions, references),
        };
        foreach (var (metric, value) in ours)
        {
            double reference = expected.GetProperty(metric).GetDouble();
            if (Math.Abs(value - reference) > Tol) failures.Add($"{name} {metric}: ours {value:0.####}, sacrebleu {reference:0.####}");
        }
    }
}
