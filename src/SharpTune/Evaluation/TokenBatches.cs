namespace SharpTune.Evaluation;

/// <summary>
/// Groups rows into batches whose padded size, rows × (longest row + extra tokens per row), stays within a token
/// budget. Longest rows come first, so a budget that is too large fails on the first batch, not after an hour.
/// The budget is what bounds memory: the KV cache and activations grow with batch × length, not with the row count.
/// </summary>
public static class TokenBatches
{
    public static List<int[]> Plan(IReadOnlyList<int> lengths, int extraPerRow, long tokenBudget, int maxBatch)
    {
        if (tokenBudget <= 0) throw new SharpTuneException($"the token budget must be positive, got {tokenBudget}");
        if (maxBatch <= 0) throw new SharpTuneException($"the batch size must be positive, got {maxBatch}");
        var order = Enumerable.Range(0, lengths.Count).OrderByDescending(i => lengths[i]).ThenBy(i => i).ToList();
        var batches = new List<int[]>();
        var current = new List<int>();
        long longest = 0;
        foreach (int i in order)
        {
            long width = Math.Max(longest, lengths[i] + (long)extraPerRow);
            if (current.Count > 0 && (current.Count >= maxBatch || (current.Count + 1) * width > tokenBudget))
            {
                batches.Add(current.ToArray());
                current.Clear();
                width = lengths[i] + (long)extraPerRow;
            }
            current.Add(i);
            longest = width;
        }
        if (current.Count > 0) batches.Add(current.ToArray());
        return batches;
    }
}

/// <summary>Progress of a long evaluation stage: rows done of total and the rate so far.</summary>
public sealed record EvalProgress(string Stage, int Done, int Total, double SamplesPerSecond, double ElapsedSeconds);
