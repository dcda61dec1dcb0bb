using System.Runtime.CompilerServices;
using System.Text;

namespace SharpTune.Tokenization;

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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
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
