namespace SharpTune.Data;

/// <summary>
/// One training sequence: a single example, or several packed end to end. Position ids restart at 0 for each
/// example, and <see cref="ExampleLengths"/> records the boundaries so that attention can be kept within an
/// example. The first label of every example is -100, so no token is trained to follow the previous example.
/// </summary>
public sealed record PackedSequence(int[] InputIds, int[] Labels, int[] PositionIds, int[] ExampleLengths)
{
    public int Length => InputIds.Length;
}

/// <summary>Puts tokenized examples into training sequences.</summary>
public static class Packer
{
    /// <summary>One sequence per example, in order.</summary>
    public static List<PackedSequence> Single(IReadOnlyList<TokenizedExample> examples) =>
        examples.Select(e => Concatenate([e])).ToList();

    /// <summary>
    /// Packs examples into sequences of at most <paramref name="maxLength"/> tokens by best-fit decreasing: longest
    /// example first, each into the fullest sequence that still has room. Examples are never split. The result is
    /// the same for the same input (ties go to the earlier example and the earlier sequence).
    /// </summary>
    public static List<PackedSequence> Pack(IReadOnlyList<TokenizedExample> examples, int maxLength)
    {
        var order = Enumerable.Range(0, examples.Count)
            .OrderByDescending(i => examples[i].Length).ThenBy(i => i).ToList();
        var bins = new List<List<TokenizedExample>>();
        var remaining = new List<int>();
        var open = new RoomIndex(maxLength); // sequences with room left, by room
        foreach (int i in order)
        {
            var example = examples[i];
            if (example.Length > maxLength)
                throw new ArgumentException($"example {i} has {example.Length} tokens, more than the packing length {maxLength}; truncate first");
            if (example.Length == 0)
                continue;
            int bin = open.TakeBestFit(example.Length);
            if (bin < 0)
            {
                bin = bins.Count;
                bins.Add([]);
                remaining.Add(maxLength);
            }
            bins[bin].Add(example);
            remaining[bin] -= example.Length;
            if (remaining[bin] > 0)
                open.Add(remaining[bin], bin);
        }
        return bins.Select(Concatenate).ToList();
    }

    /// <summary>Open sequences bucketed by their room, with a segment tree over room sizes to find the smallest
    /// room that fits in O(log maxLength). Within a bucket the earliest sequence is taken.</summary>
    private sealed class RoomIndex
    {
        private readonly int _leaves;
        private readonly int[] _counts;
        private readonly Dictionary<int, SortedSet<int>> _bins = [];

        public RoomIndex(int maxLength)
        {
            _leaves = 1;
            while (_leaves <= maxLength)
                _leaves <<= 1;
            _counts = new int[2 * _leaves];
        }

        public void Add(int room, int bin)
        {
            if (!_bins.TryGetValue(room, out var set))
                _bins[room] = set = [];
            set.Add(bin);
            Update(room, +1);
        }

        /// <summary>Removes and returns the sequence with the least room of at least <paramref name="length"/>; -1 if none.</summary>
        public int TakeBestFit(int length)
        {
            int room = FirstAtLeast(1, 0, _leaves - 1, length);
            if (room < 0)
                return -1;
            var set = _bins[room];
            int bin = set.Min;
            set.Remove(bin);
            Update(room, -1);
            return bin;
        }

        private void Update(int room, int delta)
        {
            for (int node = room + _leaves; node > 0; node >>= 1)
                _counts[node] += delta;
        }

        private int FirstAtLeast(int node, int low, int high, int length)
        {
            if (high < length || _counts[node] == 0)
                return -1;
            if (low == high)
                return low;
            int mid = (low + high) / 2;
            int left = FirstAtLeast(2 * node, low, mid, length);
            return left >= 0 ? left : FirstAtLeast(2 * node + 1, mid + 1, high, length);
        }
    }

    /// <summary>The given examples, in order, as one sequence (positions restarting, boundary labels cleared).</summary>
    public static PackedSequence Concatenate(IReadOnlyList<TokenizedExample> examples)
    {
        int total = examples.Sum(e => e.Length);
        var ids = new int[total];
        var labels = new int[total];
        var positions = new int[total];
        int offset = 0;
        foreach (var example in examples)
        {
            example.InputIds.CopyTo(ids, offset);
            example.Labels.CopyTo(labels, offset);
            labels[offset] = TokenizedExample.IgnoreIndex;
            for (int t = 0; t < example.Length; t++)
                positions[offset + t] = t;
            offset += example.Length;
        }
        return new PackedSequence(ids, labels, positions, examples.Select(e => e.Length).ToArray());
    }
}
