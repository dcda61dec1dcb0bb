using System.Globalization;
using System.Net;
using System.Text;
using SharpTune.Evaluation;
using SharpTune.Training;

namespace SharpTune.Reporting;

/// <summary>What <see cref="EvalReport.Write"/> wrote; Notes say why a chart is missing.</summary>
public sealed record EvalReportFiles(string Markdown, string Html, IReadOnlyList<string> Charts, IReadOnlyList<string> Notes);

/// <summary>
/// The evaluation report: eval.md (linking PNG charts) and eval.html (self-contained) with the metric tables,
/// charts, the training curves when the adapter's run left a metrics.jsonl, and side-by-side sample answers.
/// </summary>
public static class EvalReport
{
    public const string MarkdownFile = "eval.md", HtmlFile = "eval.html";

    sealed record Chart(string File, string Title, byte[] Png);

    /// <param name="trainingMetrics">metrics.jsonl of the run that made the adapter, when there is one</param>
    public static EvalReportFiles Write(EvalResult r, string dir, string? trainingMetrics = null)
    {
        Directory.CreateDirectory(dir);
        var notes = new List<string>();
        var charts = new List<Chart>();
        try
        {
            charts.AddRange(DrawCharts(r));
        }
        catch (Exception ex)
        {
            notes.Add($"The charts could not be drawn ({ex.GetType().Name}: {ex.Message}). Plotting needs SkiaSharp's native library and a TrueType font (e.g. fonts-dejavu-core).");
        }
        if (trainingMetrics is not null)
        {
            try
            {
                var run = MetricsLog.Read(trainingMetrics);
                if (run.Steps.Count > 0) charts.Add(new("eval_training_loss.png", "Training curves of the adapter's run", EvalCharts.TrainingLoss(run)));
            }
            catch (Exception ex)
            {
                notes.Add($"The training curves are left out: {ex.Message}");
            }
        }
        foreach (var c in charts) AtomicFile.Write(Path.Combine(dir, c.File), s => s.Write(c.Png));
        var sections = Sections(r);
        string md = Path.Combine(dir, MarkdownFile), html = Path.Combine(dir, HtmlFile);
        AtomicFile.WriteAllText(md, Markdown(r, sections, charts, notes));
        AtomicFile.WriteAllText(html, Html(r, sections, charts, notes));
        return new EvalReportFiles(md, html, charts.Select(c => Path.Combine(dir, c.File)).ToList(), notes);
    }

    /// <summary>The run's metrics.jsonl next to an adapter written by `sharptune train` (OUTPUT/adapter).</summary>
    public static string? TrainingMetricsFor(string? adapterDir)
    {
        if (adapterDir is null) return null;
        string? parent = Path.GetDirectoryName(Path.GetFullPath(adapterDir).TrimEnd(Path.DirectorySeparatorChar));
        string? path = parent is null ? null : Path.Combine(parent, "metrics.jsonl");
        return path is not null && File.Exists(path) ? path : null;
    }

    /// <summary>A titled table: a header row and rows of cells.</summary>
    sealed record Table(string Title, string? Caption, string[] Header, List<string[]> Rows);

