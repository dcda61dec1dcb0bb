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
        var open = new SortedSet<(int Room, int Bin)>(); // sequences with room left, least room first
        foreach (int i in order)
        {
            var example = examples[i];
            if (example.Length > maxLength)
                throw new ArgumentException($"example {i} has {example.Length} tokens, more than the packing length {maxLength}; truncate first");
            if (example.Length == 0)
                continue;
            // The open sequence with the least room that still fits (an empty view's Min is (0, 0)).
            var best = open.GetViewBetween((example.Length, int.MinValue), (int.MaxValue, int.MaxValue)).Min;
            int bin;
            if (best.Room >= example.Length)
            {
                bin = best.Bin;
                open.Remove(best);
            }
            else
            {
                bin = bins.Count;
                bins.Add([]);
                remaining.Add(maxLength);
            }
            bins[bin].Add(example);
            remaining[bin] -= example.Length;
            if (remaining[bin] > 0)
                open.Add((remaining[bin], bin));
        }
        return bins.Select(Concatenate).ToList();
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
