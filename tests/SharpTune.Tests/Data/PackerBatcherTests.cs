using System.Text.Json;
using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class PackerBatcherTests
{
    private const int Ignore = TokenizedExample.IgnoreIndex;

    private static TokenizedExample Example(int length, int first)
    {
        int[] ids = Enumerable.Range(first, length).ToArray();
        int[] labels = ids.Select((id, i) => i == 0 ? Ignore : id).ToArray();
        return new TokenizedExample(ids, labels);
    }

    [Fact]
    public void Concatenate_MatchesTransformersDataCollatorWithFlattening()
    {
        using var fixture = JsonDocument.Parse(File.ReadAllText(Fixtures.Data("packing.json")));
        var root = fixture.RootElement;
        var features = root.GetProperty("features").EnumerateArray().Select(f => new TokenizedExample(
            f.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            f.GetProperty("labels").EnumerateArray().Select(x => x.GetInt32()).ToArray())).ToList();

        var packed = Packer.Concatenate(features);
        var batch = Batcher.Collate([packed], padId: 0);
        Assert.Equal(Flat(root, "input_ids"), batch.InputIds);
        Assert.Equal(Flat(root, "labels"), batch.Labels);
        Assert.Equal(Flat(root, "position_ids"), batch.PositionIds);
        Assert.Equal(Flat(root, "cu_seq_lens_q").Select(x => (int)x), batch.CuSeqLens);
        Assert.Equal(root.GetProperty("max_length_q").GetInt32(), batch.MaxExampleLength);
        if (root.TryGetProperty("seq_idx", out _))
            Assert.Equal(Flat(root, "seq_idx"), batch.SegmentIds.Select(s => s - 1));
    }

    private static long[] Flat(JsonElement root, string name)
    {
        var value = root.GetProperty(name);
        var items = new List<long>();
        void Walk(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Array)
                foreach (var child in e.EnumerateArray())
                    Walk(child);
            else
                items.Add(e.GetInt64());
        }
        Walk(value);
        return items.ToArray();
    }

    [Fact]
    public void Pack_BestFitDecreasing_KeepsEveryExampleOnceWithinTheLength()
    {
        int[] lengths = [7, 3, 5, 2, 8, 1, 4, 6, 2, 9];
        var examples = lengths.Select((l, i) => Example(l, 1000 * (i + 1))).ToList();
        var packed = Packer.Pack(examples, maxLength: 10);

        Assert.All(packed, p => Assert.InRange(p.Length, 1, 10));
        Assert.Equal(lengths.Sum(), packed.Sum(p => p.Length));
        Assert.Equal(lengths.Sum() / 10 + (lengths.Sum() % 10 > 0 ? 1 : 0), packed.Count); // this input packs perfectly
        var starts = packed.SelectMany(p => StartsOf(p).Select(s => p.InputIds[s])).Order().ToList();
        Assert.Equal(Enumerable.Range(1, lengths.Length).Select(i => 1000 * i), starts);
        // Best fit: 9 goes first; then 8, 7 open new sequences; 1 tops up the 9.
        Assert.Equal([9, 1], packed[0].ExampleLengths);
    }

    private static IEnumerable<int> StartsOf(PackedSequence p)
    {
        int offset = 0;
        foreach (int length in p.ExampleLengths)
        {
            yield return offset;
            offset += length;
        }
    }

    [Fact]
    public void Packed_PositionsRestart_AndNoLabelCrossesABoundary()
    {
        var a = new TokenizedExample([1, 2, 3], [5, 2, 3]); // a first label that is not -100 gets cleared
        var b = new TokenizedExample([4, 5], [4, 5]);
        var p = Packer.Concatenate([a, b]);
        Assert.Equal([1, 2, 3, 4, 5], p.InputIds);
        Assert.Equal([0, 1, 2, 0, 1], p.PositionIds);
        Assert.Equal([Ignore, 2, 3, Ignore, 5], p.Labels);
        Assert.Equal([3, 2], p.ExampleLengths);
    }

    [Fact]
    public void Pack_IsDeterministic_AndRejectsOverlongExamples()
    {
        var examples = Enumerable.Range(0, 200).Select(i => Example(1 + i * 7 % 31, i * 100)).ToList();
        var first = Packer.Pack(examples, 64);
        var second = Packer.Pack(examples, 64);
        Assert.Equal(first.Select(p => string.Join(",", p.InputIds)), second.Select(p => string.Join(",", p.InputIds)));
        Assert.Throws<ArgumentException>(() => Packer.Pack([Example(65, 0)], 64));
    }

    [Fact]
    public void Collate_PadsToTheLongest_WithSegmentsAndCounts()
    {
        var rows = new[]
        {
            Packer.Concatenate([Example(2, 10), Example(3, 20)]),
            Packer.Concatenate([Example(2, 30)]),
        };
        var batch = Batcher.Collate(rows, padId: 99);
        Assert.Equal((2, 5), (batch.Size, batch.Length));
        Assert.Equal([10, 11, 20, 21, 22, 30, 31, 99, 99, 99], batch.InputIds);
        Assert.Equal([Ignore, 11, Ignore, 21, 22, Ignore, 31, Ignore, Ignore, Ignore], batch.Labels);
        Assert.Equal([0, 1, 0, 1, 2, 0, 1, 0, 0, 0], batch.PositionIds);
        Assert.Equal([1, 1, 2, 2, 2, 1, 1, 0, 0, 0], batch.SegmentIds);
        Assert.Equal([0, 2, 5, 7], batch.CuSeqLens);
        Assert.Equal((7, 4, 3), (batch.TokenCount, batch.LabelCount, batch.MaxExampleLength));
    }

    private static List<PackedSequence> Sequences(int count) => Packer.Single(Enumerable.Range(0, count).Select(i => Example(2, i * 10)).ToList());

    private static string Key(Batch b) => string.Join(",", b.InputIds);

    [Fact]
    public void Batcher_IsDeterministic_ShufflesPerEpoch_AndCoversEverySequence()
    {
        var options = new BatchOptions(BatchSize: 4, PadId: 0) { Seed = 7 };
        var one = new Batcher(Sequences(10), options);
        var two = new Batcher(Sequences(10), options);
        Assert.Equal(3, one.BatchesPerEpoch);
        var epoch0 = one.Read(new DataPosition(0, 0), epochs: 1).Select(x => Key(x.Batch)).ToList();
        Assert.Equal(epoch0, two.Read(new DataPosition(0, 0), epochs: 1).Select(x => Key(x.Batch)).ToList());
        Assert.NotEqual(one.EpochOrder(0), one.EpochOrder(1));
        Assert.Equal(Enumerable.Range(0, 10), one.EpochOrder(1).Order());
        Assert.NotEqual(epoch0, new Batcher(Sequences(10), options with { Seed = 8 }).Read(new DataPosition(0, 0), 1).Select(x => Key(x.Batch)).ToList());
        Assert.Equal(Enumerable.Range(0, 10), new Batcher(Sequences(10), options with { Shuffle = false }).EpochOrder(3));
    }

    [Fact]
    public void Batcher_ResumeFromASavedPosition_GivesTheRemainingBatches()
    {
        var batcher = new Batcher(Sequences(10), new BatchOptions(3, 0) { Seed = 1 });
        var all = batcher.Read(new DataPosition(0, 0), epochs: 3).ToList();
        Assert.Equal(12, all.Count);
        Assert.Equal(new DataPosition(1, 0), all[3].Next);
        Assert.Equal(new DataPosition(3, 0), all[^1].Next);

        DataPosition saved = all[4].Next; // stopped after the 5th batch
        var resumed = new Batcher(Sequences(10), new BatchOptions(3, 0) { Seed = 1 }).Read(saved, epochs: 3).ToList();
        Assert.Equal(all.Skip(5).Select(x => Key(x.Batch)), resumed.Select(x => Key(x.Batch)));
        Assert.Equal(all.Skip(5).Select(x => x.Next), resumed.Select(x => x.Next));
    }

    [Fact]
    public void Batcher_DropLast_LeavesOutTheShortBatch()
    {
        var batcher = new Batcher(Sequences(10), new BatchOptions(4, 0) { DropLast = true });
        Assert.Equal(2, batcher.BatchesPerEpoch);
        Assert.All(batcher.Read(new DataPosition(0, 0), 2), x => Assert.Equal(4, x.Batch.Size));
        Assert.Throws<SharpTuneException>(() => new Batcher([], new BatchOptions(4, 0)));
    }
}
