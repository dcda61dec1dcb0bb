using SharpTune.Distributed;
using static TorchSharp.torch;

namespace SharpTune.Tests.Distributed;

public class ShardAndCollectiveTests
{
    [Fact]
    public void RanksTakeEveryNthMicroBatchAndTogetherTheWholeStepInOrder()
    {
        int[] step = [10, 11, 12, 13, 14, 15, 16];   // a short last step: 7 micro-batches for 2 ranks
        Assert.Equal([10, 12, 14, 16], Shard.Of(step, 0, 2));
        Assert.Equal([11, 13, 15], Shard.Of(step, 1, 2));
        Assert.Equal([12, 15], Shard.Of(step, 2, 3));
        Assert.Equal(step, Shard.Of(step, 0, 1));
        var interleaved = Enumerable.Range(0, step.Length).Select(i => Shard.Of(step, i % 3, 3)[i / 3]);
        Assert.Equal(step, interleaved);
        Assert.Throws<ArgumentOutOfRangeException>(() => Shard.Of(step, 2, 2));
    }

    /// <summary>Runs <paramref name="body"/> as N ranks on N threads and returns what each returned.</summary>
    static T[] OnRanks<T>(int n, Func<ICollective, T> body, TimeSpan? timeout = null)
    {
        _ = TestPaths.Cpu;
        var group = LocalCollective.Create(n, timeout);
        var tasks = group.Select(c => Task.Factory.StartNew(() => body(c), TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(tasks);
        return tasks.Select(t => t.Result).ToArray();
    }

    [Fact]
    public void LocalCollectivesGiveTheDefinedResultsOnEveryRank()
    {
        var results = OnRanks(3, c =>
        {
            var sum = tensor(new float[] { c.Rank, 10 * c.Rank });
            c.AllReduce(sum);
            var avg = tensor(new float[] { c.Rank });
            c.AllReduce(avg, ReduceOp.Average);
            var max = tensor(new float[] { -c.Rank });
            c.AllReduce(max, ReduceOp.Max);
            var b = tensor(new float[] { c.Rank + 5 });
            c.Broadcast(b, root: 2);
            var gathered = zeros(6);
            c.AllGather(tensor(new float[] { c.Rank, -c.Rank }), gathered);
            c.Barrier();
            return (float[])[.. sum.data<float>(), avg.item<float>(), max.item<float>(), b.item<float>(), .. gathered.data<float>()];
        });
        foreach (var r in results)
            Assert.Equal([3f, 30f, 1f, 0f, 7f, 0f, 0f, 1f, -1f, 2f, -2f], r);
    }

    [Fact]
    public void ARankThatNeverArrivesFailsTheOthersInsteadOfHanging()
    {
        _ = TestPaths.Cpu;
        var group = LocalCollective.Create(2, TimeSpan.FromMilliseconds(200));
        var e = Assert.Throws<SharpTuneException>(() => group[0].AllReduce(ones(1)));
        Assert.Contains("did not reach the collective", e.Message);
    }

    [Fact]
    public void MissingNcclIsOneClearError()
    {
        // SHARPTUNE_NCCL_LIB names the file to use: a missing one is reported with what was tried.
        Assert.Equal(["/x/libnccl.so.2"], NcclLibrary.Candidates("/venv/lib/python3.12/site-packages/torch/lib", "/x/libnccl.so.2"));
        Assert.Equal(["/venv/lib/python3.12/site-packages/nvidia/nccl/lib/libnccl.so.2", "libnccl.so.2"],
            NcclLibrary.Candidates("/venv/lib/python3.12/site-packages/torch/lib", null));
        Environment.SetEnvironmentVariable(NcclLibrary.LibraryVariable, "/nonexistent/libnccl.so.2");
        try
        {
            var e = Assert.Throws<SharpTuneException>(() => NcclLibrary.Description);
            Assert.Contains("NCCL (libnccl.so.2) was not found", e.Message);
            Assert.Contains("/nonexistent/libnccl.so.2 (absent)", e.Message);
        }
        finally { Environment.SetEnvironmentVariable(NcclLibrary.LibraryVariable, null); }
    }
}
