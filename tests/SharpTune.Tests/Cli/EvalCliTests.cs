using System.Text.Json;
using SharpTune.Cli;
using SharpTune.Evaluation;
using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;

namespace SharpTune.Tests.Cli;

/// <summary>`sharptune score` and `sharptune eval`, run in-process: outputs, reports, and one-line errors that name the
/// file and row, with nothing written.</summary>
public class EvalCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static void AssertOneLineError((int Code, string Out, string Err) r, string expected)
    {
        Assert.Equal(1, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error", StringComparison.Ordinal)).ToList();
        Assert.Single(lines);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", r.Err);
    }

    static string Jsonl(string dir, string name, params object[] rows)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(r)));
        return path;
    }

    [Fact]
    public void ScorePrintsEveryMetricAsJson()
    {
        string dir = TestPaths.TempDir();
        string p = Jsonl(dir, "p.jsonl", new { text = "the cat is on the mat" }, new { text = "<think>sum it</think>42 mg" });
        string r = Jsonl(dir, "r.jsonl", new { text = "the cat sat on the mat" }, new { text = "42 mg", reasoning = "sum it" });
        var result = Run("score", "--predictions", p, "--references", r, "--json");
        Assert.Equal(0, result.Code);
        var json = JsonDocument.Parse(result.Out).RootElement;
        var expected = TextMetrics.Score(["the cat is on the mat", "42 mg"], ["the cat sat on the mat", "42 mg"]);
        foreach (var (name, value) in expected) Assert.Equal(value, json.GetProperty(name).GetDouble(), 12);
        Assert.Equal(1.0, json.GetProperty("reasoning").GetProperty("rougeL").GetDouble(), 12);
        Assert.Equal(0.5, json.GetProperty("reasoning_stats").GetProperty("closed_think_share").GetDouble(), 12);

        var some = JsonDocument.Parse(Run("score", "--predictions", p, "--references", r, "--metrics", "bleu,rouge1", "--json").Out).RootElement;
        Assert.Equal(["bleu", "rouge1", "reasoning", "reasoning_stats"], some.EnumerateObject().Select(o => o.Name));
    }

    [Fact]
    public void ScoreRejectsBadInputWithOneLineNamingFileAndRow()
    {
        string dir = TestPaths.TempDir();
        string p = Jsonl(dir, "p.jsonl", new { text = "a" }, new { text = "b" }, new { text = "c" });
        string r = Jsonl(dir, "r.jsonl", new { text = "a" }, new { text = "b" });
        AssertOneLineError(Run("score", "--predictions", p, "--references", r), "p.jsonl: row 3 has no partner: " + r + " ends after 2 rows");
        string noText = Jsonl(dir, "n.jsonl", new { text = "a" }, new { answer = "b" });
        AssertOneLineError(Run("score", "--predictions", noText, "--references", r), "n.jsonl:2: no \"text\" string");
        AssertOneLineError(Run("score", "--predictions", r, "--references", r, "--metrics", "rogue1"), "unknown metric 'rogue1'");
        string empty = Path.Combine(dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        AssertOneLineError(Run("score", "--predictions", empty, "--references", r), "empty.jsonl: no rows");
    }

    static readonly Lazy<(string Model, string Adapter)> TinyWithAdapter = new(() =>
    {
        string model = TestPaths.NewTinyModel(seed: 9);
        string adapter = Path.Combine(TestPaths.TempDir(), "adapter");
        using var m = PretrainedModel.Load(model, "cpu");
        using var lora = LoraAdapter.Attach(m.CausalLM, new LoraOptions(Rank: 4, Alpha: 8), seed: 1);
        using (torch.no_grad()) lora.Values.normal_(0, 0.5);   // B is zero at init: make the adapter change the model
        lora.Save(adapter);
        return (model, adapter);
    });

    [Fact]
    public void EvalGenerateScoresBaseAndFineTunedAndWritesTheReport()
    {
        string dir = TestPaths.TempDir();
        string data = Jsonl(dir, "test.jsonl",
            new { Question = "What is 2 + 2?", Complex_CoT = "Add two and two.", Response = "4" },
            new { Question = "Name a vitamin.", Complex_CoT = "Vitamins include C.", Response = "Vitamin C" },
            new { Question = "Dose for 70 kg at 2 mg/kg?", Complex_CoT = "70 times 2.", Response = "140 mg" });
        string output = Path.Combine(dir, "out");
        var (model, adapter) = TinyWithAdapter.Value;
        var r = Run("eval", "--model", model, "--adapter", adapter, "--data", data, "--base-too", "--max-new-tokens", "6",
            "--token-budget", "100", "--device", "cpu", "--output", output, "--bias");
        Assert.True(r.Code == 0, r.Err);
        var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "eval.json"))).RootElement;
        Assert.Equal(3, json.GetProperty("count").GetInt32());
        var models = json.GetProperty("models");
        foreach (var name in new[] { "base", "fine-tuned" })
        {
            var text = models.GetProperty(name).GetProperty("text");
            foreach (var metric in TextMetrics.Names) Assert.True(text.TryGetProperty(metric, out _), $"{name} lacks {metric}");
            Assert.Equal(3, models.GetProperty(name).GetProperty("throughput").GetProperty("samples").GetInt32());
            Assert.Equal(3, models.GetProperty(name).GetProperty("bias").GetArrayLength());   // sex, age group, ethnicity
        }
        Assert.Equal(3, json.GetProperty("samples").GetArrayLength());
        string html = File.ReadAllText(Path.Combine(output, "eval.html"));
        Assert.Contains("Answer metrics", html);
        Assert.Contains("Sample answers", html);
        Assert.True(File.Exists(Path.Combine(output, "eval.md")));
    }

    [Fact]
    public void EvalChoiceReportsAccuracyPerSubjectAndRejectsABadLetterBeforeWritingAnything()
    {
        string dir = TestPaths.TempDir();
        string data = Jsonl(dir, "mc.jsonl",
            new { question = "2+2?", choices = new[] { "3", "4", "5", "6" }, answer = 1, subject = "math" },
            new { question = "3+3?", choices = new[] { "6", "7", "8", "9" }, answer = 0, subject = "math" },
            new { question = "Largest organ?", choices = new[] { "liver", "skin", "heart", "lung" }, answer = 1, subject = "anatomy" });
        string output = Path.Combine(dir, "out");
        var (model, adapter) = TinyWithAdapter.Value;
        foreach (var mode in new[] { "loglik", "generate" })
        {
            var r = Run("eval", "--model", model, "--adapter", adapter, "--data", data, "--task", "choice", "--mode", mode, "--shots", "1",
                "--general", data, "--device", "cpu", "--output", output, "--max-new-tokens", "4");
            Assert.True(r.Code == 0, r.Err);
            var ft = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "eval.json"))).RootElement.GetProperty("models").GetProperty("fine-tuned");
            var choice = ft.GetProperty("choice");
            Assert.Equal(3, choice.GetProperty("count").GetInt32());
            Assert.Equal(["anatomy", "math"], choice.GetProperty("per_subject").EnumerateObject().Select(o => o.Name));
            Assert.Equal(2, choice.GetProperty("per_subject").GetProperty("math").GetProperty("count").GetInt32());
            Assert.Equal(3, ft.GetProperty("general").GetProperty("count").GetInt32());
        }

        string bad = Jsonl(dir, "bad.jsonl",
            new { question = "2+2?", choices = new[] { "3", "4", "5", "6" }, answer = "B" },
            new { question = "3+3?", choices = new[] { "6", "7", "8", "9" }, answer = "E" });
        string badOutput = Path.Combine(dir, "bad-out");
        AssertOneLineError(Run("eval", "--model", model, "--data", bad, "--task", "choice", "--device", "cpu", "--output", badOutput),
            "bad.jsonl:2: answer letter 'E' is not one of the options A–D");
        Assert.False(Directory.Exists(badOutput));
        string empty = Path.Combine(dir, "empty.jsonl");
        File.WriteAllText(empty, "");
        AssertOneLineError(Run("eval", "--model", model, "--data", empty, "--device", "cpu", "--output", badOutput), "no rows: the set is empty");
        AssertOneLineError(Run("eval", "--model", model, "--data", data, "--metrics", "bleu4", "--output", badOutput), "unknown metric 'bleu4'");
        Assert.False(Directory.Exists(badOutput));
    }

    [Fact]
    public void TrainEndsWithAShortEvaluationOnTheValidationSplit()
    {
        string output = TestPaths.TempDir();
        var r = Run("train", "--model", TinyWithAdapter.Value.Model, "--max-steps", "2", "--output-dir", output, "--device", "cpu", "--max-length", "128",
            "--batch-size", "2", "--gradient-accumulation", "1", "--validation-fraction", "0.05", "--eval-every", "0");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("Validation split (8 examples, greedy, 64 new tokens):", r.Out);
        var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "eval", "eval.json"))).RootElement;
        Assert.Equal(8, json.GetProperty("count").GetInt32());
        Assert.Equal(["base", "fine-tuned"], json.GetProperty("models").EnumerateObject().Select(o => o.Name));
        Assert.True(json.GetProperty("models").GetProperty("fine-tuned").GetProperty("text").TryGetProperty("rougeL", out _));
        Assert.True(File.Exists(Path.Combine(output, "eval", "eval.html")));
    }
}
