using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>A made-up but realistic run: warmup then linear decay, noisy falling loss, an eval every 10 steps.</summary>
static class SampleRun
{
    public const int MaxSteps = 60;

    public static TrainStart Start(int startStep = 0, string outputDir = "/runs/demo") =>
        new("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "cuda:0", 18_464_768, 1_795_552_768,
            900, 100, MaxSteps, startStep, outputDir);

    public static StepMetrics Step(int step)
    {
        var noise = new Random(step);
        double loss = 0.6 + 1.9 * Math.Exp(-step / 15.0) + 0.15 * (noise.NextDouble() - 0.5);
        double lr = step <= 5 ? 2e-4 * step / 5 : 2e-4 * (MaxSteps - step) / (MaxSteps - 5);
        return new StepMetrics(step, MaxSteps, 1, loss, lr, 0.4 + 0.3 * noise.NextDouble(), step * 4096L,
            2345.6, step * 1.75, (MaxSteps - step) * 1.75);
    }

    public static EvalMetrics Eval(int step)
    {
        double loss = 0.75 + 1.8 * Math.Exp(-step / 15.0);
        return new EvalMetrics(step, loss, Math.Exp(loss), 51_200);
    }

    public static TrainSummary End(string adapterDir = "/runs/demo/adapter") =>
        new(MaxSteps, StopReason.MaxSteps, Step(MaxSteps).Loss, Eval(60).Loss, adapterDir, 105.2, 2345.6, MaxSteps);

    /// <summary>Sends a whole run, steps <paramref name="from"/> to <paramref name="to"/>, to a sink.</summary>
    public static void Play(ITrainingSink sink, int from = 1, int to = MaxSteps, bool end = true)
    {
        sink.OnStart(Start(from - 1));
        for (int step = from; step <= to; step++)
        {
            sink.OnStep(Step(step));
            if (step % 10 == 0)
            {
                sink.OnEval(Eval(step));
                sink.OnCheckpoint(step, $"/runs/demo/checkpoint-{step}");
            }
        }
        if (end)
            sink.OnEnd(End());
    }
}

/// <summary>A clock that moves only when told to.</summary>
sealed class ManualClock : TimeProvider
{
    long _ticks;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => _ticks;
    public void Advance(double seconds) => _ticks += (long)(seconds * TimeSpan.TicksPerSecond);
}