    static List<Table> Sections(EvalResult r)
    {
        var models = r.Models;
        string[] header = ["", .. models.Select(m => m.Name)];
        var tables = new List<Table>
        {
            new("Summary", null, ["", ""], [
                ["Model", r.Model], ["Adapter", r.Adapter ?? "(none)"], ["Data", r.Data], ["Task", r.Task + (r.ChoiceMode is { } cm ? $" ({cm})" : "")],
                ["Rows", r.Count.ToString(CultureInfo.InvariantCulture)], ["Created", r.CreatedUtc.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) + " UTC"]]),
        };
        if (models.All(m => m.Text is not null))
        {
            var names = models[0].Text!.Answer.Keys.ToList();
            tables.Add(new("Answer metrics", "The answer (after </think>) against the reference answer. ROUGE, exact match and token F1: 0–1 (means over rows); BLEU and chrF: 0–100 (corpus).",
                header, names.Select(n => (string[])[n, .. models.Select(m => Num(m.Text!.Answer[n]))]).ToList()));
            if (models.All(m => m.Text!.Reasoning is not null))
                tables.Add(new("Reasoning metrics", "The <think> block against the reference reasoning.", header,
                    names.Select(n => (string[])[n, .. models.Select(m => Num(m.Text!.Reasoning![n]))]).ToList()));
            if (models.All(m => m.Text!.ReasoningStats is not null))
                tables.Add(new("Reasoning", null, header, [
                    ["mean reasoning length (words)", .. models.Select(m => Num(m.Text!.ReasoningStats!.MeanReasoningWords, "0.0"))],
                    ["share closing </think>", .. models.Select(m => Percent(m.Text!.ReasoningStats!.ClosedShare))],
                    ["share never finishing (token limit)", .. models.Select(m => Percent(m.Text!.ReasoningStats!.UnfinishedShare))]]));
        }
        if (models.All(m => m.Choice is not null))
        {
            var subjects = models[0].Choice!.PerSubject.Keys.ToList();
            tables.Add(new("Multiple choice accuracy", null, header,
                [["all", .. models.Select(m => Percent(m.Choice!.Accuracy) + $" ({m.Choice!.Correct}/{m.Choice.Count})")],
                 .. subjects.Select(s => (string[])[s, .. models.Select(m => Percent(m.Choice!.PerSubject[s].Accuracy) + $" ({m.Choice!.PerSubject[s].Correct}/{m.Choice.PerSubject[s].Count})")])]));
        }
        if (models.All(m => m.General is not null))
            tables.Add(new("General knowledge (forgetting)", "Log-likelihood accuracy on the general set; a drop after fine-tuning is forgetting.", header,
                [["accuracy", .. models.Select(m => Percent(m.General!.Accuracy) + $" ({m.General!.Correct}/{m.General.Count})")]]));
        if (models.All(m => m.Bias is not null))
        {
            var attributes = models[0].Bias!.Select(b => b.Attribute).ToList();
            tables.Add(new("Bias probe", "Counterfactual prompts differing only in a demographic term. Answer gap: 1 − mean ROUGE-L between the answers (0 = same answers). Likelihood gap: spread of a neutral answer's mean log-probability per token across the terms (0 = no effect). Small template set; see docs/evaluation.md for its limits.",
                header, attributes.SelectMany(a => new[]
                {
                    (string[])[$"{a}: answer gap", .. models.Select(m => Num(m.Bias!.First(b => b.Attribute == a).AnswerGap))],
                    (string[])[$"{a}: likelihood gap", .. models.Select(m => Num(m.Bias!.First(b => b.Attribute == a).LikelihoodGap))],
                }).ToList()));
        }
        if (models.Any(m => m.Throughput is not null))
            tables.Add(new("Throughput", null, header, [
                ["samples/s", .. models.Select(m => m.Throughput is { } t ? Num(t.SamplesPerSecond, "0.00") : "")],
                ["generated tokens/s", .. models.Select(m => m.Throughput is { } t ? Num(t.TokensPerSecond, "0") : "")],
                ["batches", .. models.Select(m => m.Throughput is { } t ? t.Batches.ToString(CultureInfo.InvariantCulture) : "")]]));
        return tables;
    }

    static List<Chart> DrawCharts(EvalResult r)
    {
        var charts = new List<Chart>();
        var models = r.Models;
        if (models.Count > 0 && models.All(m => m.Text is not null))
        {
            var names = models[0].Text!.Answer.Keys.ToList();
            static double Unit(string name, double v) => name is "bleu" or "chrf" ? v / 100 : v;
            charts.Add(new("eval_metrics.png", "Answer metrics", EvalCharts.GroupedBars("Answer metrics (BLEU and chrF divided by 100)", "score",
                names, models.Select(m => (m.Name, names.Select(n => Unit(n, m.Text!.Answer[n])).ToArray())).ToList())));
        }
        if (models.Count > 0 && models.All(m => m.Choice is not null))
        {
            var subjects = models[0].Choice!.PerSubject.Keys.ToList();
            charts.Add(new("eval_accuracy.png", "Accuracy per subject", EvalCharts.GroupedBars("Accuracy per subject", "accuracy",
                ["all", .. subjects], models.Select(m => (m.Name, (double[])[m.Choice!.Accuracy, .. subjects.Select(s => m.Choice!.PerSubject[s].Accuracy)])).ToList())));
        }
        if (models.Count > 0 && models.All(m => m.Bias is not null))
        {
            var attributes = models[0].Bias!.Select(b => b.Attribute).ToList();
            charts.Add(new("eval_bias.png", "Bias probe: answer gap", EvalCharts.GroupedBars("Bias probe: answer gap per attribute (lower is fairer)", "1 − ROUGE-L",
                attributes, models.Select(m => (m.Name, attributes.Select(a => m.Bias!.First(b => b.Attribute == a).AnswerGap).ToArray())).ToList())));
        }
        return charts;
    }

    static string Markdown(EvalResult r, List<Table> tables, List<Chart> charts, List<string> notes)
    {
        var md = new StringBuilder($"# Evaluation report: {r.Model}\n\n");
        foreach (var n in notes) md.Append("> **Note:** ").Append(n).Append("\n\n");
        foreach (var t in tables)
        {
            md.Append("## ").Append(t.Title).Append("\n\n");
            if (t.Caption is not null) md.Append(t.Caption).Append("\n\n");
            md.Append("| ").Append(string.Join(" | ", t.Header.Select(Cell))).Append(" |\n|")
              .Append(string.Concat(t.Header.Select((_, i) => i == 0 ? "---|" : "---:|"))).Append('\n');
            foreach (var row in t.Rows) md.Append("| ").Append(string.Join(" | ", row.Select(Cell))).Append(" |\n");
            md.Append('\n');
        }
        foreach (var c in charts) md.Append("## ").Append(c.Title).Append("\n\n![").Append(c.Title).Append("](").Append(c.File).Append(")\n\n");
        if (r.Samples.Count > 0)
        {
            md.Append("## Sample answers\n\n");
            for (int i = 0; i < r.Samples.Count; i++)
            {
                var s = r.Samples[i];
                md.Append("### Sample ").Append(i + 1).Append("\n\n");
                Block(md, "Question", s.Question);
                foreach (var (model, answer) in s.Answers) Block(md, model, answer);
                Block(md, "Reference", s.Reference);
            }
        }
        return md.ToString();

        static string Cell(string text) => text.Replace("|", "\\|").ReplaceLineEndings(" ");

        static void Block(StringBuilder md, string label, string text)
        {
            int longest = 0, run = 0;
            foreach (char ch in text) longest = Math.Max(longest, run = ch == '`' ? run + 1 : 0);
            string fence = new('`', Math.Max(3, longest + 1));
            md.Append("**").Append(label).Append("**\n\n").Append(fence).Append("text\n").Append(text.TrimEnd('\n')).Append('\n').Append(fence).Append("\n\n");
        }
    }

    static string Html(EvalResult r, List<Table> tables, List<Chart> charts, List<string> notes)
    {
        var h = new StringBuilder("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        h.Append("<title>").Append(E($"Evaluation report: {r.Model}")).Append("</title>\n<style>").Append(Css).Append("</style>\n</head>\n<body>\n<main>\n");
        h.Append("<h1>").Append(E($"Evaluation report: {r.Model}")).Append("</h1>\n");
        foreach (var n in notes) h.Append("<p class=\"note\"><strong>Note:</strong> ").Append(E(n)).Append("</p>\n");
        foreach (var t in tables)
        {
            h.Append("<h2>").Append(E(t.Title)).Append("</h2>\n");
            if (t.Caption is not null) h.Append("<p class=\"muted\">").Append(E(t.Caption)).Append("</p>\n");
            h.Append("<table>\n<tr>").Append(string.Concat(t.Header.Select(c => $"<th>{E(c)}</th>"))).Append("</tr>\n");
            foreach (var row in t.Rows)
                h.Append("<tr>").Append(string.Concat(row.Select((c, i) => i == 0 ? $"<th>{E(c)}</th>" : $"<td>{E(c)}</td>"))).Append("</tr>\n");
            h.Append("</table>\n");
        }
        foreach (var c in charts)
            h.Append("<h2>").Append(E(c.Title)).Append("</h2>\n<img src=\"data:image/png;base64,").Append(Convert.ToBase64String(c.Png)).Append("\" alt=\"").Append(E(c.Title)).Append("\">\n");
        if (r.Samples.Count > 0)
        {
            h.Append("<h2>Sample answers</h2>\n");
            for (int i = 0; i < r.Samples.Count; i++)
            {
                var s = r.Samples[i];
                h.Append("<section><h3>Sample ").Append(i + 1).Append("</h3>\n<pre class=\"question\">").Append(E(s.Question)).Append("</pre>\n<div class=\"answers\">\n");
                foreach (var (model, answer) in s.Answers) h.Append("<div><h4>").Append(E(model)).Append("</h4><pre>").Append(E(answer)).Append("</pre></div>\n");
                h.Append("<div><h4>Reference</h4><pre>").Append(E(s.Reference)).Append("</pre></div>\n</div>\n</section>\n");
            }
        }
        return h.Append("</main>\n</body>\n</html>\n").ToString();
    }

    const string Css = """
        body { margin: 0; background: #f6f7f9; color: #1d2330; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
        main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; min-height: 100vh; box-sizing: border-box; }
        h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #e3e6eb; padding-bottom: 4px; }
        h4 { font-size: 0.85em; margin: 0 0 4px; color: #4a5263; text-transform: uppercase; letter-spacing: 0.04em; }
        .muted { color: #6b7385; }
        table { border-collapse: collapse; }
        th, td { padding: 5px 12px; border-bottom: 1px solid #eceef2; text-align: left; vertical-align: top; }
        td { text-align: right; font-variant-numeric: tabular-nums; }
        img { max-width: 100%; height: auto; border: 1px solid #eceef2; border-radius: 6px; }
        .note { background: #fff8e6; border-left: 4px solid #f0b429; padding: 8px 12px; }
        pre { white-space: pre-wrap; word-wrap: break-word; margin: 0; padding: 10px 12px; background: #f6f7f9; border: 1px solid #e3e6eb; border-radius: 6px; font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
        .question { background: #eef4ff; border-color: #d5e3fb; margin-bottom: 10px; }
        .answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px; }
        """;

    static string E(string text) => WebUtility.HtmlEncode(text);
    static string Num(double v, string format = "0.0000") => v.ToString(format, CultureInfo.InvariantCulture);
    static string Percent(double v) => (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + "%";
}
