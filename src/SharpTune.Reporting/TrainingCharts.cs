using System.Globalization;
using ScottPlot;
using SharpTune.Training;

namespace SharpTune.Reporting;

/// <summary>The report's charts, drawn with ScottPlot (SkiaSharp underneath) to PNG bytes.</summary>
internal static class TrainingCharts
{
    public sealed record Images(byte[] Loss, byte[] LearningRate);

    const int Width = 1000, Height = 520;
    static readonly Color Raw = new(0x1f, 0x77, 0xb4);
    static readonly Color Eval = new(0xe4, 0x57, 0x1b);

    public static Images Draw(RunHistory run) => new(LossChart(run), LearningRateChart(run));

    /// <summary>Training loss as faint points with a smoothed line through them, eval loss as markers.</summary>
    static byte[] LossChart(RunHistory run)
    {
        using var plot = NewPlot("Training and eval loss", "step", "loss");
        var finite = run.Steps.Where(s => double.IsFinite(s.Loss)).ToArray();
        double[] steps = finite.Select(s => (double)s.Step).ToArray();
        double[] losses = finite.Select(s => s.Loss).ToArray();
        if (steps.Length > 0)
        {
            var points = plot.Add.ScatterPoints(steps, losses, Raw.WithAlpha(0.35));
            points.MarkerSize = steps.Length > 300 ? 3 : 5;
            points.LegendText = "training loss";
            var line = plot.Add.ScatterLine(steps, Smooth(losses), Raw);
            line.LineWidth = 2.5f;
            line.LegendText = "training loss (smoothed)";
        }
        var evals = run.Evals.Where(e => double.IsFinite(e.Loss)).ToArray();
        if (evals.Length > 0)
        {
            var markers = plot.Add.Markers(
                evals.Select(e => (double)e.Step).ToArray(), evals.Select(e => e.Loss).ToArray(), MarkerShape.FilledDiamond, 11, Eval);
            markers.LegendText = "eval loss";
        }
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    static byte[] LearningRateChart(RunHistory run)
    {
        using var plot = NewPlot("Learning rate", "step", "learning rate");
        var line = plot.Add.ScatterLine(
            run.Steps.Select(s => (double)s.Step).ToArray(), run.Steps.Select(s => s.LearningRate).ToArray(), Raw);
        line.LineWidth = 2.5f;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => v == 0 ? "0" : v.ToString("0.0#e+00", CultureInfo.InvariantCulture),
        };
        plot.Axes.SetLimitsY(0, Math.Max(1e-12, run.Steps.Max(s => s.LearningRate)) * 1.08);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    static Plot NewPlot(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        // ScottPlot's pick on Linux can be a serif face; the sans one reads better on a chart.
        if (Fonts.GetTypeface("DejaVu Sans", bold: false, italic: false)?.FamilyName == "DejaVu Sans")
            plot.Font.Set("DejaVu Sans");
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        return plot;
    }

    /// <summary>Centered moving average over about a tenth of the run (narrower at the ends), so the trend shows,
    /// single noisy steps do not, and unlike an exponential average the line does not lag behind a falling loss.</summary>
    internal static double[] Smooth(double[] values)
    {
        int half = Math.Max(1, values.Length / 20);
        var smoothed = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            int from = Math.Max(0, i - half), to = Math.Min(values.Length - 1, i + half);
            double sum = 0;
            for (int j = from; j <= to; j++)
                sum += values[j];
            smoothed[i] = sum / (to - from + 1);
        }
        return smoothed;
    }
}
