using SharpTune.Generation;

namespace SharpTune.Evaluation;

/// <summary>A generation split into its &lt;think&gt; reasoning and its answer. <see cref="Closed"/>: the
/// reasoning block was closed with &lt;/think&gt;.</summary>
public sealed record ReasoningText(string Reasoning, string Answer, bool HasReasoning, bool Closed)
{
    /// <summary>Splits a whole generation. Text before a &lt;/think&gt; with no &lt;think&gt; ahead of it counts as
    /// reasoning (R1's template opens the block in the prompt); an unclosed block is all reasoning, no answer.</summary>
    public static ReasoningText Split(string text)
    {
        int open = text.IndexOf(ReasoningSplitter.Open, StringComparison.Ordinal);
        int close = text.IndexOf(ReasoningSplitter.Close, StringComparison.Ordinal);
        bool startsInside = close >= 0 && (open < 0 || close < open);
        var splitter = new ReasoningSplitter(startsInside);
        var segments = splitter.Push(text).ToList();
        if (splitter.Flush() is { } last) segments.Add(last);
        string reasoning = string.Concat(segments.Where(s => s.IsReasoning).Select(s => s.Text)).Trim();
        string answer = string.Concat(segments.Where(s => !s.IsReasoning).Select(s => s.Text)).Trim();
        return new ReasoningText(reasoning, answer, startsInside || open >= 0, close >= 0);
    }
}

/// <summary>Reasoning statistics of a set of generations: mean reasoning length in words, the share that close
/// &lt;/think&gt;, and the share that never finish (cut by the token limit).</summary>
public sealed record ReasoningStats(double MeanReasoningWords, double ClosedShare, double UnfinishedShare, int Count)
{
    public static ReasoningStats Of(IReadOnlyList<ReasoningText> texts, IReadOnlyList<bool> unfinished) =>
        texts.Count == 0 ? new(0, 0, 0, 0) : new(
            texts.Average(t => (double)PyText.Split(t.Reasoning).Count),
            texts.Count(t => t.Closed) / (double)texts.Count,
            unfinished.Count(u => u) / (double)texts.Count,
            texts.Count);
}
