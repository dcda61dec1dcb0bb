using System.Text;

namespace SharpTune.Evaluation;

/// <summary>Python's str.split() / strip() whitespace rules, which the reference metrics rely on: Python counts
/// U+001C..U+001F as whitespace, .NET does not.</summary>
internal static class PyText
{
    public static bool IsSpace(int codePoint) =>
        codePoint is >= 0x1C and <= 0x1F || codePoint <= 0xFFFF && char.IsWhiteSpace((char)codePoint);

    /// <summary>str.split() with no argument: runs of whitespace separate, no empty parts.</summary>
    public static List<string> Split(string s)
    {
        var parts = new List<string>();
        int start = -1;
        for (int i = 0; i < s.Length; i++)
        {
            if (IsSpace(s[i]))
            {
                if (start >= 0) parts.Add(s[start..i]);
                start = -1;
            }
            else if (start < 0) start = i;
        }
        if (start >= 0) parts.Add(s[start..]);
        return parts;
    }

    public static string RStrip(string s)
    {
        int end = s.Length;
        while (end > 0 && IsSpace(s[end - 1])) end--;
        return s[..end];
    }

    public static string Strip(string s)
    {
        int start = 0;
        while (start < s.Length && IsSpace(s[start])) start++;
        return RStrip(s[start..]);
    }

    /// <summary>The string's code points (Python's characters): a surrogate pair is one.</summary>
    public static string[] CodePoints(string s)
    {
        var points = new List<string>(s.Length);
        foreach (var rune in s.EnumerateRunes()) points.Add(rune.ToString());
        return points.ToArray();
    }

    /// <summary>str.lower() for the characters that matter to an ASCII-only tokenizer afterwards.</summary>
    public static string Lower(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var rune in s.EnumerateRunes())
            // U+0130 is the one letter whose full lowercase (Python's) differs from the simple one (.NET's)
            sb.Append(rune.Value == 0x130 ? "i\u0307" : Rune.ToLowerInvariant(rune).ToString());
        return sb.ToString();
    }
}
