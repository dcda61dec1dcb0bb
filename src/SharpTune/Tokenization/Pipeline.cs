using System.Buffers;
using System.Globalization;
using System.Text;

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

/// <summary>An added token of tokenizer.json's "added_tokens" (flags as Hugging Face defines them).</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip,
    bool Normalized);

/// <summary>Finds added tokens in text, leftmost first and longest at a position, with single_word, lstrip and
/// rstrip handled as Hugging Face's AddedVocabulary does.</summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;
    private readonly SearchValues<char> _firstChars;

    /// <param name="tokens">Each token with the text to look for (its content, normalized if the token is).</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
        _firstChars = SearchValues.Create([.. _byFirstChar.Keys]);
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    public void Split(Piece piece, List<Piece> output)
    {
        var sentence = piece.Span;
        int searchFrom = 0;
        int emittedUpTo = 0;
        while (searchFrom < sentence.Length)
        {
            int found = sentence[searchFrom..].IndexOfAny(_firstChars);
            if (found < 0)
            {
                break;
            }
            int start = searchFrom + found;
            var match = LongestAt(sentence, start);
            if (match is null)
            {
                searchFrom = start + 1;
                continue;
            }
            var token = match.Value.Token;
            int stop = start + match.Value.Pattern.Length;
            searchFrom = stop; // the search resumes after the raw match, whatever the flags do below
            if (token.SingleWord)
            {
                bool wordBefore = start > 0 && UnicodeClass.IsWordChar(LastCodePoint(sentence[..start]));
                bool wordAfter = stop < sentence.Length
                    && UnicodeClass.IsWordChar(UnicodeClass.CodePointAt(sentence, stop, out _));
                if (wordBefore || wordAfter)
                {
                    continue;
                }
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && UnicodeClass.IsSpace(sentence[newStart - 1]))
                {
                    newStart--;
                }
                start = Math.Max(newStart, emittedUpTo);
            }
            if (token.RStrip)
            {
                while (stop < sentence.Length && UnicodeClass.IsSpace(sentence[stop]))
                {
                    stop++;
                }
            }
            if (emittedUpTo < start)
            {
                output.Add(piece with { Start = piece.Start + emittedUpTo, End = piece.Start + start });
            }
            output.Add(piece with { Start = piece.Start + start, End = piece.Start + stop, TokenId = token.Id });
            emittedUpTo = stop;
        }
        if (emittedUpTo < sentence.Length)
        {
            output.Add(piece with { Start = piece.Start + emittedUpTo });
        }
    }

    private (string Pattern, AddedToken Token)? LongestAt(ReadOnlySpan<char> sentence, int start)
    {
        foreach (var candidate in _byFirstChar[sentence[start]])
        {
            if (sentence[start..].StartsWith(candidate.Pattern, StringComparison.Ordinal))
            {
                return candidate;
            }
        }
        return null;
    }

    private static int LastCodePoint(ReadOnlySpan<char> text)
    {
        int last = text.Length - 1;
        return last > 0 && char.IsLowSurrogate(text[last]) && char.IsHighSurrogate(text[last - 1])
            ? char.ConvertToUtf32(text[last - 1], text[last])
            : text[last];
    }
}

/// <summary>Unicode NFC normalization that remembers where each output unit came from.</summary>
internal static class NfcNormalizer
{
    /// <summary>The piece itself when it is already NFC, else a piece over a new normalized view.</summary>
    public static Piece Normalize(Piece piece)
    {
        var text = piece.Span;
        if (IsTriviallyNormalized(text))
        {
            return piece;
        }
        // Compose each base character with the marks that follow it separately; only clusters that change get new
        // text, aligned the way Hugging Face's NormalizedString does (see ChangesOf).
        StringBuilder? output = null;
        List<int>? starts = null;
        List<int>? ends = null;
        int clusterStart = 0;
        while (clusterStart < text.Length)
        {
            UnicodeClass.CodePointAt(text, clusterStart, out int clusterEnd);
            clusterEnd += clusterStart;
            while (clusterEnd < text.Length && ContinuesCluster(text, clusterEnd, out int length))
            {
                clusterEnd += length;
            }
            var cluster = text[clusterStart..clusterEnd];
            string? composed = IsTriviallyNormalized(cluster) ? null : ComposeIfChanged(cluster);
            if (composed is null)
            {
                if (output is not null)
                {
                    output.Append(cluster);
                    AppendIdentity(piece, clusterStart, clusterEnd, starts!, ends!);
                }
            }
            else
            {
                if (output is null)
                {
                    output = new StringBuilder(text.Length + 8).Append(text[..clusterStart]);
                    starts = new List<int>(text.Length + 8);
                    ends = new List<int>(text.Length + 8);
                    AppendIdentity(piece, 0, clusterStart, starts, ends);
                }
                AppendComposed(piece, clusterStart, cluster, composed, output, starts!, ends!);
            }
            clusterStart = clusterEnd;
        }
        if (output is null)
        {
            return piece;
        }
        var view = new TextView(output.ToString(), [.. starts!], [.. ends!]);
        return new Piece(view, 0, view.Text.Length);
    }

