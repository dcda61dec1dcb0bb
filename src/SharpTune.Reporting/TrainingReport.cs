using System.Globalization;
using System.Net;
using System.Text;
using SharpTune.Training;

namespace SharpTune.Reporting;

/// <summary>An answer of the model to one question before and after fine-tuning.</summary>

/// <summary>What <see cref="TrainingReport.Write"/> wrote. A chart is null when it could not be drawn; Notes say why.</summary>
public sealed record TrainingReportFiles(
    string Markdown,
    string Html,
    string? LossChart,
    string? LearningRateChart,
    IReadOnlyList<string> Notes);

/// <summary>
/// The end-of-run report, built from the metrics JSONL (<see cref="MetricsLog"/>): loss.png, learning_rate.png,
/// report.md (which links the images) and report.html (self-contained, images embedded), all in
/// <paramref name="outputDir"/>. A chart that cannot be drawn (no font, no native Skia) is left out with a note:
/// the report is still written.
/// </summary>
public sealed class TrainingReport(string outputDir)
{
    public const string LossChartFile = "loss.png";
    public const string LearningRateChartFile = "learning_rate.png";
    public const string MarkdownFile = "report.md";
    public const string HtmlFile = "report.html";

    readonly List<Comparison> _comparisons = [];

    /// <summary>Draws the charts of a run as PNG bytes; replaceable so tests can make drawing fail.</summary>
    internal Func<RunHistory, TrainingCharts.Images> DrawCharts { get; init; } = TrainingCharts.Draw;

    public string OutputDir { get; } = Path.GetFullPath(outputDir);

    /// <summary>Adds a question with the model's answer before and after fine-tuning (and the dataset's answer,
    /// when there is one); they appear in the order added.</summary>
    public void AddComparison(Comparison comparison) => _comparisons.Add(comparison);

    public TrainingReportFiles Write(string metricsPath)
    {
        RunHistory run = MetricsLog.Read(metricsPath);
        Directory.CreateDirectory(OutputDir);
        var notes = new List<string>();
        if (run.End is null)
            notes.Add("The run has no end record: it was stopped or is still running; the report shows the steps logged so far.");

        string lossPath = Path.Combine(OutputDir, LossChartFile);
        string lrPath = Path.Combine(OutputDir, LearningRateChartFile);
        TrainingCharts.Images? charts = null;
        if (run.Steps.Count == 0)
            notes.Add("No training step was logged, so there are no charts.");
        else
        {
            try
            {
                charts = DrawCharts(run);
            }
            catch (Exception ex)
            {
                // A report without pictures beats a crashed run at its very end.
                notes.Add($"The charts could not be drawn ({ex.GetType().Name}: {ex.Message}). " +
                    "Plotting needs SkiaSharp's native library and a TrueType font (e.g. fonts-dejavu-core).");
            }
        }
        if (charts is not null)
        {
            AtomicFile.Write(lossPath, s => s.Write(charts.Loss));
            AtomicFile.Write(lrPath, s => s.Write(charts.LearningRate));
        }
        else
        {
            // Charts of an earlier report in this folder would not match this run.
            File.Delete(lossPath);
            File.Delete(lrPath);
        }

        var content = new Content(run, SummaryRows(run), charts, notes, _comparisons, DateTime.UtcNow);
        string mdPath = Path.Combine(OutputDir, MarkdownFile);
        string htmlPath = Path.Combine(OutputDir, HtmlFile);
        AtomicFile.WriteAllText(mdPath, RenderMarkdown(content));
        AtomicFile.WriteAllText(htmlPath, RenderHtml(content));
        return new TrainingReportFiles(mdPath, htmlPath, charts is null ? null : lossPath,
            charts is null ? null : lrPath, notes);
    }

    sealed record Content(
        RunHistory Run,
        IReadOnlyList<(string Label, string Value)> Summary,
        TrainingCharts.Images? Charts,
        IReadOnlyList<string> Notes,
        IReadOnlyList<Comparison> Comparisons,
        DateTime GeneratedUtc)
    {
        public string Title => $"Training report: {Run.Start?.Model ?? "unknown model"}";
        public string Generated => $"Generated {GeneratedUtc.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC by SharpTune.";
    }

