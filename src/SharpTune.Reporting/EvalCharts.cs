using ScottPlot;
using SharpTune.Evaluation;
using SharpTune.Training;

namespace SharpTune.Reporting;

/// <summary>The evaluation report's charts, drawn with ScottPlot to PNG bytes.</summary>
internal static class EvalCharts
{
    const int Width = 1000, Height = 480;
    static readonly Color[] Palette = [new(0x9a, 0xa5, 0xb1), new(0x1f, 0x77, 0xb4), new(0xe4, 0x57, 0x1b)];

    /// <summary>Grouped bars: one group per label, one bar per model.</summary>
    public static byte[] GroupedBars(string title, string yLabel, IReadOnlyList<string> labels, IReadOnlyList<(string Model, double[] Values)> series)
    {
        using var plot = NewPlot(title, yLabel);
        double width = 0.8 / series.Count;
        for (int s = 0; s < series.Count; s++)
        {
            var color = Palette[s % Palette.Length];
            var bars = series[s].Values.Select((v, i) => new Bar
            {
                Position = i - 0.4 + width * (s + 0.5),
                Value = double.IsFinite(v) ? v : 0,
                Size = width * 0.92,
                FillColor = color,
                LineWidth = 0,
            }).ToList();
            plot.Add.Bars(bars);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = series[s].Model, FillColor = color });
        }
        plot.Axes.Bottom.SetTicks(labels.Select((_, i) => (double)i).ToArray(), labels.ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    /// <summary>Training loss per step with eval loss markers, from the run's metrics.jsonl.</summary>
    public static byte[] TrainingLoss(RunHistory run)
    {
        using var plot = NewPlot("Training and eval loss", "loss");
        plot.XLabel("step");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        var steps = run.Steps.Where(s => double.IsFinite(s.Loss)).ToArray();
        if (steps.Length > 0)
        {
            var line = plot.Add.Scatter(steps.Select(s => (double)s.Step).ToArray(), steps.Select(s => s.Loss).ToArray(), Palette[1]);
            line.MarkerSize = steps.Length > 60 ? 0 : 5;   // a short run's few points stay visible
            line.LegendText = "training loss";
        }
        var evals = run.Evals.Where(e => double.IsFinite(e.Loss)).ToArray();
        if (evals.Length > 0)
        {
            var markers = plot.Add.Markers(evals.Select(e => (double)e.Step).ToArray(), evals.Select(e => e.Loss).ToArray(), MarkerShape.FilledDiamond, 11, Palette[2]);
            markers.LegendText = "eval loss";
        }
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    static Plot NewPlot(string title, string yLabel)
    {
        var plot = new Plot();
        if (Fonts.GetTypeface("DejaVu Sans", bold: false, italic: false)?.FamilyName == "DejaVu Sans")
            plot.Font.Set("DejaVu Sans");
        plot.Title(title);
        plot.YLabel(yLabel);
        return plot;
    }
}
