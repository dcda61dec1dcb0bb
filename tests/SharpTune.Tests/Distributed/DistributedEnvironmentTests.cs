using SharpTune.Distributed;

namespace SharpTune.Tests.Distributed;

public class DistributedEnvironmentTests
{
    static DistributedEnvironment? Parse(params (string Name, string Value)[] vars)
    {
        var map = vars.ToDictionary(v => v.Name, v => v.Value);
        return DistributedEnvironment.FromVariables(n => map.GetValueOrDefault(n));
    }

    [Fact]
    public void NoVariablesMeansNoDistributedRun() => Assert.Null(Parse());

    [Fact]
    public void ReadsTorchrunVariables()
    {
        var env = Parse(("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("LOCAL_WORLD_SIZE", "2"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29501"));
        Assert.Equal(new DistributedEnvironment(3, 4, 1, 2, "10.0.0.1", 29501), env);
        Assert.False(env!.IsMaster);
    }

    [Fact]
    public void LocalRankDefaultsFromRankAndLocalWorldSize()
    {
        var env = Parse(("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1234"));
        Assert.Equal(1, env!.LocalRank);
        var single = Parse(("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1234"));
        Assert.Equal((1, 2), (single!.LocalRank, single.LocalWorldSize));
    }

    [Theory]
    [InlineData("RANK=1", "without WORLD_SIZE")]
    [InlineData("RANK=2;WORLD_SIZE=2;MASTER_ADDR=h;MASTER_PORT=1", "RANK='2': expected a whole number from 0 to 1 (WORLD_SIZE is 2)")]
    [InlineData("RANK=x;WORLD_SIZE=2;MASTER_ADDR=h;MASTER_PORT=1", "RANK='x'")]
    [InlineData("RANK=0;WORLD_SIZE=2;MASTER_PORT=1", "MASTER_ADDR is not")]
    [InlineData("RANK=0;WORLD_SIZE=2;MASTER_ADDR=h;MASTER_PORT=70000", "MASTER_PORT='70000'")]
    [InlineData("WORLD_SIZE=0", "WORLD_SIZE='0'")]
    [InlineData("RANK=0;WORLD_SIZE=3;LOCAL_WORLD_SIZE=2;MASTER_ADDR=h;MASTER_PORT=1", "not a multiple of LOCAL_WORLD_SIZE=2")]
    [InlineData("RANK=0;WORLD_SIZE=4;LOCAL_RANK=2;LOCAL_WORLD_SIZE=2;MASTER_ADDR=h;MASTER_PORT=1", "LOCAL_RANK='2'")]
    public void InconsistentVariablesAreNamed(string vars, string expected)
    {
        var pairs = vars.Split(';').Select(v => v.Split('=')).Select(v => (v[0], v[1])).ToArray();
        var e = Assert.Throws<SharpTuneException>(() => Parse(pairs));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EachWorkerSeesItsOwnGpu()
    {
        var env = new DistributedEnvironment(3, 4, 1, 2, "h", 1);
        Assert.Equal("1", env.VisibleDevice(null));
        Assert.Equal("6", env.VisibleDevice("4, 6"));
        var e = Assert.Throws<SharpTuneException>(() => env.VisibleDevice("4"));
        Assert.Contains("lists 1 GPU", e.Message);
    }

    [Fact]
    public void LaunchPlanGivesGlobalRanksPerNode()
    {
        var plan = LaunchPlan.Create(gpus: 2, nodes: 2, nodeRank: 1, masterAddr: "10.0.0.1", masterPort: null);
        var envs = plan.WorkerEnvironments();
        Assert.Equal(["2", "3"], envs.Select(e => e["RANK"]));
        Assert.Equal(["0", "1"], envs.Select(e => e["LOCAL_RANK"]));
        Assert.All(envs, e => Assert.Equal(("4", "2", "10.0.0.1", "29500"), (e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"], e["MASTER_ADDR"], e["MASTER_PORT"])));
        // what a worker reads back is what the launcher wrote
        var back = DistributedEnvironment.FromVariables(n => envs[1].GetValueOrDefault(n));
        Assert.Equal(new DistributedEnvironment(3, 4, 1, 2, "10.0.0.1", 29500), back);
    }

    [Theory]
    [InlineData(0, null, null, null, null, "--gpus")]
    [InlineData(1, 2, 2, "h", null, "--node-rank: expected 0 to 1")]
    [InlineData(1, 2, 1, null, null, "give --master-addr")]
    [InlineData(1, null, null, null, 0, "--master-port")]
    public void LaunchFlagsAreChecked(int gpus, int? nodes, int? nodeRank, string? addr, int? port, string expected)
    {
        var e = Assert.Throws<SharpTuneException>(() => LaunchPlan.Create(gpus, nodes, nodeRank, addr, port));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void WorkersGetTheArgumentsWithoutTheLauncherFlags()
    {
        string[] args = ["train", "--gpus", "2", "--model", "m", "--nnodes=1", "--master-port", "1234", "--node-rank=0", "--master-addr", "h", "--max-steps", "5"];
        Assert.Equal(["train", "--model", "m", "--max-steps", "5"], LaunchPlan.WithoutLauncherFlags(args));
    }
}
