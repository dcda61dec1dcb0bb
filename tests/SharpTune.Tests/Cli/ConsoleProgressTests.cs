using System.Text.RegularExpressions;
using SharpTune.Cli;
using SharpTune.Tests.Training;
using SharpTune.Training;

namespace SharpTune.Tests.Cli;

public class ConsoleProgressTests
{
    static readonly StepMetrics Step12 = new(12, 60, 1, 1.2341, 1.9e-4, 0.531, 49_152, 2345.4, 21, 80);

    static string Visible(string text) => Regex.Replace(text, "\x1b\\[[0-9;]*[A-Za-z]", "");

    [Fact]
    public void Plain_step_lines_show_every_field()
    {
        var output = new StringWriter();
        new ConsoleProgress(output, interactive: false, clock: new ManualClock()).OnStep(Step12);

        Assert.Equal("step 12/60  loss 1.234  lr 1.9e-04  grad 0.53  2,345 tok/s  eta 1m20s\n", output.ToString());
    }

    [Fact]
    public void Plain_output_logs_about_every_twentieth_of_the_run_and_each_event()
    {
        var output = new StringWriter();
        SampleRun.Play(new ConsoleProgress(output, interactive: false, clock: new ManualClock()));
        string text = output.ToString();

        Assert.DoesNotContain('\r', text);
        Assert.DoesNotContain('\x1b', text);
        string[] lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal("Training deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B on cuda:0: 18.46M of 1.8B parameters trainable (1.028%)", lines[0]);
        Assert.Equal("  900 training / 100 validation sequences, 60 steps; output in /runs/demo", lines[1]);
        // Steps 1, 3, 6, ..., 60.
        Assert.Equal([1, .. Enumerable.Range(1, 20).Select(i => 3 * i)],
            lines.Where(l => l.StartsWith("step ")).Select(l => int.Parse(l[5..7])));
        Assert.Equal("eval  step 30  loss 0.994  ppl 2.70  51,200 tokens", Assert.Single(lines, l => l.StartsWith("eval  step 30")));
        Assert.Contains("checkpoint  step 60  saved to /runs/demo/checkpoint-60", lines);
        Assert.StartsWith("Done: 60 steps (max_steps) in 1m45s, 2,346 tok/s; final loss ", lines[^1]);
        Assert.EndsWith(", best eval loss 0.783", lines[^1]);
    }

    [Fact]
    public void Plain_output_logs_slow_steps_as_they_come()
    {
        var output = new StringWriter();
        var clock = new ManualClock();
        var progress = new ConsoleProgress(output, interactive: false, clock: clock);
        for (int step = 1; step <= 8; step++)
        {
            clock.Advance(11);
            progress.OnStep(SampleRun.Step(step));
        }

        Assert.Equal(8, output.ToString().Split('\n').Count(l => l.StartsWith("step ")));
    }

    [Fact]
    public void Interactive_output_redraws_one_status_line_in_place()
    {
        var output = new StringWriter();
        var clock = new ManualClock();
        var progress = new ConsoleProgress(output, interactive: true, width: 100, clock: clock);
        progress.OnStart(SampleRun.Start());
        for (int step = 1; step <= 60; step++)
        {
            clock.Advance(0.06);
            progress.OnStep(SampleRun.Step(step));
            if (step == 30)
            {
                progress.OnEval(SampleRun.Eval(30));
                progress.OnMessage("early stopping is off");
            }
        }
        progress.OnEnd(SampleRun.End());
        string text = output.ToString();

        // Each \r starts either a redraw or the clearing of the status line before a printed line.
        string[] draws = [.. text.Split('\r').Skip(1).Where(d => !d.StartsWith("\x1b[K")).Select(d => d.Split('\n')[0])];
        Assert.InRange(draws.Length, 30, 45); // at most every 0.1 s, plus the redraws after printed lines
        Assert.All(draws, d => Assert.EndsWith("\x1b[K", d));
        Assert.All(draws, d => Assert.True(Visible(d).Length <= 99, $"too wide: {Visible(d)}"));
        // Printed lines first clear the status line, then it is drawn again below them.
        Assert.Contains("\r\x1b[Keval  step 30  loss 0.994  ppl 2.70  51,200 tokens\n\r", text);
        Assert.Contains("\r\x1b[Kearly stopping is off\n\r", text);
        // The final state stays, the summary goes under it.
        Assert.Matches("60/60  loss [0-9.]+  lr 0\\.0e\\+00  grad [0-9.]+  2,346 tok/s  eta 0s\x1b\\[K\nDone: ", text);
        Assert.EndsWith(", best eval loss 0.783\n", text);
    }

    [Fact]
    public void The_status_line_fits_the_terminal()
    {
        string wide = ConsoleProgress.StatusLine(Step12, 119);
        Assert.Equal("\x1b[32m\x1b[48;5;236m██████" + new string(' ', 24) + "\x1b[49m\x1b[0m " +
            "12/60  loss 1.234  lr 1.9e-04  grad 0.53  2,345 tok/s  eta 1m20s", wide);

        // The learning rate and the gradient norm go first, then throughput; the bar keeps 10 cells at least.
        string narrow = Visible(ConsoleProgress.StatusLine(Step12, 55));
        Assert.Equal(new string('█', 2) + "▌" + new string(' ', 10) + " 12/60  loss 1.234  2,345 tok/s  eta 1m20s", narrow);
        Assert.Equal(" 12/60  loss 1.234  eta 1m20s", Visible(ConsoleProgress.StatusLine(Step12, 50))[^29..]);

        Assert.Equal("12/60  loss 1.234", ConsoleProgress.StatusLine(Step12, 17));
        Assert.Equal("12/60  los", ConsoleProgress.StatusLine(Step12, 10));
    }
}