    private static string? ComposeIfChanged(ReadOnlySpan<char> cluster)
    {
        string original = cluster.ToString();
        string composed = ComposeOrKeep(original);
        return composed == original ? null : composed;
    }

    private static void AppendIdentity(Piece piece, int from, int to, List<int> starts, List<int> ends)
    {
        for (int i = from; i < to; i++)
        {
            starts.Add(piece.View.OriginalStart(piece.Start + i));
            ends.Add(piece.View.OriginalEnd(piece.Start + i));
        }
    }

    private static void AppendComposed(Piece piece, int clusterStart, ReadOnlySpan<char> cluster, string composed,
        StringBuilder output, List<int> starts, List<int> ends)
    {
        var originalChars = new List<(int Start, int End)>();
        var originalCodePoints = new List<int>();
        for (int i = 0; i < cluster.Length;)
        {
            int cp = UnicodeClass.CodePointAt(cluster, i, out int length);
            originalChars.Add((piece.View.OriginalStart(piece.Start + clusterStart + i),
                piece.View.OriginalEnd(piece.Start + clusterStart + i + length - 1)));
            originalCodePoints.Add(cp);
            i += length;
        }
        var changes = ChangesOf(originalCodePoints, cluster.ToString(), composed);
        int position = 0;
        int outputIndex = 0;
        for (int i = 0; i < composed.Length; i++)
        {
            int change = changes[outputIndex];
            int source = change > 0 ? Math.Max(position - 1, 0) : Math.Min(position, originalChars.Count - 1);
            starts.Add(originalChars[source].Start);
            ends.Add(originalChars[source].End);
            output.Append(composed[i]);
            if (!char.IsHighSurrogate(composed[i]))
            {
                position += change > 0 ? 0 : 1 - change;
                outputIndex++;
            }
        }
    }

    /// <summary>Per BMP code unit: 0 not yet known, 1 its NFD is itself, 2 it decomposes.</summary>
    private static readonly byte[] BmpSelfDecomposition = new byte[0x10000];

    private static bool DecomposesToItself(int cp)
    {
        if (cp >= 0x10000)
        {
            string text = char.ConvertFromUtf32(cp);
            return DecomposeOrKeep(text) == text;
        }
        byte known = BmpSelfDecomposition[cp];
        if (known == 0)
        {
            string text = ((char)cp).ToString();
            known = DecomposeOrKeep(text) == text ? (byte)1 : (byte)2;
            BmpSelfDecomposition[cp] = known;
        }
        return known == 1;
    }

    /// <summary>Per BMP code unit: 0 not yet known, 1 stable, 2 not stable. Stable units are NFC on their own and
    /// never compose with what precedes them (not marks, not Hangul medial/final jamo); a text made only of these,
    /// and of astral letters, is NFC. Filled on first sight (racing writers store the same value).</summary>
    private static readonly byte[] BmpStability = new byte[0x10000];

    private static bool IsStable(char c)
    {
        byte known = BmpStability[c];
        if (known == 0)
        {
            bool stable = !char.IsSurrogate(c) && !(c is >= '\u1160' and <= '\u11FF')
                && (UnicodeClass.Of(c) & UnicodeClass.Flags.Mark) == 0
                && ComposeOrKeep(c.ToString()) == c.ToString();
            known = stable ? (byte)1 : (byte)2;
            BmpStability[c] = known;
        }
        return known == 1;
    }

