namespace SharpTune.Tokenization;

/// <summary>Text at some stage of the pipeline plus, when it differs from the input (normalized, or given a
/// prefix space), the input range each UTF-16 unit came from.</summary>
internal sealed class TextView(string text, int[]? originalStarts = null, int[]? originalEnds = null)
{
    public string Text { get; } = text;

    /// <summary>The input range that units [start, end) of this text came from.</summary>
    public (int Start, int End) ToOriginal(int start, int end) => originalStarts is null
        ? (start, end)
        : end > start ? (originalStarts[start], originalEnds![end - 1]) : (originalStarts[start], originalStarts[start]);

    public int OriginalStart(int index) => originalStarts is null ? index : originalStarts[index];
    public int OriginalEnd(int index) => originalEnds is null ? index + 1 : originalEnds[index];
}

/// <summary>A slice [Start, End) of a <see cref="TextView"/>; TokenId is set for added tokens found in the text.</summary>
internal readonly record struct Piece(TextView View, int Start, int End, int TokenId = -1)
{
    public ReadOnlySpan<char> Span => View.Text.AsSpan(Start, End - Start);
    public bool IsToken => TokenId >= 0;
}

internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>One step of pre-tokenization: splits a piece into smaller pieces.</summary>
internal interface IPreTokenizer
{
    void Split(Piece piece, List<Piece> output);
}

internal sealed class SplitPreTokenizer(ISplitPattern pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    [ThreadStatic] private static List<(int Start, int End)>? _matches;

    public void Split(Piece piece, List<Piece> output)
    {
        if (piece.End == piece.Start)
        {
            return;
        }
        var matches = _matches ??= [];
        matches.Clear();
        pattern.FindMatches(piece.Span, matches);
        if (behavior == SplitBehavior.Isolated)
        {
            // Matches and the gaps between them, each on its own (the common case, without the general fold).
            int previous = 0;
            foreach (var (start, end) in matches)
            {
                if (start > previous)
                {
                    output.Add(piece with { Start = piece.Start + previous, End = piece.Start + start });
                }
                output.Add(piece with { Start = piece.Start + start, End = piece.Start + end });
                previous = end;
            }
            if (previous < piece.End - piece.Start)
            {
                output.Add(piece with { Start = piece.Start + previous });
            }
            return;
        }
        foreach (var (start, end) in Apply(Cover(matches, piece.End - piece.Start)))
        {
            output.Add(piece with { Start = piece.Start + start, End = piece.Start + end });
        }
    }

    /// <summary>The matches and the gaps between them, in order, flagged as match or not (inverted on request).</summary>
    private List<(int Start, int End, bool IsMatch)> Cover(List<(int Start, int End)> matches, int length)
    {
        var cover = new List<(int, int, bool)>(matches.Count * 2 + 1);
        int previous = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previous)
            {
                cover.Add((previous, start, invert));
            }
            cover.Add((start, end, !invert));
            previous = end;
        }
        if (previous < length)
        {
            cover.Add((previous, length, invert));
        }
        return cover;
    }

    private IEnumerable<(int Start, int End)> Apply(List<(int Start, int End, bool IsMatch)> cover)
    {
        switch (behavior)
        {
            case SplitBehavior.Removed:
                return cover.Where(c => !c.IsMatch).Select(c => (c.Start, c.End));
            case SplitBehavior.Isolated:
                return cover.Select(c => (c.Start, c.End));
            case SplitBehavior.Contiguous:
                return Fold(cover, (current, previous) => current.IsMatch == previous, extendEnd: true);
            case SplitBehavior.MergedWithPrevious:
                return Fold(cover, (current, previous) => current.IsMatch && !previous, extendEnd: true);
            default:
                var reversed = new List<(int Start, int End, bool IsMatch)>(cover);
                reversed.Reverse();
                var merged = Fold(reversed, (current, previous) => current.IsMatch && !previous, extendEnd: false);
                merged.Reverse();
                return merged;
        }
    }

    /// <summary>Hugging Face's merge fold: a piece for which <paramref name="joins"/> holds (given whether the piece
    /// before it in iteration order was a match) is merged into the last emitted piece.</summary>
    private static List<(int Start, int End)> Fold(List<(int Start, int End, bool IsMatch)> cover,
        Func<(int Start, int End, bool IsMatch), bool, bool> joins, bool extendEnd)
    {
        var result = new List<(int Start, int End)>(cover.Count);
        bool previousMatch = false;
        foreach (var current in cover)
        {
            if (joins(current, previousMatch) && result.Count > 0)
            {
                var last = result[^1];
                result[^1] = extendEnd ? (last.Start, current.End) : (current.Start, last.End);
            }
            else
            {
                result.Add((current.Start, current.End));
            }
            previousMatch = current.IsMatch;
        }
        return result;
    }
}

/// <summary>Splits out numeric characters (Rust's char::is_numeric), one by one or in runs.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : IPreTokenizer
{
    public void Split(Piece piece, List<Piece> output)
    {
        var span = piece.Span;
        int runStart = 0;
        bool runIsDigits = false;
        for (int i = 0; i < span.Length;)
        {
            bool digit = UnicodeClass.IsNumber(UnicodeClass.CodePointAt(span, i, out int length));
            bool boundary = i > runStart && (digit != runIsDigits || (digit && individualDigits));
            if (boundary)
            {
                output.Add(piece with { Start = piece.Start + runStart, End = piece.Start + i });
                runStart = i;
            }
            runIsDigits = digit;
            i += length;
        }
        if (span.Length > runStart)
        {
            output.Add(piece with { Start = piece.Start + runStart });
        }
    }
}

/// <summary>The ByteLevel pre-tokenizer's splitting part (the byte mapping itself happens in the model):
/// an optional prefix space, then optionally GPT-2's split regex.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, ISplitPattern? gpt2Pattern) : IPreTokenizer
{
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly SplitPreTokenizer? _split =
        gpt2Pattern is null ? null : new SplitPreTokenizer(gpt2Pattern, SplitBehavior.Isolated, invert: false);

    public void Split(Piece piece, List<Piece> output)
    {
        if (addPrefixSpace && piece.End > piece.Start && piece.View.Text[piece.Start] != ' ')
        {
            piece = WithPrefixSpace(piece);
        }
        if (_split is null)
        {
            output.Add(piece);
        }
        else
        {
            _split.Split(piece, output);
        }
    }

    /// <summary>A new view " " + piece; the space maps to the piece's first input unit, as Hugging Face aligns it.</summary>
    private static Piece WithPrefixSpace(Piece piece)
    {
        int length = piece.End - piece.Start;
        var starts = new int[length + 1];
        var ends = new int[length + 1];
        for (int i = 0; i < length; i++)
        {
            starts[i + 1] = piece.View.OriginalStart(piece.Start + i);
            ends[i + 1] = piece.View.OriginalEnd(piece.Start + i);
        }
        starts[0] = starts[1];
        ends[0] = ends[1];
        var view = new TextView(" " + piece.Span.ToString(), starts, ends);
        return new Piece(view, 0, length + 1);
    }
}

/// <summary>Runs pre-tokenizers in order, each over every piece the previous one produced.</summary>
internal sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> steps) : IPreTokenizer
{
    public void Split(Piece piece, List<Piece> output)
    {
        var current = new List<Piece> { piece };
        var next = new List<Piece>();
        foreach (var step in steps)
        {
            next.Clear();
            foreach (var p in current)
            {
                step.Split(p, next);
            }
            (current, next) = (next, current);
        }
        output.AddRange(current);
    }
}
