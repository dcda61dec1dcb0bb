using SharpTune.Cli;

namespace SharpTune.Tests.Cli;

/// <summary>`train --gpus/--nnodes/...`: bad launcher flags fail with one line before any worker starts.</summary>
public class DistributedFlagsTests
{
    static (int Code, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stderr.ToString());
    }

    [Theory]
    [InlineData("--gpus 0", "error: --gpus: expected the number of GPUs to use on this machine (1 or more), got 0")]
    [InlineData("--gpus 2 --nnodes 2 --node-rank 2 --master-addr h", "error: --node-rank: expected 0 to 1 (--nnodes is 2), got 2")]
    [InlineData("--gpus 1 --nnodes 2 --node-rank 1", "error: --nnodes 2: give --master-addr")]
    public void BadLauncherFlagsAreOneErrorLine(string flags, string expected)
    {
        var (code, err) = Run(["train", .. flags.Split(' ')]);
        Assert.Equal(1, code);
        Assert.StartsWith(expected, err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