    private static bool IsTriviallyNormalized(ReadOnlySpan<char> text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c < '\u0300' || IsStable(c))
            {
                continue;
            }
            // Astral characters: only marks and the composition-excluded musical symbols and CJK compatibility
            // ideographs change under NFC.
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(c, text[i + 1]);
                if ((UnicodeClass.Of(cp) & UnicodeClass.Flags.Mark) == 0
                    && cp is not ((>= 0x1D15E and <= 0x1D1C0) or (>= 0x2F800 and <= 0x2FA1F)))
                {
                    i++;
                    continue;
                }
            }
            return false;
        }
        return true;
    }

    /// <summary>NFC, or the text unchanged where .NET refuses it (lone surrogates, U+FFFE), which NFC would keep.</summary>
    internal static string ComposeOrKeep(string text)
    {
        try
        {
            return text.Normalize(NormalizationForm.FormC);
        }
        catch (ArgumentException)
        {
            return text;
        }
    }

    /// <summary>
    /// For each output code point, its "change" as the unicode-normalization-alignments crate reports it: 0 for a
    /// character standing for one input character, +1 for one inserted by a decomposition, -k for a composition that
    /// absorbed k more. Hugging Face then aligns positionally: a character with change c takes the alignment of the
    /// next input character and skips 1 - c of them; inserted characters share the previous one's alignment.
    /// Derived here from .NET's NFD/NFC results: decompose each input character (first part 0, the rest +1), follow
    /// canonical reordering by matching code points, and charge each composition with what it absorbed.
    /// </summary>
    private static int[] ChangesOf(List<int> originalCodePoints, string cluster, string composed)
    {
        // Common cases without decomposing: when no input character decomposes, a single output character absorbed
        // all the others, and as many output characters as inputs means nothing composed (only reordering).
        if (originalCodePoints.TrueForAll(DecomposesToItself))
        {
            int outputCount = CodePoints(composed).Count;
            if (outputCount == 1)
            {
                return [1 - originalCodePoints.Count];
            }
            if (outputCount == originalCodePoints.Count)
            {
                return new int[outputCount];
            }
        }
        var decomposedChanges = new List<(int CodePoint, int Change)>();
        foreach (int cp in originalCodePoints)
        {
            var parts = CodePoints(DecomposeOrKeep(cp < 0x10000 ? ((char)cp).ToString() : char.ConvertFromUtf32(cp)));
            for (int i = 0; i < parts.Count; i++)
            {
                decomposedChanges.Add((parts[i], i == 0 ? 0 : 1));
            }
        }
        // Canonical order, each element carrying the change of the decomposition part it is.
        var reordered = CodePoints(DecomposeOrKeep(cluster));
        var taken = new bool[decomposedChanges.Count];
        var reorderedChanges = new int[reordered.Count];
        for (int r = 0; r < reordered.Count; r++)
        {
            int match = decomposedChanges.FindIndex(e => e.CodePoint == reordered[r]);
            while (match >= 0 && taken[match])
            {
                match = decomposedChanges.FindIndex(match + 1, e => e.CodePoint == reordered[r]);
            }
            if (match >= 0)
            {
                taken[match] = true;
                reorderedChanges[r] = decomposedChanges[match].Change;
            }
        }
        var output = CodePoints(composed);
        var used = new bool[reordered.Count];
        var changes = new int[output.Count];
        for (int k = 0; k < output.Count; k++)
        {
            int p = Array.IndexOf(used, false);
            if (p < 0)
            {
                break;
            }
            used[p] = true;
            changes[k] = reorderedChanges[p];
            if (reordered[p] == output[k])
            {
                continue;
            }
            // A composition: it absorbed the later elements that do not reappear, in order, in the rest of the output.
            var kept = new bool[reordered.Count];
            int search = p + 1;
            for (int rest = k + 1; rest < output.Count; rest++)
            {
                for (int r = search; r < reordered.Count; r++)
                {
                    if (!used[r] && !kept[r] && reordered[r] == output[rest])
                    {
                        kept[r] = true;
                        search = r + 1;
                        break;
                    }
                }
            }
            for (int r = p + 1; r < reordered.Count; r++)
            {
                if (!used[r] && !kept[r])
                {
                    used[r] = true;
                    changes[k] += reorderedChanges[r] - 1;
                }
            }
        }
        return changes;
    }

    private static List<int> CodePoints(string text)
    {
        var result = new List<int>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            result.Add(UnicodeClass.CodePointAt(text, i, out int length));
            i += length;
        }
        return result;
    }

    private static string DecomposeOrKeep(string text)
    {
        try
        {
            return text.Normalize(NormalizationForm.FormD);
        }
        catch (ArgumentException)
        {
            return text;
        }
    }

    private static bool ContinuesCluster(ReadOnlySpan<char> text, int index, out int length)
    {
        int cp = UnicodeClass.CodePointAt(text, index, out length);
        // Marks, and Hangul medial vowels and final consonants, compose with what precedes them.
        return (UnicodeClass.Of(cp) & UnicodeClass.Flags.Mark) != 0 || cp is >= 0x1160 and <= 0x11FF;
    }
}

internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>One step of pre-tokenization: splits a piece into smaller pieces.</summary>
internal interface IPreTokenizer
{
    void Split(Piece piece, List<Piece> output);
}

internal sealed class SplitPreTokenizer(ISplitPattern pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    [ThreadStatic] private static List<(int Start, int End)>? t_matches;

    public void Split(Piece piece, List<Piece> output)
    {
        if (piece.End == piece.Start)
        {
            return;
        }
        var matches = t_matches ??= [];
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
