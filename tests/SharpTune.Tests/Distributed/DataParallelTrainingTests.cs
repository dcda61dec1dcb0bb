using SharpTune.Distributed;
using SharpTune.Training;
using static TorchSharp.torch;

namespace SharpTune.Tests.Distributed;

/// <summary>
/// Data parallelism on the CPU, with ranks as threads sharing a <see cref="LocalCollective"/>: 2 ranks × micro-batch b
/// train exactly what 1 rank × micro-batch b with 2-step accumulation trains. In fp32 on the CPU the two differ only by
/// the order of float additions (the all-reduce adds rank 0's gradient to rank 1's; accumulation adds the second
/// micro-batch's into the first's); on this machine they came out bit-identical (0 difference). The tolerances (1e-5 on losses of ~5,
/// 1e-5 on adapter values that training moved by ~1e-2) sit far below what a real fault makes: the control run, one
/// rank without accumulation (half the global batch), differs by more than 100 times the tolerance.
/// </summary>
public class DataParallelTrainingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    sealed class Recorder : ITrainingSink
    {
        public readonly List<StepMetrics> Steps = [];
        public readonly List<EvalMetrics> Evals = [];
        public Action<int>? AfterCheckpoint;
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnEval(EvalMetrics eval) => Evals.Add(eval);
        public void OnCheckpoint(int step, string dir) => AfterCheckpoint?.Invoke(step);
    }

    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel());
    const double Tolerance = 1e-5;

    static TrainOptions Options(string output, int batch, int accumulation) => new()
    {
        Datasets = [new DatasetSpec { Source = "sample", Rows = 40 }],
        OutputDir = output,
        Device = "cpu",
        MaxLength = 192,
        LoraRank = 4,
        LoraAlpha = 8,
        LearningRate = 5e-3,
        WarmupSteps = 1,
        MaxSteps = 4,
        BatchSize = batch,
        GradientAccumulation = accumulation,
        SaveEvery = 2,
        ValidationFraction = 0.15,
        EvalEvery = 2,
        Seed = 5,
        Packing = false,
    };

    sealed record RunResult(Recorder Sink, float[] Adapter, TrainSummary Summary, string OutputDir);

    /// <param name="outputDirs">each rank's output_dir (default: a fresh one each)</param>
    /// <param name="sinks">each rank's sink (default: a fresh recorder each)</param>
    static RunResult[] Train(int worldSize, int batch, int accumulation, int maxSteps = 4, string[]? outputDirs = null, Recorder[]? sinks = null,
        CancellationToken rankZeroStop = default)
    {
        var group = LocalCollective.Create(worldSize, TimeSpan.FromMinutes(5));
        var tasks = group.Select(c => Task.Factory.StartNew(() =>
        {
            var sink = sinks?[c.Rank] ?? new Recorder();
            var options = Options(outputDirs?[c.Rank] ?? TestPaths.TempDir(), batch, accumulation) with { MaxSteps = maxSteps };
            using var trainer = SftTrainer.Setup(options, Tiny.Value, sink, c);
            var summary = trainer.Train(c.Rank == 0 ? rankZeroStop : default);
            return new RunResult(sink, trainer.Adapter.Values.data<float>().ToArray(), summary, options.OutputDir);
        }, TaskCreationOptions.LongRunning)).ToArray();
        try { Task.WaitAll(tasks); }
        catch (AggregateException e) when (e.InnerExceptions.All(x => x is SharpTuneException)) { throw e.InnerExceptions[0]; }
        return tasks.Select(t => t.Result).ToArray();
    }

    static double MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Fact]
    public void TwoRanksEqualOneRankWithTwoStepAccumulation()
    {
        var single = Train(1, batch: 2, accumulation: 2)[0];
        var ranks = Train(2, batch: 2, accumulation: 1);
        var control = Train(1, batch: 2, accumulation: 1)[0];

        Assert.Equal(4, single.Sink.Steps.Count);
        Assert.Equal(single.Sink.Steps.Select(s => s.Step), ranks[0].Sink.Steps.Select(s => s.Step));
        for (int i = 0; i < single.Sink.Steps.Count; i++)
        {
            Assert.True(Math.Abs(single.Sink.Steps[i].Loss - ranks[0].Sink.Steps[i].Loss) <= Tolerance,
                $"step {i + 1}: loss {single.Sink.Steps[i].Loss} (1 rank) vs {ranks[0].Sink.Steps[i].Loss} (2 ranks)");
            Assert.Equal(single.Sink.Steps[i].Tokens, ranks[0].Sink.Steps[i].Tokens);   // global token counts
            Assert.Equal(single.Sink.Steps[i].GradNorm, ranks[0].Sink.Steps[i].GradNorm, 1e-4);
        }
        // both ranks log the same agreed loss, and hold the same adapter
        Assert.Equal(ranks[0].Sink.Steps.Select(s => s.Loss), ranks[1].Sink.Steps.Select(s => s.Loss));
        Assert.Equal(ranks[0].Adapter, ranks[1].Adapter);
        double moved = MaxDifference(single.Adapter, Train(1, 2, 2, maxSteps: 1)[0].Adapter);
        double adapterDifference = MaxDifference(single.Adapter, ranks[0].Adapter);
        Assert.True(adapterDifference <= Tolerance, $"adapters differ by {adapterDifference} (training moved them by {moved})");
        // the sharded evaluation gives the one-process loss
        Assert.Equal(single.Sink.Evals.Count, ranks[0].Sink.Evals.Count);
        Assert.True(single.Sink.Evals.Count > 0);
        for (int i = 0; i < single.Sink.Evals.Count; i++)
        {
            Assert.True(Math.Abs(single.Sink.Evals[i].Loss - ranks[0].Sink.Evals[i].Loss) <= Tolerance);
            Assert.Equal(single.Sink.Evals[i].Tokens, ranks[0].Sink.Evals[i].Tokens);
        }

        // The control (half the global batch) must be told apart: the test can fail.
        double controlDifference = MaxDifference(single.Adapter, control.Adapter);
        output.WriteLine($"max loss difference {single.Sink.Steps.Zip(ranks[0].Sink.Steps, (a, b) => Math.Abs(a.Loss - b.Loss)).Max():g3}, "
            + $"adapter difference {adapterDifference:g3} (moved by {moved:g3} in step 1), control's adapter difference {controlDifference:g3}");
        Assert.True(controlDifference > 100 * Tolerance, $"control run differs by only {controlDifference}");
        Assert.True(Math.Abs(single.Sink.Steps[0].Loss - control.Sink.Steps[0].Loss) > 100 * Tolerance);

        // Only rank 0 writes checkpoints and the adapter.
        Assert.True(Directory.Exists(Path.Combine(ranks[0].OutputDir, "adapter")));
        Assert.Equal(2, SftTrainer.Checkpoints(Path.Combine(ranks[0].OutputDir, "checkpoints")).Count);
        Assert.False(Directory.Exists(Path.Combine(ranks[1].OutputDir, "adapter")));
        Assert.False(Directory.Exists(Path.Combine(ranks[1].OutputDir, "checkpoints")));

        // The checkpoint records the world size; resuming on another number of ranks is refused.
        var state = JsonFile.Read(Path.Combine(SftTrainer.Checkpoints(Path.Combine(ranks[0].OutputDir, "checkpoints"))[^1], "trainer_state.json"));
        Assert.Equal(2, state["world_size"].Int(1, 8));
        var e = Assert.Throws<SharpTuneException>(() => SftTrainer.Setup(Options(ranks[0].OutputDir, 2, 1) with { MaxSteps = 6, Resume = true }, Tiny.Value, new Recorder()));
        Assert.Contains("trained on 2 GPU(s), this run has 1", e.Message);
    }

    [Fact]
    public void EpochModeCountsStepsOverAllRanksAndTheShortLastStepStillMeets()
    {
        // 34 training rows → 17 batches of 2 per epoch; 2 ranks × accumulation 2 = 4 per step: 5 steps, the last with 1 batch
        // (rank 1 has nothing to train on and still joins the gradient all-reduce).
        var ranks = Train(2, batch: 2, accumulation: 2, maxSteps: 0);
        Assert.All(ranks, r => Assert.Equal(r.Summary.Steps, ranks[0].Summary.Steps));
        var single = Train(1, batch: 2, accumulation: 4, maxSteps: 0)[0];
        Assert.Equal(single.Summary.Steps, ranks[0].Summary.Steps);
        Assert.True(MaxDifference(single.Adapter, ranks[0].Adapter) <= Tolerance);
    }

    [Fact]
    public void AStopOnOneRankStopsBothAtTheSameStepAndTheResumedRunEqualsTheUninterruptedOne()
    {
        var straight = Train(2, batch: 2, accumulation: 1, outputDirs: Shared(TestPaths.TempDir()));

        // Rank 0 is asked to stop after the step-2 checkpoint; the ranks agree on it at step 3's logging and both stop there.
        string output = TestPaths.TempDir();
        using var stop = new CancellationTokenSource();
        var first = Train(2, batch: 2, accumulation: 1, outputDirs: Shared(output),
            sinks: [new Recorder { AfterCheckpoint = step => { if (step == 2) stop.Cancel(); } }, new Recorder()], rankZeroStop: stop.Token);
        Assert.All(first, r => Assert.Equal((3, StopReason.Cancelled), (r.Summary.Steps, r.Summary.Reason)));
        Assert.Equal(3, JsonFile.Read(Path.Combine(SftTrainer.Checkpoints(Path.Combine(output, "checkpoints"))[^1], "trainer_state.json"))["step"].Int(0, 9));

        var resumed = Train(2, batch: 2, accumulation: 1, outputDirs: Shared(output));
        Assert.Equal([4], resumed[0].Sink.Steps.Select(s => s.Step));
        Assert.True(MaxDifference(straight[0].Adapter, resumed[0].Adapter) <= Tolerance);
        Assert.Equal(resumed[0].Adapter, resumed[1].Adapter);

        // A rank that sees another output_dir (no shared file system) resumes elsewhere: both ranks stop with the reason.
        var e = Assert.Throws<SharpTuneException>(() => Train(2, batch: 2, accumulation: 1, maxSteps: 6, outputDirs: [output, TestPaths.TempDir()]));
        Assert.Contains("every rank must see the same output_dir", e.Message);
    }

    static string[] Shared(string dir) => [dir, dir];
}
