using System.Text.RegularExpressions;
using SharpTune.Reporting;
using SharpTune.Tests.Training;
using SharpTune.Training;

namespace SharpTune.Tests.Reporting;

public class TrainingReportTests
{
    static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    static string WriteMetrics(string dir, bool end = true)
    {
        string path = Path.Combine(dir, "metrics.jsonl");
        using var log = new MetricsLog(path);
        SampleRun.Play(log, end: end);
        return path;
    }

    [Fact]
    public void Writes_charts_and_a_report_that_shows_them()
    {
        string dir = TestPaths.TempDir();
        string metrics = WriteMetrics(dir);
        var report = new TrainingReport(dir);
        report.AddComparison(new Comparison("What causes scurvy?", "<think>\nhmm</think>\nNot sure.",
            "<think>\nVitamin C is needed for collagen.\n</think>\nA lack of vitamin C.", "Vitamin C deficiency.", HeldOut: true));
        report.AddComparison(new Comparison("Print hello in C#", "```cs\nConsole.WriteLine(\"hello\");\n```", "Console.WriteLine(\"hello\");", null, HeldOut: false));

        TrainingReportFiles files = report.Write(metrics);

        Assert.Empty(files.Notes);
        Assert.Equal(Path.Combine(dir, "loss.png"), files.LossChart);
        Assert.Equal(Path.Combine(dir, "learning_rate.png"), files.LearningRateChart);
        foreach (string chart in new[] { files.LossChart!, files.LearningRateChart! })
        {
            byte[] png = File.ReadAllBytes(chart);
            Assert.Equal(PngSignature, png[..8]);
            Assert.True(png.Length > 10_000, $"{chart} is only {png.Length} bytes");
        }

        string md = File.ReadAllText(files.Markdown);
        Assert.Contains("![Training and eval loss per step](loss.png)", md);
        Assert.Contains("![Learning rate per step](learning_rate.png)", md);
        Assert.Contains("| Model | deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B |", md);
        Assert.Contains("| Steps | 60 of 60 (stopped by max_steps) |", md);
        Assert.Contains("| Tokens trained | 245,760 |", md);
        Assert.Contains("| Throughput | 2,346 tokens/s |", md);
        Assert.Contains(FormattableString.Invariant($"| Final training loss | {SampleRun.Step(60).Loss:0.0000} |"), md);
        Assert.Contains("| Adapter | /runs/demo/adapter |", md);
        Assert.Contains("| 30 | 0.9936 | 2.70 | 51,200 |", md);
        Assert.Contains("**After fine-tuning**\n\n```text\n<think>\nVitamin C is needed for collagen.\n</think>\nA lack of vitamin C.\n```", md);
        Assert.Contains("**Reference answer**\n\n```text\nVitamin C deficiency.\n```", md);
        // An answer holding a code fence gets a longer fence around it.
        Assert.Contains("````text\n```cs\nConsole.WriteLine(\"hello\");\n```\n````", md);
        Assert.Equal(1, Regex.Count(md, "Reference answer"));

        string html = File.ReadAllText(files.Html);
        var images = Regex.Matches(html, "<img src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");
        Assert.Equal(2, images.Count);
        Assert.Equal(File.ReadAllBytes(files.LossChart!), Convert.FromBase64String(images[0].Groups[1].Value));
        Assert.Equal(File.ReadAllBytes(files.LearningRateChart!), Convert.FromBase64String(images[1].Groups[1].Value));
        Assert.DoesNotContain("loss.png", html); // self-contained
        Assert.Contains("<th>Adapter</th><td>/runs/demo/adapter</td>", html);
        Assert.Contains("&lt;think&gt;\nVitamin C is needed for collagen.", html);
        Assert.DoesNotContain("<think>", html);
        Assert.Contains("<style>", html);
    }

    [Fact]
    public void Without_charts_the_report_is_still_written_with_a_note()
    {
        string dir = TestPaths.TempDir();
        string metrics = WriteMetrics(dir);
        File.WriteAllText(Path.Combine(dir, "loss.png"), "from an earlier run");
        var elsewhere = new TrainingReport(Path.Combine(dir, "new")) { DrawCharts = _ => throw new DllNotFoundException() };
        Assert.Null(elsewhere.Write(metrics).LossChart); // a folder that does not exist yet
        var report = new TrainingReport(dir) { DrawCharts = _ => throw new DllNotFoundException("libSkiaSharp") };

        TrainingReportFiles files = report.Write(metrics);

        Assert.Null(files.LossChart);
        Assert.Null(files.LearningRateChart);
        Assert.False(File.Exists(Path.Combine(dir, "loss.png")));
        string note = Assert.Single(files.Notes);
        Assert.Contains("DllNotFoundException: libSkiaSharp", note);
        string md = File.ReadAllText(files.Markdown);
        Assert.Contains("> **Note:** The charts could not be drawn (DllNotFoundException: libSkiaSharp)", md);
        Assert.DoesNotContain("loss.png", md);
        Assert.Contains("| Steps | 60 of 60 (stopped by max_steps) |", md);
        string html = File.ReadAllText(files.Html);
        Assert.Contains("<p class=\"note\"><strong>Note:</strong> The charts could not be drawn", html);
        Assert.DoesNotContain("<img", html);
    }

    [Fact]
    public void A_run_without_an_end_is_reported_as_unfinished()
    {
        string dir = TestPaths.TempDir();
        string metrics = WriteMetrics(dir, end: false);

        TrainingReportFiles files = new TrainingReport(Path.Combine(dir, "report")).Write(metrics);

        string md = File.ReadAllText(files.Markdown);
        Assert.Contains("| Steps | 60 of 60 (did not finish) |", md);
        Assert.Contains("no end record", Assert.Single(files.Notes));
        Assert.DoesNotContain("| Adapter |", md);
        Assert.NotNull(files.LossChart);
    }

    [Fact]
    public void Smoothing_averages_a_tenth_of_the_run_around_each_step()
    {
        Assert.Equal([2.0, 2.0, 2.0], TrainingCharts.Smooth([2, 2, 2]));
        // 60 steps: 3 on each side. A straight line stays straight away from the ends.
        double[] line = [.. Enumerable.Range(0, 60).Select(i => 5 - 0.05 * i)];
        double[] smoothed = TrainingCharts.Smooth(line);
        for (int i = 3; i < 57; i++)
            Assert.Equal(line[i], smoothed[i], 12);
        Assert.Equal((line[0] + line[1] + line[2] + line[3]) / 4, smoothed[0], 12);
        // Alternating noise is averaged away.
        double[] noisy = [.. Enumerable.Range(0, 60).Select(i => i % 2 == 0 ? 1.0 : -1.0)];
        Assert.All(TrainingCharts.Smooth(noisy)[3..57], v => Assert.InRange(v, -1 / 7.0 - 1e-12, 1 / 7.0 + 1e-12));
    }
}
