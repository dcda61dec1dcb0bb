namespace SharpTune.Generation;

/// <summary>Splits streamed text of a reasoning model into its &lt;think&gt; reasoning and its answer, as it
/// arrives. Tags split across pieces are held back until complete.</summary>
public sealed class ReasoningSplitter(bool startsInReasoning)
{
    public const string Open = "<think>", Close = "</think>";
    bool _inReasoning = startsInReasoning;
    string _pending = "";

    public readonly record struct Segment(bool IsReasoning, string Text);

    /// <summary>True when the prompt already opened the reasoning block (R1's newer template ends with &lt;think&gt;\n).</summary>
    public static bool PromptOpensReasoning(string renderedPrompt) => renderedPrompt.TrimEnd().EndsWith(Open, StringComparison.Ordinal);

    /// <summary>A whole generation split at once: the reasoning (null when there was none) and the answer.</summary>
    public static (string? Reasoning, string Answer) Split(string text, bool startsInReasoning)
    {
        var splitter = new ReasoningSplitter(startsInReasoning);
        var segments = splitter.Push(text).ToList();
        if (splitter.Flush() is { } rest) segments.Add(rest);
        var reasoning = segments.Where(s => s.IsReasoning).ToList();
        return (reasoning.Count == 0 && !startsInReasoning ? null : string.Concat(reasoning.Select(s => s.Text)).Trim(),
            string.Concat(segments.Where(s => !s.IsReasoning).Select(s => s.Text)).Trim());
    }

    public IEnumerable<Segment> Push(string text)
    {
        string s = _pending + text;
        _pending = "";
        var segments = new List<Segment>();
        while (s.Length > 0)
        {
            string tag = _inReasoning ? Close : Open;
            int at = s.IndexOf(tag, StringComparison.Ordinal);
            if (at >= 0)
            {
                if (at > 0) segments.Add(new(_inReasoning, s[..at]));
                _inReasoning = !_inReasoning;
                s = s[(at + tag.Length)..];
                continue;
            }
            int hold = PartialTagSuffix(s, tag);
            if (s.Length > hold) segments.Add(new(_inReasoning, s[..^hold]));
            _pending = s[^hold..];
            break;
        }
        return segments;
    }

    /// <summary>Whatever was held back, at the end of the stream.</summary>
    public Segment? Flush()
    {
        if (_pending.Length == 0) return null;
        var segment = new Segment(_inReasoning, _pending);
        _pending = "";
        return segment;
    }

    static int PartialTagSuffix(string s, string tag)
    {
        for (int n = Math.Min(tag.Length - 1, s.Length); n > 0; n--)
            if (s.EndsWith(tag[..n], StringComparison.Ordinal)) return n;
        return 0;
    }
}
