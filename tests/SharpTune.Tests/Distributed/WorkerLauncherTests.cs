using SharpTune.Distributed;

namespace SharpTune.Tests.Distributed;

/// <summary>The launcher with a tiny shell script as the worker: what it forwards, and how a failing worker ends the run.</summary>
public class WorkerLauncherTests
{
    static (int Code, string Out, string Err) Launch(int gpus, string script, int nodes = 1, int nodeRank = 0)
    {
        var plan = LaunchPlan.Create(gpus, nodes, nodeRank, nodes > 1 ? "127.0.0.1" : null, 29999);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = WorkerLauncher.Run(plan, new WorkerCommand("/bin/sh", ["-c", script]), stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void WorkersGetTheirRanksAndRankZerosOutputIsForwarded()
    {
        var (code, output, errors) = Launch(2, "echo \"out $RANK/$WORLD_SIZE local $LOCAL_RANK/$LOCAL_WORLD_SIZE at $MASTER_ADDR:$MASTER_PORT\"; echo \"note from $RANK\" >&2");
        Assert.Equal(0, code);
        Assert.Equal("out 0/2 local 0/2 at 127.0.0.1:29999", output.Trim());   // rank 1's ordinary output is dropped
        Assert.Contains("note from 0", errors);
        Assert.Contains("[rank 1] note from 1", errors);
    }

    [Fact]
    public void OnASecondNodeRanksFollowTheNodeRank()
    {
        string dir = TestPaths.TempDir();
        var (code, output, _) = Launch(2, $"echo \"$RANK $LOCAL_RANK $WORLD_SIZE\" > {dir}/rank-$RANK", nodes: 2, nodeRank: 1);
        Assert.Equal(0, code);
        Assert.Contains("node 1: starting ranks 2-3 of 4", output);
        Assert.Equal("2 0 4", File.ReadAllText(Path.Combine(dir, "rank-2")).Trim());
        Assert.Equal("3 1 4", File.ReadAllText(Path.Combine(dir, "rank-3")).Trim());
    }

    [Fact]
    public void AFailingWorkerStopsTheOthersAndIsNamed()
    {
        string dir = TestPaths.TempDir();
        // rank 0 would run for 5 minutes; rank 1 fails once rank 0 has written its process id
        string script = $"if [ \"$RANK\" = 0 ]; then echo $$ > {dir}/pid.tmp; mv {dir}/pid.tmp {dir}/pid; exec sleep 300; fi; "
            + $"while [ ! -f {dir}/pid ]; do sleep 0.05; done; echo 'loading…' >&2; echo 'error: out of memory on GPU 1' >&2; exit 3";
        var (code, _, errors) = Launch(2, script);
        Assert.Equal(1, code);
        Assert.Contains("error: rank 1 of 2 failed (exit code 3): out of memory on GPU 1; the other workers were stopped", errors);
        int pid = int.Parse(File.ReadAllText(Path.Combine(dir, "pid")).Trim());
        Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), $"rank 0 (pid {pid}) is still running");
    }

    [Fact]
    public void AMissingProgramIsOneClearError()
    {
        var plan = LaunchPlan.Create(2, null, null, null, null);
        var e = Assert.Throws<SharpTuneException>(() => WorkerLauncher.Run(plan, new WorkerCommand("/nonexistent/sharptune", []), TextWriter.Null, TextWriter.Null));
        Assert.Contains("cannot start worker /nonexistent/sharptune", e.Message);
    }
}
