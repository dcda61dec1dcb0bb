namespace SharpTune.Data;

/// <summary>One dataset of a mixture and its share (weights are normalised over the parts).</summary>
public sealed record MixPart<T>(IReadOnlyList<T> Items, double Weight);

/// <summary>Mixes datasets by ratio, e.g. 0.8 domain + 0.2 general, deterministically from a seed.</summary>
public static class DataMixer
{
    /// <summary>
    /// A shuffled mixture in which part i has round(total × share i) items (largest remainders get the rounding).
    /// The default total is the largest mixture that repeats no item; a larger total repeats items of the parts
    /// that run short (each pass over a part in a fresh order).
    /// </summary>
    public static List<T> Mix<T>(IReadOnlyList<MixPart<T>> parts, ulong seed, int? total = null)
    {
        int[] counts = PartCounts(parts, total);
        var mixed = new List<T>(counts.Sum());
        for (int i = 0; i < parts.Count; i++)
        {
            var items = parts[i].Items;
            for (int pass = 0, taken = 0; taken < counts[i]; pass++)
            {
                int[] order = SeededRandom.For(seed, $"mix-part-{i}", pass).Permutation(items.Count);
                for (int k = 0; k < order.Length && taken < counts[i]; k++, taken++)
                    mixed.Add(items[order[k]]);
            }
        }
        SeededRandom.For(seed, "mix").Shuffle(mixed);
        return mixed;
    }

    /// <summary>How many items of each part <see cref="Mix"/> takes.</summary>
    public static int[] PartCounts<T>(IReadOnlyList<MixPart<T>> parts, int? total = null)
    {
        if (parts.Count == 0)
            throw new SharpTuneException("nothing to mix: no datasets");
        foreach (var part in parts)
        {
            if (!(part.Weight > 0) || double.IsInfinity(part.Weight))
                throw new SharpTuneException($"mixing weight {part.Weight} is not a positive number");
            if (part.Items.Count == 0)
                throw new SharpTuneException("cannot mix a dataset that has no examples");
        }
        double weightSum = parts.Sum(p => p.Weight);
        double[] shares = parts.Select(p => p.Weight / weightSum).ToArray();
        int size = total ?? (int)Math.Floor(parts.Select((p, i) => p.Items.Count / shares[i]).Min() + 1e-9);
        if (size < 0)
            throw new SharpTuneException($"the mixture size must not be negative (is {size})");
        return Apportion(shares, size);
    }

    /// <summary>Integer counts that add up to <paramref name="total"/>, proportional to the shares (largest remainder method).</summary>
    internal static int[] Apportion(double[] shares, int total)
    {
        var counts = new int[shares.Length];
        var remainders = new double[shares.Length];
        for (int i = 0; i < shares.Length; i++)
        {
            double exact = shares[i] * total;
            counts[i] = (int)Math.Floor(exact);
            remainders[i] = exact - counts[i];
        }
        int left = total - counts.Sum();
        foreach (int i in Enumerable.Range(0, shares.Length).OrderByDescending(i => remainders[i]).ThenBy(i => i).Take(left))
            counts[i]++;
        return counts;
    }
}

/// <summary>How many examples to hold out for validation: a fraction or a count (the count wins when both are set).</summary>
public sealed record ValidationSplit(double Fraction = 0, int Count = 0)
{
    public static ValidationSplit None { get; } = new();

    public bool IsNone => Fraction <= 0 && Count <= 0;

    /// <summary>Splits <paramref name="items"/> into training and validation sets; which items are held out
    /// depends only on the seed and the count, and both sets keep the original order.</summary>
    public (List<T> Train, List<T> Validation) Apply<T>(IReadOnlyList<T> items, ulong seed)
    {
        if (Fraction < 0 || Fraction >= 1)
            throw new SharpTuneException($"the validation fraction must be in [0, 1) (is {Fraction})");
        int held = Count > 0 ? Count : (int)Math.Round(items.Count * Fraction, MidpointRounding.AwayFromZero);
        if (held >= items.Count && held > 0)
            throw new SharpTuneException($"cannot hold out {held} validation examples from {items.Count}: none would be left to train on");
        var heldOut = new bool[items.Count];
        foreach (int i in SeededRandom.For(seed, "validation").Permutation(items.Count).Take(held))
            heldOut[i] = true;
        var train = new List<T>(items.Count - held);
        var validation = new List<T>(held);
        for (int i = 0; i < items.Count; i++)
            (heldOut[i] ? validation : train).Add(items[i]);
        return (train, validation);
    }
}
