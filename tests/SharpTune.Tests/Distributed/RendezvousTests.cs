using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using SharpTune.Distributed;

namespace SharpTune.Tests.Distributed;

public class RendezvousTests
{
    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static readonly TimeSpan Patient = TimeSpan.FromSeconds(60);

    /// <summary>Joins N ranks on threads; rank 1.. start first, so that they exercise the retry until rank 0 listens.</summary>
    static Rendezvous[] JoinAll(int n, int port, ConcurrentBag<(int Rank, string Message)> lost)
    {
        byte[] id = Enumerable.Range(0, 128).Select(i => (byte)(i * 7)).ToArray();
        var tasks = Enumerable.Range(0, n).Reverse().Select(r => Task.Factory.StartNew(() =>
            Rendezvous.Join(r, n, "127.0.0.1", port, () => id, Patient, m => lost.Add((r, m))), TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(tasks);
        return tasks.Reverse().Select(t => t.Result).ToArray();
    }

    static void OnThreads(IEnumerable<Action> actions) =>
        Task.WaitAll(actions.Select(a => Task.Factory.StartNew(a, TaskCreationOptions.LongRunning)).ToArray());

    [Fact]
    public void EveryRankGetsRankZerosIdAndBarriersMeet()
    {
        var lost = new ConcurrentBag<(int, string)>();
        var ranks = JoinAll(3, FreePort(), lost);
        Assert.All(ranks, r => Assert.Equal(Enumerable.Range(0, 128).Select(i => (byte)(i * 7)), r.Payload));
        for (int round = 0; round < 3; round++)
            OnThreads(ranks.Select(r => (Action)(() => r.Barrier(Patient))));
        foreach (var r in ranks.Reverse()) r.Dispose();   // goodbyes: leaving is not a failure
        Assert.Empty(lost);
    }

    [Fact]
    public void ARankThatDiesIsReportedToEveryOtherRank()
    {
        var lost = new ConcurrentBag<(int Rank, string Message)>();
        var ranks = JoinAll(3, FreePort(), lost);
        ranks[2].Crash();
        var deadline = DateTime.UtcNow + Patient;
        while (lost.Select(l => l.Rank).Distinct().Count() < 2 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Equal([0, 1], lost.Select(l => l.Rank).Distinct().Order());
        Assert.All(lost, l => Assert.Contains("rank 2 stopped", l.Message));
        // a barrier with a dead rank fails instead of waiting
        var e = Assert.Throws<SharpTuneException>(() => ranks[0].Barrier(Patient));
        Assert.Contains("lost", e.Message);
        ranks[0].Crash(); ranks[1].Crash();
    }

    [Fact]
    public void AWorkerWithoutRankZeroTimesOut()
    {
        var e = Assert.Throws<SharpTuneException>(() =>
            Rendezvous.Join(1, 2, "127.0.0.1", FreePort(), () => [], TimeSpan.FromSeconds(1), _ => { }));
        Assert.Contains("rank 1: could not reach rank 0 at 127.0.0.1:", e.Message);
    }

    [Fact]
    public void RankZeroNamesTheRanksThatDidNotJoin()
    {
        var e = Assert.Throws<SharpTuneException>(() =>
            Rendezvous.Join(0, 3, "127.0.0.1", FreePort(), () => new byte[128], TimeSpan.FromSeconds(1), _ => { }));
        Assert.Contains("rank(s) 1, 2 of 3 did not join within 1 s", e.Message);
    }

    [Fact]
    public async Task MismatchedWorldSizesAreRefused()
    {
        int port = FreePort();
        var host = Task.Factory.StartNew(() => Rendezvous.Join(0, 2, "127.0.0.1", port, () => new byte[128], Patient, _ => { }), TaskCreationOptions.LongRunning);
        var e = Assert.Throws<SharpTuneException>(() => Rendezvous.Join(1, 3, "127.0.0.1", port, () => [], Patient, _ => { }));
        Assert.Contains("says WORLD_SIZE=3, rank 0 has 2", e.Message);
        var hostError = await Assert.ThrowsAsync<SharpTuneException>(() => host);
        Assert.Contains("WORLD_SIZE=3", hostError.Message);
    }
}
