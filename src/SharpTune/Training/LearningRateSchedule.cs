namespace SharpTune.Training;

/// <summary>Learning rate per optimizer step: a linear warmup whose first step already runs at 1/warmup of the peak
/// (transformers' LambdaLR gives its first optimizer step a learning rate of 0, a wasted step), then constant, linear
/// decay to 0, or cosine decay to 0 at the last step, as transformers' schedules shape them. Step counts from 0.</summary>
public sealed record LearningRateSchedule(string Kind, double PeakLr, int WarmupSteps, int TotalSteps)
{
    public static readonly IReadOnlyList<string> Kinds = ["linear", "cosine", "constant"];

    public double At(int step)
    {
        if (step < WarmupSteps) return PeakLr * (step + 1) / WarmupSteps;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Kind switch
        {
            "constant" => PeakLr,
            "linear" => PeakLr * Math.Max(0, 1 - progress),
            "cosine" => PeakLr * Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * progress))),
            _ => throw new SharpTuneException($"lr schedule: expected {string.Join(", ", Kinds)}, got '{Kind}'"),
        };
    }
}
