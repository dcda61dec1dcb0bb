using System.Globalization;
using System.Text;
using SharpTune.Reporting;
using SharpTune.Training;
using static System.FormattableString;

namespace SharpTune.Cli;

/// <summary>
/// Shows a run's progress on a console. Interactive (a terminal): one status line with a bar, step, loss, learning
/// rate, gradient norm, throughput and ETA, redrawn in place with \r (overwrite, then erase the rest of the line, so
/// it does not flicker) and cut to the terminal's width so it never wraps; other events print above it.
/// Not interactive (piped, CI logs): plain lines, a step line every ~5% of the run or every 10 seconds, whichever
/// comes first, plus the first and last step.
/// </summary>
/// <param name="width">Columns of the terminal; null reads the console's width at each redraw (it may be resized).</param>
/// <param name="clock">Time source for throttling; the system clock when null.</param>
public sealed class ConsoleProgress(TextWriter output, bool interactive, int? width = null, TimeProvider? clock = null)
    : ITrainingSink
{
    const double PlainLineSeconds = 10;
    const double RedrawSeconds = 0.1;
    const string EraseToEnd = "\x1b[K";
    const string Green = "\x1b[32m", Reset = "\x1b[0m";

    readonly TimeProvider _clock = clock ?? TimeProvider.System;
    StepMetrics? _last;
    long? _lastOutput;
    bool _statusShown;

    public void OnStart(TrainStart start)
    {
        double share = start.TotalParameters > 0 ? 100.0 * start.TrainableParameters / start.TotalParameters : 0;
        WriteLine(Invariant($"Training {start.Model} on {start.Device}: {Compact(start.TrainableParameters)} of ") +
            Invariant($"{Compact(start.TotalParameters)} parameters trainable ({share:0.###}%)"));
        string resume = start.StartStep > 0 ? Invariant($", resuming after step {start.StartStep}") : "";
        WriteLine(Invariant($"  {start.TrainSequences:N0} training / {start.ValidationSequences:N0} validation sequences, ") +
            Invariant($"{start.MaxSteps:N0} steps{resume}; output in {start.OutputDir}"));
    }

    public void OnStep(StepMetrics step)
    {
        bool first = _last is null;
        _last = step;
        double sinceOutput = _lastOutput is long t ? _clock.GetElapsedTime(t).TotalSeconds : double.PositiveInfinity;
        bool lastStep = step.Step >= step.MaxSteps;
        if (interactive)
        {
            if (first || lastStep || sinceOutput >= RedrawSeconds)
                DrawStatus();
            return;
        }
        int every = Math.Max(1, step.MaxSteps / 20);
        if (first || lastStep || step.Step % every == 0 || sinceOutput >= PlainLineSeconds)
            WriteLine(StepLine(step));
    }

    public void OnEval(EvalMetrics eval) =>
        WriteLine(Invariant($"eval  step {eval.Step}  loss {Loss(eval.Loss)}  ppl {Fixed(eval.Perplexity, 2)}  {eval.Tokens:N0} tokens"));

    public void OnCheckpoint(int step, string dir) => WriteLine(Invariant($"checkpoint  step {step}  saved to {dir}"));

    public void OnMessage(string message) => WriteLine(message);

    public void OnEnd(TrainSummary summary)
    {
        if (interactive && _last is not null)
        {
            DrawStatus(); // the final state stays on screen, and the lines below go under it
            output.Write('\n');
            _statusShown = false;
            _last = null;
        }
        if (summary.StepsThisSession == 0 && summary.Reason != StopReason.Cancelled)
        {
            WriteLine(Invariant($"Nothing to train: this run already finished at step {summary.Steps:N0}; a larger --max-steps extends it, another --output-dir starts a new one"));
            return;
        }
        string line = Invariant($"Done: {summary.Steps:N0} steps ({summary.Reason.Name()}) in {Durations.Format(summary.ElapsedSeconds)}, ") +
            Throughput(summary.TokensPerSecond);
        if (summary.FinalLoss is double final)
            line += $"; final loss {Loss(final)}";
        if (summary.BestEvalLoss is double best)
            line += $", best eval loss {Loss(best)}";
        WriteLine(line);
    }

    /// <summary>Writes a whole line; on a terminal it goes above the status line, which is then drawn again.</summary>
    void WriteLine(string text)
    {
        if (_statusShown)
            output.Write("\r" + EraseToEnd);
        output.Write(text);
        output.Write('\n');
        _statusShown = false;
        if (interactive && _last is not null)
            DrawStatus();
        else
            output.Flush();
        _lastOutput = _clock.GetTimestamp();
    }

    void DrawStatus()
    {
        var step = _last!;
        output.Write("\r" + StatusLine(step, Math.Max(1, width ?? TerminalWidth()) - 1) + EraseToEnd);
        output.Flush();
        _statusShown = true;
        _lastOutput = _clock.GetTimestamp();
    }

    static string StepLine(StepMetrics s)
    {
        string counter = s.Step.ToString(CultureInfo.InvariantCulture).PadLeft(s.MaxSteps.ToString(CultureInfo.InvariantCulture).Length);
        return Invariant($"step {counter}/{s.MaxSteps}  loss {Loss(s.Loss)}  lr {LearningRate(s.LearningRate)}  ") +
            Invariant($"grad {Fixed(s.GradNorm, 2)}  {Throughput(s.TokensPerSecond)}  eta {Durations.Format(s.EtaSeconds)}");
    }

    /// <summary>Bar and fields in at most <paramref name="columns"/> visible characters: the least useful fields go
    /// first when the terminal is narrow, then the bar shrinks, then the bar goes.</summary>
    internal static string StatusLine(StepMetrics s, int columns)
    {
        // In display order, with the rank at which each is dropped (higher goes first).
        (string Text, int DropRank)[] fields =
        [
            (Invariant($"{s.Step}/{s.MaxSteps}"), 0),
            ($"loss {Loss(s.Loss)}", 0),
            ($"lr {LearningRate(s.LearningRate)}", 3),
            ($"grad {Fixed(s.GradNorm, 2)}", 4),
            (Throughput(s.TokensPerSecond), 2),
            ($"eta {Durations.Format(s.EtaSeconds)}", 1),
        ];
        const int MinBar = 10, MaxBar = 30;
        string text = "";
        for (int dropAbove = 4; dropAbove >= 0; dropAbove--)
        {
            text = string.Join("  ", fields.Where(f => f.DropRank <= dropAbove).Select(f => f.Text));
            if (text.Length + 1 + MinBar <= columns)
                break;
        }
        int barWidth = Math.Min(MaxBar, columns - text.Length - 1);
        if (barWidth < MinBar)
            return text.Length <= columns ? text : text[..columns];
        return Green + Bar(s.MaxSteps > 0 ? (double)s.Step / s.MaxSteps : 0, barWidth) + Reset + " " + text;
    }

    /// <summary>A bar of full blocks with an eighth-block partial cell, so it moves smoothly.</summary>
    static string Bar(double fraction, int cells)
    {
        const string Partial = " ▏▎▍▌▋▊▉";
        double filled = Math.Clamp(fraction, 0, 1) * cells;
        int full = (int)filled;
        var bar = new StringBuilder(cells);
        bar.Append('█', full);
        if (full < cells)
        {
            bar.Append(Partial[(int)((filled - full) * 8)]);
            bar.Append(' ', cells - full - 1);
        }
        // A frame would cost columns; a dim background shows the empty part instead.
        return "\x1b[48;5;236m" + bar + "\x1b[49m";
    }

    static int TerminalWidth()
    {
        try
        {
            int columns = Console.WindowWidth;
            return columns > 0 ? columns : 80;
        }
        catch (IOException)
        {
            return 80;
        }
    }

    static string Loss(double value) => Fixed(value, 3);

    static string Fixed(double value, int decimals) =>
        double.IsFinite(value) ? value.ToString("F" + decimals, CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);

    static string LearningRate(double value) => value.ToString("0.0e+00", CultureInfo.InvariantCulture);

    static string Throughput(double tokensPerSecond) =>
        $"{tokensPerSecond.ToString("N0", CultureInfo.InvariantCulture)} tok/s";

    /// <summary>8.4M, 1.78B: parameter counts at a glance.</summary>
    static string Compact(long value) => value switch
    {
        >= 1_000_000_000 => (value / 1e9).ToString("0.##", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (value / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (value / 1e3).ToString("0.##", CultureInfo.InvariantCulture) + "K",
        _ => value.ToString(CultureInfo.InvariantCulture),
    };
}
