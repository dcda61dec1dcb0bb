using System.Runtime.CompilerServices;

namespace SharpTune.Tokenization;

/// <summary>Finds the matches of a Split pre-tokenizer's pattern, as UTF-16 (start, end) pairs relative to the
/// span, in order and non-overlapping.</summary>
internal interface ISplitPattern
{
    void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches);
}

internal static class SplitPatterns
{
    /// <summary>Qwen2/Qwen3 (one digit per piece) and Llama-3 (up to three digits) use this pattern, differing only
    /// in the digit quantifier.</summary>
    private const string Qwen2Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The pattern that <see cref="BpeTrainer"/> writes into trained tokenizers.</summary>
    public const string TrainerPattern = Qwen2Pattern;

    /// <summary>A hand-written scanner for the well-known patterns, the general code-point regex otherwise.</summary>
    public static ISplitPattern ForRegex(string pattern, string where) => pattern switch
    {
        Qwen2Pattern => new WordPieceScanner(maxDigits: 1),
        Llama3Pattern => new WordPieceScanner(maxDigits: 3),
        _ => new RegexPattern(CodePointRegex.Parse(pattern, where)),
    };

    /// <summary>A general pattern, for cross-checking the scanner in tests.</summary>
    public static ISplitPattern GeneralRegex(string pattern) => new RegexPattern(CodePointRegex.Parse(pattern, "test"));

    public static ISplitPattern ForLiteral(string literal) => new LiteralPattern(literal);

    private sealed class RegexPattern(CodePointRegex regex) : ISplitPattern
    {
        public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches) =>
            regex.FindMatches(text, matches);
    }

    private sealed class LiteralPattern(string literal) : ISplitPattern
    {
        public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
        {
            if (literal.Length == 0)
            {
                return;
            }
            int pos = 0;
            while (pos <= text.Length - literal.Length)
            {
                int found = text[pos..].IndexOf(literal, StringComparison.Ordinal);
                if (found < 0)
                {
                    return;
                }
                matches.Add((pos + found, pos + found + literal.Length));
                pos += found + literal.Length;
            }
        }
    }
}

/// <summary>
/// Exact hand-coded equivalent of the Qwen2 / Llama-3 split regex
/// <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>,
/// working on code points. Every position matches one of the alternatives, so the pieces tile the text.
/// </summary>
internal sealed class WordPieceScanner(int maxDigits) : ISplitPattern
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        int pos = 0;
        while (pos < text.Length)
        {
            int end = MatchAt(text, pos);
            matches.Add((pos, end));
            pos = end;
        }
    }

    private static bool IsOther(UnicodeClass.Flags flags) =>
        (flags & (UnicodeClass.Flags.Letter | UnicodeClass.Flags.Number | UnicodeClass.Flags.Space)) == 0;

    private static bool IsNewline(int cp) => cp is '\r' or '\n';

    /// <summary>The end of the match that starts at <paramref name="i"/>, trying the alternatives in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    private int MatchAt(ReadOnlySpan<char> s, int i)
    {
        int c = UnicodeClass.CodePointAt(s, i, out int len);
        var flags = UnicodeClass.Of(c);

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (c == '\'' && i + 1 < s.Length)
        {
            int contraction = MatchContraction(s, i + 1);
            if (contraction > 0)
            {
                return i + 1 + contraction;
            }
        }

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if ((flags & UnicodeClass.Flags.Letter) != 0)
        {
            return SkipLetters(s, i + len);
        }
        if ((flags & UnicodeClass.Flags.Number) == 0 && !IsNewline(c) && i + len < s.Length
            && UnicodeClass.IsLetter(UnicodeClass.CodePointAt(s, i + len, out _)))
        {
            return SkipLetters(s, i + len);
        }

        // \p{N}{1,K}
        if ((flags & UnicodeClass.Flags.Number) != 0)
        {
            int end = i + len;
            for (int n = 1; n < maxDigits && end < s.Length; n++)
            {
                int next = UnicodeClass.CodePointAt(s, end, out int nextLen);
                if (!UnicodeClass.IsNumber(next))
                {
                    break;
                }
                end += nextLen;
            }
            return end;
        }

        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        int start = c == ' ' ? i + 1 : i;
        if (start < s.Length && IsOther(UnicodeClass.Of(UnicodeClass.CodePointAt(s, start, out _))))
        {
            int end = start;
            while (end < s.Length)
            {
                int next = UnicodeClass.CodePointAt(s, end, out int nextLen);
                if (!IsOther(UnicodeClass.Of(next)))
                {
                    break;
                }
                end += nextLen;
            }
            while (end < s.Length && IsNewline(s[end]))
            {
                end++;
            }
            return end;
        }

        // Here c is white space (all White_Space code points are in the BMP).
        int runEnd = i;
        int lastNewline = -1;
        while (runEnd < s.Length && UnicodeClass.IsSpace(s[runEnd]))
        {
            if (IsNewline(s[runEnd]))
            {
                lastNewline = runEnd;
            }
            runEnd++;
        }
        // \s*[\r\n]+ : the run up to its last line break.
        if (lastNewline >= 0)
        {
            return lastNewline + 1;
        }
        // \s+(?!\S) : the whole run at the end of text, else the run less its last character.
        if (runEnd == s.Length || runEnd - 1 > i)
        {
            return runEnd == s.Length ? runEnd : runEnd - 1;
        }
        // \s+
        return runEnd;
    }

    private static int SkipLetters(ReadOnlySpan<char> s, int pos)
    {
        while (pos < s.Length)
        {
            int cp = UnicodeClass.CodePointAt(s, pos, out int len);
            if (!UnicodeClass.IsLetter(cp))
            {
                break;
            }
            pos += len;
        }
        return pos;
    }

    /// <summary>Length of the contraction suffix after an apostrophe, or 0. Case-insensitive as in Oniguruma, where
    /// U+017F (long s) folds to s.</summary>
    private static int MatchContraction(ReadOnlySpan<char> s, int i)
    {
        static char Lower(char c) => c == '\u017F' ? 's' : c is >= 'A' and <= 'Z' ? (char)(c + 32) : c;
        char a = Lower(s[i]);
        if (a is 's' or 't' or 'm' or 'd')
        {
            return 1;
        }
        if (i + 1 < s.Length)
        {
            char b = Lower(s[i + 1]);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            {
                return 2;
            }
        }
        return 0;
    }
}
