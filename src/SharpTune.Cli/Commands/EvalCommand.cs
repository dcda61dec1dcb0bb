using System.CommandLine;
using SharpTune.Data;
using SharpTune.Evaluation;
using SharpTune.Reporting;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune eval --model DIR [--adapter DIR] --data FILE|HUB_ID [--task generate|choice] [--base-too]`.</summary>
static class EvalCommand
{
    public static Command Create(TextWriter stdout)
    {
        var modelFlags = new ModelFlags();
        var data = new Option<string>("--data") { Description = "Held-out set: file, folder or Hub dataset id (question/answer rows, or multiple-choice rows with --task choice)", Required = true };
        var dataConfig = new Option<string?>("--data-config") { Description = "Subset/config of --data (e.g. all for cais/mmlu)" };
        var dataSplit = new Option<string>("--data-split") { Description = "Split of --data", DefaultValueFactory = _ => "test" };
        var task = new Option<string>("--task") { Description = "generate (answers scored with text metrics) or choice (multiple choice accuracy)", DefaultValueFactory = _ => "generate" };
        var mode = new Option<string>("--mode") { Description = "choice: loglik (option letter log-likelihood) or generate (the letter the model writes)", DefaultValueFactory = _ => "loglik" };
        var shots = new Option<int>("--shots") { Description = "choice: solved examples of the same subject in each prompt (k-shot)" };
        var baseToo = new Option<bool>("--base-too") { Description = "Also score the base model (adapter off) on the same set" };
        var general = new Option<string?>("--general") { Description = "General-knowledge multiple-choice set (e.g. an MMLU sample) to show forgetting" };
        var generalConfig = new Option<string?>("--general-config") { Description = "Subset/config of --general" };
        var generalSplit = new Option<string>("--general-split") { Description = "Split of --general", DefaultValueFactory = _ => "test" };
        var limit = new Option<int>("--limit") { Description = "Use the first N rows (0 = all)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate per answer", DefaultValueFactory = _ => 256 };
        var budget = new Option<long>("--token-budget") { Description = "Most tokens in one batch, rows × (prompt + new tokens): bounds memory", DefaultValueFactory = _ => 65536 };
        var batch = new Option<int>("--batch-size") { Description = "Most rows in one batch", DefaultValueFactory = _ => 64 };
        var bias = new Option<bool>("--bias") { Description = "Run the counterfactual bias probe (sex, age group, ethnicity)" };
        var biasTemplates = new Option<string?>("--bias-templates") { Description = "JSONL of bias templates replacing the built-in ones" };
        var output = new Option<string>("--output", "-o") { Description = "Folder for eval.json, eval.md, eval.html and charts", DefaultValueFactory = _ => "sharptune-eval" };
        var samples = new Option<int>("--samples") { Description = "Side-by-side answers in the report", DefaultValueFactory = _ => 5 };
        var metrics = EvalFlags.Metrics();
        var stemmer = EvalFlags.Stemmer();
        var bleuTokenizer = EvalFlags.BleuTokenizer();
        var json = CommonOptions.Json();
        var cmd = new Command("eval", "Evaluate a model (and its base) on a held-out set: text metrics or multiple choice, bias probe, report")
        {
            data, dataConfig, dataSplit, task, mode, shots, baseToo, general, generalConfig, generalSplit, limit, maxNew, budget, batch,
            bias, biasTemplates, output, samples, metrics, stemmer, bleuTokenizer, json,
        };
        modelFlags.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var choiceMode = p.GetValue(mode) switch
            {
                "loglik" => ChoiceMode.LogLikelihood,
                "generate" => ChoiceMode.Generate,
                var other => throw new SharpTuneException($"--mode must be loglik or generate, got '{other}'"),
            };
            string dir = p.GetValue(output)!;
            OutputFolder.RequireWritable(dir, "report folder");   // before the evaluation, not after it
            var scoreOptions = new ScoreOptions(EvalFlags.MetricNames(p, metrics), p.GetValue(stemmer), p.GetValue(bleuTokenizer)!);
            TextMetrics.Resolve(scoreOptions.Metrics);   // a typo fails before anything downloads or loads
            var (modelDir, adapter, promptFormat, device, dtype) = modelFlags.Values(p);
            var options = new EvalOptions
            {
                ModelDir = modelDir,
                AdapterDir = adapter,
                Data = new DatasetSource(ModelLocator.ResolveDataset(p.GetValue(data)!)) { Subset = p.GetValue(dataConfig), Split = p.GetValue(dataSplit)! },
                Task = p.GetValue(task)!,
                BaseToo = p.GetValue(baseToo),
                General = p.GetValue(general) is { } g
                    ? new DatasetSource(ModelLocator.ResolveDataset(g)) { Subset = p.GetValue(generalConfig), Split = p.GetValue(generalSplit)! } : null,
                Limit = p.GetValue(limit),
                MaxNewTokens = p.GetValue(maxNew),
                TokenBudget = p.GetValue(budget),
                MaxBatch = p.GetValue(batch),
                ChoiceMode = choiceMode,
                Shots = p.GetValue(shots),
                Score = scoreOptions,
                PromptFormat = promptFormat,
                Device = device,
                DType = dtype,
                Bias = p.GetValue(bias) || p.GetValue(biasTemplates) is not null,
                BiasTemplates = p.GetValue(biasTemplates),
                SampleCount = p.GetValue(samples),
            };
            var result = ModelEvaluator.Run(options, EvalFlags.Progress());
            string jsonPath = EvalJson.Write(result, dir);
            var report = EvalReport.Write(result, dir, EvalReport.TrainingMetricsFor(adapter));
            if (p.GetValue(json))
            {
                stdout.WriteLine(EvalJson.Serialize(EvalJson.ToJson(result)));
                return;
            }
            PrintSummary(stdout, result);
            foreach (var note in report.Notes) stdout.WriteLine($"note: {note}");
            stdout.WriteLine($"Scores: {jsonPath}");
            stdout.WriteLine($"Report: {report.Html}");
        });
        return cmd;
    }

    /// <summary>One line per model: the headline numbers.</summary>
    internal static void PrintSummary(TextWriter stdout, EvalResult result)
    {
        foreach (var m in result.Models)
        {
            var parts = new List<string>();
            if (m.Text is { } t)
                parts.AddRange(t.Answer.Where(kv => kv.Key is "rougeL" or "bleu" or "chrf" or "token_f1" or "exact_match").Select(kv => $"{kv.Key} {kv.Value:0.####}"));
            if (m.Text?.ReasoningStats is { } rs) parts.Add($"closes </think> {rs.ClosedShare:P0}");
            if (m.Choice is { } c) parts.Add($"accuracy {c.Accuracy:P1} ({c.Correct}/{c.Count})");
            if (m.General is { } g) parts.Add($"general accuracy {g.Accuracy:P1}");
            if (m.Bias is { } b) parts.AddRange(b.Select(x => $"{x.Attribute} answer gap {x.AnswerGap:0.###}"));
            if (m.Throughput is { } th) parts.Add($"{th.SamplesPerSecond:0.00} samples/s");
            stdout.WriteLine($"{m.Name,-11} {string.Join(", ", parts)}");
        }
    }
}
