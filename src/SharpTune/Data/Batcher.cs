namespace SharpTune.Data;

/// <summary>
/// A batch of sequences padded to the longest one, row-major [Size, Length].
/// <see cref="SegmentIds"/> numbers the examples of each row from 1 (0 is padding): attention from token i to
/// token j is allowed when both have the same non-zero segment id and j ≤ i. <see cref="CuSeqLens"/> are the
/// cumulative example lengths over all rows with padding left out (the varlen attention layout).
/// </summary>
public sealed record Batch(
    int Size,
    int Length,
    long[] InputIds,
    long[] Labels,
    long[] PositionIds,
    long[] SegmentIds,
    int[] CuSeqLens,
    int MaxExampleLength,
    int TokenCount,
    int LabelCount);

public sealed record BatchOptions(int BatchSize, int PadId)
{
    /// <summary>Shuffle the sequences each epoch (a different, seeded order per epoch).</summary>
    public bool Shuffle { get; init; } = true;
    public ulong Seed { get; init; }

    /// <summary>Leave out the last batch of an epoch when it is smaller than <see cref="BatchSize"/>.</summary>
    public bool DropLast { get; init; }

    /// <summary>Pad every batch's length up to a multiple of this (64 on a GPU: a few shapes instead of one per
    /// batch, so that the allocator and the matrix kernels settle at once, and aligned matrix sizes).</summary>
    public int PadToMultipleOf { get; init; } = 1;
}

/// <summary>Where training is in the data: the epoch and the next batch within it. Save it with a checkpoint and
/// pass it back to <see cref="Batcher.Read"/> to resume with exactly the batches that were not yet seen.</summary>
public readonly record struct DataPosition(int Epoch, int Batch);

/// <summary>Deterministic batches over epochs: batch b of epoch e is the same on every run with the same seed.</summary>
public sealed class Batcher
{
    private readonly IReadOnlyList<PackedSequence> _sequences;
    private readonly BatchOptions _options;
    private (int Epoch, int[] Order)? _lastOrder;

    public Batcher(IReadOnlyList<PackedSequence> sequences, BatchOptions options)
    {
        if (options.BatchSize < 1)
            throw new SharpTuneException($"the batch size must be at least 1 (is {options.BatchSize})");
        if (sequences.Count == 0)
            throw new SharpTuneException("there are no training sequences to batch");
        _sequences = sequences;
        _options = options;
    }

    public int BatchesPerEpoch => _options.DropLast
        ? Math.Max(1, _sequences.Count / _options.BatchSize)
        : (_sequences.Count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>Batches from <paramref name="start"/> to the end of epoch <paramref name="epochs"/> - 1, each with
    /// the position that follows it (the one to save after the step).</summary>
    public IEnumerable<(Batch Batch, DataPosition Next)> Read(DataPosition start, int epochs)
    {
        if (start.Epoch < 0 || start.Batch < 0 || start.Batch > BatchesPerEpoch)
            throw new SharpTuneException($"data position (epoch {start.Epoch}, batch {start.Batch}) is outside the data ({BatchesPerEpoch} batches per epoch)");
        for (int epoch = start.Epoch; epoch < epochs; epoch++)
        {
            for (int b = epoch == start.Epoch ? start.Batch : 0; b < BatchesPerEpoch; b++)
            {
                var next = b + 1 < BatchesPerEpoch ? new DataPosition(epoch, b + 1) : new DataPosition(epoch + 1, 0);
                yield return (GetBatch(new DataPosition(epoch, b)), next);
            }
        }
    }

    /// <summary>The sequence indices of epoch <paramref name="epoch"/>, in batch order.</summary>
    public int[] EpochOrder(int epoch)
    {
        if (_lastOrder is { } last && last.Epoch == epoch)
            return last.Order;
        int[] order = _options.Shuffle
            ? SeededRandom.For(_options.Seed, "epoch", epoch).Permutation(_sequences.Count)
            : Enumerable.Range(0, _sequences.Count).ToArray();
        _lastOrder = (epoch, order);
        return order;
    }

    public Batch GetBatch(DataPosition position)
    {
        int[] order = EpochOrder(position.Epoch);
        int first = position.Batch * _options.BatchSize;
        int count = Math.Min(_options.BatchSize, order.Length - first);
        if (position.Batch < 0 || count <= 0)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"the epoch has {BatchesPerEpoch} batches");
        return Collate(order.AsSpan(first, count).ToArray().Select(i => _sequences[i]).ToList(), _options.PadId, _options.PadToMultipleOf);
    }

    /// <summary>Pads sequences to the longest, rounded up to a multiple of <paramref name="padMultiple"/> (pad id,
    /// label -100, position 0, segment 0) into one batch.</summary>
    public static Batch Collate(IReadOnlyList<PackedSequence> rows, int padId, int padMultiple = 1)
    {
        int size = rows.Count;
        int length = (rows.Max(r => r.Length) + padMultiple - 1) / padMultiple * padMultiple;
        var ids = new long[size * length];
        var labels = new long[size * length];
        var positions = new long[size * length];
        var segments = new long[size * length];
        Array.Fill(ids, padId);
        Array.Fill(labels, TokenizedExample.IgnoreIndex);
        var cu = new List<int> { 0 };
        int tokens = 0, labelCount = 0, maxExample = 0;
        for (int r = 0; r < size; r++)
        {
            var row = rows[r];
            int offset = r * length;
            int t = 0;
            for (int e = 0; e < row.ExampleLengths.Length; e++)
            {
                int exampleLength = row.ExampleLengths[e];
                for (int k = 0; k < exampleLength; k++, t++)
                {
                    ids[offset + t] = row.InputIds[t];
                    labels[offset + t] = row.Labels[t];
                    positions[offset + t] = row.PositionIds[t];
                    segments[offset + t] = e + 1;
                    if (row.Labels[t] != TokenizedExample.IgnoreIndex)
                        labelCount++;
                }
                cu.Add(cu[^1] + exampleLength);
                maxExample = Math.Max(maxExample, exampleLength);
            }
            tokens += row.Length;
        }
        return new Batch(size, length, ids, labels, positions, segments, cu.ToArray(), maxExample, tokens, labelCount);
    }
}
