namespace SharpTune.Tokenization;

/// <summary>What the post-processor does to a single sequence: special tokens around it (TemplateProcessing) and,
/// for ByteLevel with trim_offsets, offsets shrunk to exclude the spaces a token starts or ends with.</summary>
internal sealed record PostProcessor(int[] Prefix, int[] Suffix, bool TrimOffsets, bool TrimKeepsPrefixSpace)
{
    public static readonly PostProcessor None = new([], [], false, false);

    public PostProcessor Then(PostProcessor next) => new(
        [.. next.Prefix, .. Prefix], [.. Suffix, .. next.Suffix],
        TrimOffsets || next.TrimOffsets, TrimKeepsPrefixSpace || next.TrimKeepsPrefixSpace);

    /// <summary>Hugging Face's ByteLevel offset trimming: leading and trailing spaces (Ġ) of a token are left out of
    /// its offsets, except the single prefix space of the first token when add_prefix_space is on. As in the Python
    /// API, offsets move by whole characters (code points) of the input.</summary>
    public void Trim(string text, IReadOnlyList<int> ids, List<(int Start, int End)> offsets, Func<int, string?> idToToken)
    {
        for (int i = 0; i < ids.Count; i++)
        {
            string? token = idToToken(ids[i]);
            if (token is null)
            {
                continue;
            }
            int leading = 0;
            while (leading < token.Length && IsSpaceChar(token[leading]))
            {
                leading++;
            }
            int trailing = 0;
            while (trailing < token.Length && IsSpaceChar(token[token.Length - 1 - trailing]))
            {
                trailing++;
            }
            var (start, end) = offsets[i];
            if (leading > 0)
            {
                bool isFirst = i == 0 || start == 0;
                if (isFirst && TrimKeepsPrefixSpace && leading == 1)
                {
                    leading = 0;
                }
                start = Math.Min(Advance(text, start, leading), end);
            }
            if (trailing > 0 && end >= trailing)
            {
                end = Math.Max(Retreat(text, end, trailing), start);
            }
            offsets[i] = (start, end);
        }
    }

    private static int Advance(string text, int index, int codePoints)
    {
        for (int n = 0; n < codePoints && index < text.Length; n++)
        {
            index += char.IsSurrogatePair(text, index) ? 2 : 1;
        }
        return index;
    }

    private static int Retreat(string text, int index, int codePoints)
    {
        for (int n = 0; n < codePoints && index > 0; n++)
        {
            index -= index >= 2 && char.IsSurrogatePair(text, index - 2) ? 2 : 1;
        }
        return index;
    }

    private static bool IsSpaceChar(char c) => c == ByteLevel.ByteToChar[' '] || UnicodeClass.IsSpace(c);
}
