using System.Diagnostics;
using SharpTune.Models;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>`sharptune train` killed with SIGKILL mid-run, then started again: it resumes from its last
/// checkpoint and its losses equal those of a run that was never interrupted.</summary>
public class KillResumeTests
{
    static string[] TrainArgs(string model, string output) =>
    [
        "train", "--model", model, "--dataset", "sample", "--dataset-rows", "64", "--max-steps", "24", "--save-every", "4",
        "--batch-size", "2", "--gradient-accumulation", "1", "--max-length", "256", "--warmup-steps", "2", "--lora-rank", "8",
        "--learning-rate", "3e-3", "--validation-fraction", "0", "--device", "cpu", "--output-dir", output, "--seed", "5",
    ];

    static Process Start(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "SharpTune.Cli.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    static Dictionary<int, double> Losses(string output) =>
        MetricsLog.ReadSteps(Path.Combine(output, "metrics.jsonl")).ToDictionary(s => s.Step, s => s.Loss);

    [Fact]
    public void KilledRunResumesWithIdenticalLosses()
    {
        string model = TestPaths.NewTinyModel();

        string straight = TestPaths.TempDir();
        using (var p = Start(TrainArgs(model, straight))) { Assert.True(p.WaitForExit(180_000)); Assert.Equal(0, p.ExitCode); }

        string killed = TestPaths.TempDir();
        string checkpoint = Path.Combine(killed, "checkpoints", "step-000008");
        using (var p = Start(TrainArgs(model, killed)))
        {
            var clock = Stopwatch.StartNew();
            while (!Directory.Exists(checkpoint) && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(20);
            Assert.False(p.HasExited, "the run finished before it could be killed");
            p.Kill();   // SIGKILL: no chance to clean up
            p.WaitForExit();
        }
        Assert.False(File.Exists(Path.Combine(killed, "adapter", "adapter_model.safetensors")), "the killed run must not have finished");
        using (var p = Start(TrainArgs(model, killed))) { Assert.True(p.WaitForExit(180_000)); Assert.Equal(0, p.ExitCode); }

        var expected = Losses(straight);
        var resumed = Losses(killed);
        Assert.Equal(Enumerable.Range(1, 24), resumed.Keys.Order());
        foreach (var (step, loss) in expected) Assert.Equal(loss, resumed[step]);
    }

    [Fact]
    public void TerminatedRunStopsAfterItsStepWithACheckpoint()
    {
        string model = TestPaths.NewTinyModel();
        string output = TestPaths.TempDir();
        using var p = Start(TrainArgs(model, output));
        var clock = Stopwatch.StartNew();
        while (!Directory.Exists(Path.Combine(output, "checkpoints", "step-000004")) && !p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(20);
        Assert.False(p.HasExited, "the run finished before it could be stopped");
        using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000));
        Assert.Equal(130, p.ExitCode);
        var steps = MetricsLog.ReadSteps(Path.Combine(output, "metrics.jsonl"));
        int last = steps[^1].Step;
        Assert.InRange(last, 4, 23);
        Assert.Equal(last, int.Parse(Path.GetFileName(SftTrainer.Checkpoints(Path.Combine(output, "checkpoints"))[^1])["step-".Length..]));
        Assert.False(Directory.Exists(Path.Combine(output, "adapter")));
    }
}
