using System.Text.Json;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

public class MetricsLogTests
{
    [Fact]
    public void Events_round_trip_through_the_file()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using (var log = new MetricsLog(path))
            SampleRun.Play(log);

        RunHistory run = MetricsLog.Read(path);
        Assert.Equal(SampleRun.Start(), run.Start);
        Assert.Equal(Enumerable.Range(1, 60).Select(SampleRun.Step), run.Steps);
        Assert.Equal([10, 20, 30, 40, 50, 60], run.Evals.Select(e => e.Step));
        Assert.Equal(SampleRun.Eval(30), run.Evals[2]);
        Assert.Equal(new CheckpointEvent(20, "/runs/demo/checkpoint-20"), run.Checkpoints[1]);
        Assert.Equal(SampleRun.End(), run.End);
        Assert.Equal(run.Steps, MetricsLog.ReadSteps(path));
        Assert.Equal(run.Evals, MetricsLog.ReadEvals(path));
    }

    [Fact]
    public void Lines_are_snake_case_objects_led_by_their_event()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using (var log = new MetricsLog(path))
            SampleRun.Play(log, to: 10);

        string[] lines = File.ReadAllLines(path);
        Assert.Equal(1 + 10 + 1 + 1 + 1, lines.Length);
        Assert.StartsWith("{\"event\":\"start\",\"model\":\"deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B\"", lines[0]);
        using var step = JsonDocument.Parse(lines[1]);
        Assert.Equal(
            ["event", "step", "max_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens",
             "tokens_per_second", "elapsed_seconds", "eta_seconds"],
            step.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("{\"event\":\"checkpoint\",\"step\":10,\"dir\":\"/runs/demo/checkpoint-10\"}", lines[12]);
        Assert.StartsWith("{\"event\":\"end\",\"steps\":60,\"reason\":\"max_steps\",", lines[13]);
    }

    [Fact]
    public void Each_line_is_on_disk_before_the_log_is_closed()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using var log = new MetricsLog(path);
        SampleRun.Play(log, to: 7, end: false);

        Assert.Equal(Enumerable.Range(1, 7), MetricsLog.ReadSteps(path).Select(s => s.Step));
    }

    [Fact]
    public void A_diverged_loss_is_kept()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        var diverged = SampleRun.Step(3) with { Loss = double.NaN, GradNorm = double.PositiveInfinity };
        using (var log = new MetricsLog(path))
            log.OnStep(diverged);

        var step = Assert.Single(MetricsLog.ReadSteps(path));
        Assert.True(double.IsNaN(step.Loss));
        Assert.Equal(double.PositiveInfinity, step.GradNorm);
    }

    [Fact]
    public void A_resumed_run_replaces_the_steps_after_its_checkpoint()
    {
        string dir = TestPaths.TempDir();
        string path = Path.Combine(dir, "metrics.jsonl");
        // The first run got to step 37 and was killed; its last checkpoint is step 30.
        using (var log = new MetricsLog(path))
            SampleRun.Play(log, to: 37, end: false);
        using (var log = new MetricsLog(path))
            SampleRun.Play(log, from: 31);

        RunHistory run = MetricsLog.Read(path);
        Assert.Equal(Enumerable.Range(1, 60), run.Steps.Select(s => s.Step));
        Assert.Equal([10, 20, 30, 40, 50, 60], run.Evals.Select(e => e.Step));
        Assert.Equal([10, 20, 30, 40, 50, 60], run.Checkpoints.Select(c => c.Step));
        Assert.Equal(30, run.Start!.StartStep);
        Assert.Equal(2, File.ReadLines(path).Count(l => l.StartsWith("{\"event\":\"start\"")));
        Assert.NotNull(run.End);
    }

    [Fact]
    public void TruncateAfter_keeps_the_lines_up_to_the_step()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using var log = new MetricsLog(path);
        SampleRun.Play(log);

        log.TruncateAfter(20);
        RunHistory run = MetricsLog.Read(path);
        Assert.Equal(Enumerable.Range(1, 20), run.Steps.Select(s => s.Step));
        Assert.Equal([10, 20], run.Evals.Select(e => e.Step));
        Assert.Equal([10, 20], run.Checkpoints.Select(c => c.Step));
        Assert.Null(run.End); // it was at step 60
        Assert.NotNull(run.Start);

        // The log goes on appending after a truncation.
        log.OnStep(SampleRun.Step(21));
        Assert.Equal(21, MetricsLog.ReadSteps(path)[^1].Step);
    }

    [Fact]
    public void A_fresh_run_starts_the_file_anew()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using (var log = new MetricsLog(path))
            SampleRun.Play(log);
        using (var log = new MetricsLog(path))
            SampleRun.Play(log, to: 5, end: false);

        RunHistory run = MetricsLog.Read(path);
        Assert.Equal(Enumerable.Range(1, 5), run.Steps.Select(s => s.Step));
        Assert.Single(File.ReadLines(path), l => l.StartsWith("{\"event\":\"start\""));
        Assert.Null(run.End);
    }

    [Fact]
    public void A_line_torn_by_a_kill_is_skipped_when_read_and_cut_before_appending()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        using (var log = new MetricsLog(path))
            SampleRun.Play(log, to: 4, end: false);
        File.AppendAllText(path, "{\"event\":\"step\",\"step\":5,\"max_st");

        Assert.Equal(4, MetricsLog.ReadSteps(path).Count);
        using (var log = new MetricsLog(path))
            log.OnStep(SampleRun.Step(5));
        Assert.Equal(Enumerable.Range(1, 5), MetricsLog.ReadSteps(path).Select(s => s.Step));
        Assert.DoesNotContain("max_st{", File.ReadAllText(path));
    }

    [Fact]
    public void A_bad_line_is_an_error_naming_the_file_and_line()
    {
        string path = Path.Combine(TestPaths.TempDir(), "metrics.jsonl");
        File.WriteAllText(path, "\n{\"event\":\"step\",\"step\":1}\n");

        var missing = Assert.Throws<SharpTuneException>(() => MetricsLog.Read(path));
        Assert.StartsWith($"{path}:2: bad \"step\" line", missing.Message);
        Assert.Contains("max_steps", missing.Message);

        File.WriteAllText(path, "not json\n{}\n");
        var notJson = Assert.Throws<SharpTuneException>(() => MetricsLog.Read(path));
        Assert.StartsWith($"{path}:1: expected a JSON object", notJson.Message);

        File.WriteAllText(path, "{\"event\":\"stepp\"}\n");
        var unknown = Assert.Throws<SharpTuneException>(() => MetricsLog.Read(path));
        Assert.Contains($"{path}:1: \"event\" must be start, step, eval, checkpoint or end", unknown.Message);
    }
}
