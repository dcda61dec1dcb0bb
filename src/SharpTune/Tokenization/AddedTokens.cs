using System.Buffers;

namespace SharpTune.Tokenization;

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