    static List<(string, string)> SummaryRows(RunHistory run)
    {
        var rows = new List<(string, string)>();
        TrainStart? start = run.Start;
        TrainSummary? end = run.End;
        StepMetrics? last = run.Steps.Count > 0 ? run.Steps[^1] : null;

        rows.Add(("Model", start?.Model ?? "unknown"));
        if (start is not null)
        {
            rows.Add(("Device", start.Device));
            double share = start.TotalParameters > 0 ? 100.0 * start.TrainableParameters / start.TotalParameters : 0;
            rows.Add(("Trainable parameters",
                $"{Count(start.TrainableParameters)} of {Count(start.TotalParameters)} ({Num(share, "0.###")}%)"));
            rows.Add(("Sequences", $"{Count(start.TrainSequences)} training, {Count(start.ValidationSequences)} validation"));
        }
        int steps = end?.Steps ?? last?.Step ?? 0;
        int? maxSteps = last?.MaxSteps ?? start?.MaxSteps;
        string stepsText = maxSteps is int max ? $"{Count(steps)} of {Count(max)}" : Count(steps);
        rows.Add(("Steps", end is null ? $"{stepsText} (did not finish)" : $"{stepsText} (stopped by {end.Reason.Name()})"));
        // StepMetrics.Tokens is the running total of trained tokens.
        if (last is not null)
            rows.Add(("Tokens trained", Count(last.Tokens)));
        double? tokensPerSecond = end?.TokensPerSecond ?? last?.TokensPerSecond;
        if (tokensPerSecond is double tps)
            rows.Add(("Throughput", $"{Count((long)Math.Round(tps))} tokens/s"));
        double? elapsed = end?.ElapsedSeconds ?? last?.ElapsedSeconds;
        if (elapsed is double seconds)
            rows.Add(("Training time", Durations.Format(seconds)));
        if ((end?.FinalLoss ?? last?.Loss) is double finalLoss)
            rows.Add(("Final training loss", Num(finalLoss, "0.0000")));
        double? bestEval = end?.BestEvalLoss ?? (run.Evals.Count > 0 ? run.Evals.Min(e => e.Loss) : null);
        if (bestEval is double best)
            rows.Add(("Best eval loss", $"{Num(best, "0.0000")} (perplexity {Num(Math.Exp(best), "0.00")})"));
        if (end is not null)
            rows.Add(("Adapter", end.AdapterDir));
        if (start is not null)
            rows.Add(("Output folder", start.OutputDir));
        return rows;
    }

    static string RenderMarkdown(Content c)
    {
        var md = new StringBuilder();
        md.Append("# ").Append(c.Title).Append("\n\n").Append(c.Generated).Append("\n\n");
        md.Append("## Summary\n\n| | |\n|---|---|\n");
        foreach (var (label, value) in c.Summary)
            md.Append("| ").Append(label).Append(" | ").Append(MarkdownCell(value)).Append(" |\n");
        md.Append('\n');
        foreach (string note in c.Notes)
            md.Append("> **Note:** ").Append(note).Append("\n\n");
        if (c.Charts is not null)
        {
            md.Append("## Loss\n\n![Training and eval loss per step](").Append(LossChartFile).Append(")\n\n");
            md.Append("## Learning rate\n\n![Learning rate per step](").Append(LearningRateChartFile).Append(")\n\n");
        }
        if (c.Run.Evals.Count > 0)
        {
            md.Append("## Evaluation\n\n| Step | Loss | Perplexity | Tokens |\n|---:|---:|---:|---:|\n");
            foreach (var e in c.Run.Evals)
                md.Append($"| {e.Step} | {Num(e.Loss, "0.0000")} | {Num(e.Perplexity, "0.00")} | {Count(e.Tokens)} |\n");
            md.Append('\n');
        }
        if (c.Comparisons.Count > 0)
        {
            md.Append("## Before and after fine-tuning\n\n");
            for (int i = 0; i < c.Comparisons.Count; i++)
            {
                var cmp = c.Comparisons[i];
                md.Append("### Example ").Append(i + 1).Append(cmp.HeldOut ? " (held out)" : " (from the training data)").Append("\n\n");
                AppendBlock(md, "Question", cmp.Question);
                AppendBlock(md, "Before fine-tuning", cmp.Before);
                AppendBlock(md, "After fine-tuning", cmp.After);
                if (cmp.Reference is not null)
                    AppendBlock(md, "Reference answer", cmp.Reference);
            }
        }
        return md.ToString();

        static void AppendBlock(StringBuilder md, string label, string text)
        {
            // A fence longer than any backtick run inside keeps model output (code, <think> tags) verbatim.
            int longestRun = 0, run = 0;
            foreach (char ch in text)
                longestRun = Math.Max(longestRun, run = ch == '`' ? run + 1 : 0);
            string fence = new('`', Math.Max(3, longestRun + 1));
            md.Append("**").Append(label).Append("**\n\n")
                .Append(fence).Append("text\n").Append(text.TrimEnd('\n')).Append('\n').Append(fence).Append("\n\n");
        }
    }

    static string RenderHtml(Content c)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .Append("<title>").Append(Html(c.Title)).Append("</title>\n<style>").Append(Css).Append("</style>\n</head>\n<body>\n<main>\n");
        html.Append("<h1>").Append(Html(c.Title)).Append("</h1>\n<p class=\"muted\">").Append(Html(c.Generated)).Append("</p>\n");
        html.Append("<h2>Summary</h2>\n<table class=\"summary\">\n");
        foreach (var (label, value) in c.Summary)
            html.Append("<tr><th>").Append(Html(label)).Append("</th><td>").Append(Html(value)).Append("</td></tr>\n");
        html.Append("</table>\n");
        foreach (string note in c.Notes)
            html.Append("<p class=\"note\"><strong>Note:</strong> ").Append(Html(note)).Append("</p>\n");
        if (c.Charts is not null)
        {
            html.Append("<h2>Loss</h2>\n").Append(Image(c.Charts.Loss, "Training and eval loss per step"));
            html.Append("<h2>Learning rate</h2>\n").Append(Image(c.Charts.LearningRate, "Learning rate per step"));
        }
        if (c.Run.Evals.Count > 0)
        {
            html.Append("<h2>Evaluation</h2>\n<table class=\"numbers\">\n<tr><th>Step</th><th>Loss</th><th>Perplexity</th><th>Tokens</th></tr>\n");
            foreach (var e in c.Run.Evals)
                html.Append($"<tr><td>{e.Step}</td><td>{Num(e.Loss, "0.0000")}</td><td>{Num(e.Perplexity, "0.00")}</td><td>{Count(e.Tokens)}</td></tr>\n");
            html.Append("</table>\n");
        }
        if (c.Comparisons.Count > 0)
        {
            html.Append("<h2>Before and after fine-tuning</h2>\n");
            for (int i = 0; i < c.Comparisons.Count; i++)
            {
                var cmp = c.Comparisons[i];
                html.Append("<section class=\"example\">\n<h3>Example ").Append(i + 1).Append(cmp.HeldOut ? " (held out)" : " (from the training data)").Append("</h3>\n");
                html.Append("<pre class=\"question\">").Append(Html(cmp.Question)).Append("</pre>\n<div class=\"answers\">\n");
                AppendAnswer(html, "Before fine-tuning", cmp.Before);
                AppendAnswer(html, "After fine-tuning", cmp.After);
                if (cmp.Reference is not null)
                    AppendAnswer(html, "Reference answer", cmp.Reference);
                html.Append("</div>\n</section>\n");
            }
        }
        html.Append("</main>\n</body>\n</html>\n");
        return html.ToString();

        static string Image(byte[] png, string alt) =>
            $"<img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" alt=\"{Html(alt)}\">\n";

        static void AppendAnswer(StringBuilder html, string label, string text) =>
            html.Append("<div><h4>").Append(Html(label)).Append("</h4><pre>").Append(Html(text)).Append("</pre></div>\n");
    }

    const string Css = """

        body { margin: 0; background: #f6f7f9; color: #1d2330; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
        main { max-width: 1040px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; box-sizing: border-box; }
        h1 { font-size: 1.6em; margin: 0.2em 0; }
        h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #e3e6eb; padding-bottom: 4px; }
        h3 { font-size: 1.05em; margin-bottom: 0.4em; }
        h4 { font-size: 0.9em; margin: 0 0 4px; color: #4a5263; text-transform: uppercase; letter-spacing: 0.04em; }
        .muted { color: #6b7385; margin-top: 0; }
        table { border-collapse: collapse; }
        th, td { padding: 5px 12px; border-bottom: 1px solid #eceef2; text-align: left; vertical-align: top; }
        table.summary th { color: #4a5263; font-weight: 600; white-space: nowrap; }
        table.summary td { word-break: break-all; }
        table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
        img { max-width: 100%; height: auto; border: 1px solid #eceef2; border-radius: 6px; }
        .note { background: #fff8e6; border-left: 4px solid #f0b429; padding: 8px 12px; }
        pre { white-space: pre-wrap; word-wrap: break-word; margin: 0; padding: 10px 12px; background: #f6f7f9;
              border: 1px solid #e3e6eb; border-radius: 6px; font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
        .example { margin-bottom: 1.6em; }
        .question { background: #eef4ff; border-color: #d5e3fb; margin-bottom: 10px; }
        .answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }

        """;

    static string Html(string text) => WebUtility.HtmlEncode(text);

    static string MarkdownCell(string text) => text.Replace("|", "\\|").ReplaceLineEndings(" ");

    static string Num(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
