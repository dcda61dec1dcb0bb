namespace SharpTune.Data;

/// <summary>
/// The tokenizer as the data pipeline needs it. <paramref name="Encode"/> turns text into ids without adding
/// special tokens (special-token text inside the string, e.g. from a chat template, may map to special ids) and
/// must be safe to call from several threads.
/// </summary>
/// <param name="Identity">Identifies the tokenizer in cache keys, e.g. <see cref="TokenCache.HashFile"/> of tokenizer.json.</param>
public sealed record TokenizerSpec(Func<string, int[]> Encode, int EosId, string Identity)
{
    /// <summary>Prepended to every example when set (and the text does not already start with it).</summary>
    public int? BosId { get; init; }
}

/// <summary>Which tokens the loss is taken on.</summary>
public enum LossOn
{
    /// <summary>The response (assistant) tokens and the EOS; prompt tokens get label -100.</summary>
    Response,
    /// <summary>Every token except the BOS.</summary>
    All,
}

public sealed record TokenizeOptions(int MaxLength)
{
    public LossOn LossOn { get; init; } = LossOn.Response;

    /// <summary>Threads for tokenizing; null uses every core.</summary>
    public int? Parallelism { get; init; }
}

/// <summary>
/// One tokenized example. <see cref="Labels"/> are aligned with <see cref="InputIds"/> (the Hugging Face
/// convention): Labels[t] is the token expected at position t, or -100 where no loss is taken, so the loss
/// compares the logits at position t-1 with Labels[t]. Labels[0] is always -100.
/// </summary>
public sealed record TokenizedExample(int[] InputIds, int[] Labels)
{
    public const int IgnoreIndex = -100;

    public int Length => InputIds.Length;

    /// <summary>Positions that take part in the loss.</summary>
    public int LabelCount => Labels.Count(l => l != IgnoreIndex);
}

/// <summary>Counts from tokenizing a dataset.</summary>
/// <param name="Examples">Examples kept.</param>
/// <param name="Truncated">Kept examples cut to the maximum length (their tail, and so possibly the EOS, is lost).</param>
/// <param name="Dropped">Examples left out because no trained token was left within the maximum length.</param>
public sealed record TokenizationReport(int Examples, int Truncated, int Dropped, long Tokens, long LabelTokens)
{
    /// <summary>Rows skipped as bad while reading the source (under <see cref="BadRowPolicy.Skip"/>).</summary>
    public int BadRows { get; init; }

    public static TokenizationReport Empty { get; } = new(0, 0, 0, 0, 0);
}

/// <summary>Turns formatted examples into input ids and labels.</summary>
public static class ExampleTokenizer
{
    /// <summary>
    /// Tokenizes one example: BOS (if the tokenizer has one), each text segment encoded on its own (so the
    /// prompt's ids are exactly what the prompt alone encodes to at inference), EOS after the last segment unless
    /// that segment already holds it, then truncation to <see cref="TokenizeOptions.MaxLength"/>.
    /// Returns null when truncation leaves no trained token.
    /// </summary>
    public static TokenizedExample? Tokenize(FormattedExample example, TokenizerSpec tokenizer, TokenizeOptions options, out bool truncated)
    {
        if (options.MaxLength < 2)
            throw new SharpTuneException($"the maximum sequence length must be at least 2 (is {options.MaxLength})");
        var ids = new List<int>();
        var labels = new List<int>();
        bool lastHasEos = false;
        foreach (var segment in example.Segments)
        {
            int[] encoded = tokenizer.Encode(segment.Text);
            lastHasEos = Array.IndexOf(encoded, tokenizer.EosId) >= 0;
            bool trained = segment.Trained || options.LossOn == LossOn.All;
            foreach (int id in encoded)
            {
                ids.Add(id);
                labels.Add(trained ? id : TokenizedExample.IgnoreIndex);
            }
        }
        if (tokenizer.BosId is int bos && (ids.Count == 0 || ids[0] != bos))
        {
            ids.Insert(0, bos);
            labels.Insert(0, TokenizedExample.IgnoreIndex);
        }
        if (!lastHasEos) // a chat template may already end the turn with the EOS (and a newline after it)
        {
            ids.Add(tokenizer.EosId);
            labels.Add(example.Segments.Count > 0 && (example.Segments[^1].Trained || options.LossOn == LossOn.All)
                ? tokenizer.EosId
                : TokenizedExample.IgnoreIndex);
        }
        labels[0] = TokenizedExample.IgnoreIndex; // nothing predicts the first token

        truncated = ids.Count > options.MaxLength;
        int length = Math.Min(ids.Count, options.MaxLength);
        var result = new TokenizedExample(ids.GetRange(0, length).ToArray(), labels.GetRange(0, length).ToArray());
        return result.Labels.Any(l => l != TokenizedExample.IgnoreIndex) ? result : null;
    }

    /// <summary>Tokenizes all examples in parallel; the output order is the input order whatever the thread count.</summary>
    public static (List<TokenizedExample> Examples, TokenizationReport Report) TokenizeAll(
        IReadOnlyList<FormattedExample> examples, TokenizerSpec tokenizer, TokenizeOptions options)
    {
        var results = new TokenizedExample?[examples.Count];
        var wasTruncated = new bool[examples.Count];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.Parallelism ?? Environment.ProcessorCount };
        Parallel.For(0, examples.Count, parallel, i =>
        {
            results[i] = Tokenize(examples[i], tokenizer, options, out bool truncated);
            wasTruncated[i] = truncated;
        });

        var kept = new List<TokenizedExample>(examples.Count);
        int truncatedCount = 0;
        long tokens = 0, labelTokens = 0;
        for (int i = 0; i < results.Length; i++)
        {
            if (results[i] is not { } example)
                continue;
            kept.Add(example);
            if (wasTruncated[i])
                truncatedCount++;
            tokens += example.Length;
            labelTokens += example.LabelCount;
        }
        return (kept, new TokenizationReport(kept.Count, truncatedCount, examples.Count - kept.Count, tokens, labelTokens));
    }
}
