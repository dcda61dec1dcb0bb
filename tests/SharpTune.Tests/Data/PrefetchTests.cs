using SharpTune.Data;

namespace SharpTune.Tests.Data;

public class PrefetchTests
{
    [Fact]
    public void ItemsArriveInOrder()
    {
        Assert.Equal(Enumerable.Range(0, 100), Prefetch.Ahead(Enumerable.Range(0, 100), ahead: 3));
    }

    [Fact]
    public void AnErrorInTheSourceReachesTheReaderAfterTheItemsBeforeIt()
    {
        static IEnumerable<int> Failing()
        {
            yield return 1;
            yield return 2;
            throw new SharpTuneException("row 3: bad");
        }
        var seen = new List<int>();
        var e = Assert.Throws<SharpTuneException>(() => { foreach (int i in Prefetch.Ahead(Failing(), ahead: 4)) seen.Add(i); });
        Assert.Equal("row 3: bad", e.Message);
        Assert.Equal([1, 2], seen);
    }

    [Fact]
    public void StoppingEarlyStopsTheProducer()
    {
        int produced = 0;
        IEnumerable<int> Endless() { for (int i = 0; ; i++) { Interlocked.Increment(ref produced); yield return i; } }
        using (var items = Prefetch.Ahead(Endless(), ahead: 2).GetEnumerator())
            for (int i = 0; i < 5; i++) Assert.True(items.MoveNext());
        int after = Volatile.Read(ref produced);
        Thread.Sleep(50);
        Assert.Equal(after, Volatile.Read(ref produced));   // disposed: nothing more is built
        Assert.True(after <= 5 + 2 + 1);
    }
}
