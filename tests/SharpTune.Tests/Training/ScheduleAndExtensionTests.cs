using SharpTune.Training;

namespace SharpTune.Tests.Training;

public class ScheduleAndExtensionTests
{
    [Fact]
    public void WarmupStartsAtTheFirstStepsShare()
    {
        var s = new LearningRateSchedule("linear", 1.0, WarmupSteps: 4, TotalSteps: 10);
        Assert.Equal([0.25, 0.5, 0.75, 1.0], Enumerable.Range(0, 4).Select(s.At));   // no step runs at 0
        Assert.Equal(1.0, s.At(4));
        Assert.Equal(0.5, s.At(7));       // linear decay over the 6 steps after warmup
        Assert.Equal(1.0, new LearningRateSchedule("cosine", 1.0, 0, 10).At(0));
    }

    sealed class Recorder : ITrainingSink
    {
        public readonly List<StepMetrics> Steps = [];
        public readonly List<string> Messages = [];
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnMessage(string message) => Messages.Add(message);
    }

    static TrainOptions Options(string output, int maxSteps) => new()
    {
        Datasets = [new DatasetSpec { Source = "sample", Rows = 24 }], OutputDir = output, Device = "cpu", MaxLength = 128,
        LoraRank = 4, MaxSteps = maxSteps, BatchSize = 2, GradientAccumulation = 1, SaveEvery = 0, ValidationFraction = 0,
    };

    [Fact]
    public void AFinishedRunCanBeExtendedButNotShortened()
    {
        string tiny = TestPaths.NewTinyModel(), output = TestPaths.TempDir();
        using (var first = SftTrainer.Setup(Options(output, 2), tiny, new Recorder())) first.Train();

        var again = new Recorder();
        using (var finished = SftTrainer.Setup(Options(output, 2), tiny, again))
            Assert.Equal(0, finished.Train().StepsThisSession);     // nothing left to do: no "0 tok/s" run

        var longer = new Recorder();
        using (var extended = SftTrainer.Setup(Options(output, 4), tiny, longer)) extended.Train();
        Assert.Equal([3, 4], longer.Steps.Select(s => s.Step));
        Assert.Contains(longer.Messages, m => m.Contains("extending the run from 2 to 4 steps") && m.Contains("recomputed"));

        var e = Assert.Throws<SharpTuneException>(() => SftTrainer.Setup(Options(output, 3), tiny, new Recorder()));
        Assert.Contains("can be extended", e.Message);
    }

    [Fact]
    public void BadRowsAreSkippedAndCountedWhenAsked()
    {
        string data = Path.Combine(TestPaths.TempDir(), "d.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 12).Select(i => i == 5
            ? """{"Question": "q5"}"""
            : $$"""{"Question": "What is {{i}} + {{i}}?", "Complex_CoT": "Add them.", "Response": "{{2 * i}}"}"""));
        var options = Options(TestPaths.TempDir(), 1) with { Datasets = [new DatasetSpec { Source = data }] };
        string tiny = TestPaths.NewTinyModel();
        var e = Assert.Throws<SharpTuneException>(() => SftTrainer.Setup(options, tiny, new Recorder()));
        Assert.Contains("on_bad_row: skip", e.Message);
        Assert.Contains("d.jsonl", e.Message);

        var recorder = new Recorder();
        using var trainer = SftTrainer.Setup(options with { OnBadRow = "skip" }, tiny, recorder);
        Assert.Contains(recorder.Messages, m => m.Contains("skipped 1 bad rows (on_bad_row: skip)"));
    }
}
