using SharpTune.Distributed;

namespace SharpTune.Tests.Distributed;

/// <summary>The stalled-collective rule on a manual clock, with the GPU's completion state played by a flag.</summary>
public class CollectiveWatchTests
{
    DateTime _now = new(2026, 11, 30, 0, 0, 0, DateTimeKind.Utc);
    bool _newestDone = true;
    int _marks;

    CollectiveWatch Watch() => new(() => _newestDone, () => { _marks++; _newestDone = false; }, TimeSpan.FromSeconds(60), () => _now);

    [Fact]
    public void NothingQueuedNeverStalls()
    {
        var w = Watch();
        _now += TimeSpan.FromHours(1);
        Assert.Null(w.Stalled());
    }

    [Fact]
    public void ACollectiveThatCompletesInTimeIsFine()
    {
        var w = Watch();
        w.Queued();
        _now += TimeSpan.FromSeconds(59);
        Assert.Null(w.Stalled());
        _newestDone = true;
        _now += TimeSpan.FromSeconds(600);
        Assert.Null(w.Stalled());
        Assert.Equal(1, _marks);
    }

    [Fact]
    public void ACollectiveStuckPastTheTimeoutIsReportedWithItsWait()
    {
        var w = Watch();
        w.Queued();
        _now += TimeSpan.FromSeconds(61);
        Assert.Equal(TimeSpan.FromSeconds(61), w.Stalled());
    }

    [Fact]
    public void QueuingMoreBehindAStuckCollectiveKeepsTheOldestWait()
    {
        var w = Watch();
        w.Queued();
        for (int i = 0; i < 6; i++) { _now += TimeSpan.FromSeconds(15); w.Queued(); }
        Assert.Equal(TimeSpan.FromSeconds(90), w.Stalled());
    }

    [Fact]
    public void ABusyPipelineThatKeepsCompletingNeverTimesOut()
    {
        // Each new collective is queued while the previous one has finished but the watchdog never looked in between.
        var w = Watch();
        for (int i = 0; i < 100; i++)
        {
            w.Queued();
            _now += TimeSpan.FromSeconds(5);
            _newestDone = true;
        }
        _newestDone = false;
        Assert.Null(w.Stalled());
    }
}
