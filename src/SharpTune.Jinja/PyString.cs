using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>Python <c>str</c> methods and helpers. Lengths, indexes and slices count code points, as Python does.</summary>
internal static class PyString
{
    /// <summary>Python's <c>str.isspace</c> for one UTF-16 unit (it also counts the separators U+001C..U+001F).</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    public static bool HasSurrogates(string s)
    {
        foreach (var c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The string as a list of one-code-point strings.</summary>
    public static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        if (!HasSurrogates(s))
        {
            foreach (var c in s)
            {
                result.Add(c.ToString());
            }

            return result;
        }

        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }

        return result;
    }

    public static int Length(string s) => HasSurrogates(s) ? CodePoints(s).Count : s.Length;

    /// <summary>Orders strings by code point, as Python does (plain UTF-16 order differs above U+FFFF).</summary>
    public static int Compare(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                return Fixup(a[i]).CompareTo(Fixup(b[i]));
            }
        }

        return a.Length.CompareTo(b.Length);

        static int Fixup(char c) => c >= 0xE000 ? c - 0x800 : c >= 0xD800 ? c + 0x2000 : c;
    }

    public static string Strip(string s, string? chars) => RStrip(LStrip(s, chars), chars);

    public static string LStrip(string s, string? chars)
    {
        var i = 0;
        while (i < s.Length && IsStripped(s[i], chars))
        {
            i++;
        }

        return s[i..];
    }

    public static string RStrip(string s, string? chars)
    {
        var end = s.Length;
        while (end > 0 && IsStripped(s[end - 1], chars))
        {
            end--;
        }

        return s[..end];
    }

    private static bool IsStripped(char c, string? chars) => chars is null ? IsSpace(c) : chars.Contains(c);

    public static List<object?> Split(string s, string? separator, long maxSplit)
    {
        var result = new List<object?>();
        if (separator is null)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (maxSplit >= 0 && result.Count >= maxSplit)
                {
                    result.Add(s[i..]);
                    break;
                }

                var start = i;
                while (i < s.Length && !IsSpace(s[i]))
                {
                    i++;
                }

                result.Add(s[start..i]);
            }

            return result;
        }

        if (separator.Length == 0)
        {
            throw new JinjaRuntimeException("empty separator");
        }

        var from = 0;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            var at = s.IndexOf(separator, from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            result.Add(s[from..at]);
            from = at + separator.Length;
        }

        result.Add(s[from..]);
        return result;
    }

    public static List<object?> RSplit(string s, string? separator, long maxSplit)
    {
        var result = new List<object?>();
        if (separator is null)
        {
            var end = s.Length;
            while (true)
            {
                while (end > 0 && IsSpace(s[end - 1]))
                {
                    end--;
                }

                if (end <= 0)
                {
                    break;
                }

                if (maxSplit >= 0 && result.Count >= maxSplit)
                {
                    result.Add(s[..end]);
                    break;
                }

                var start = end;
                while (start > 0 && !IsSpace(s[start - 1]))
                {
                    start--;
                }

                result.Add(s[start..end]);
                end = start;
            }

            result.Reverse();
            return result;
        }

        if (separator.Length == 0)
        {
            throw new JinjaRuntimeException("empty separator");
        }

        var to = s.Length;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            var at = to - separator.Length < 0 ? -1 : s.LastIndexOf(separator, to - 1, to, StringComparison.Ordinal);
            if (at < 0 || at + separator.Length > to)
            {
                break;
            }

            result.Add(s[(at + separator.Length)..to]);
            to = at;
        }

        result.Add(s[..to]);
        result.Reverse();
        return result;
    }

    /// <summary>Python's <c>str.splitlines</c>: breaks on \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029.</summary>
    public static List<string> SplitLines(string s, bool keepEnds)
    {
        var lines = new List<string>();
        var start = 0;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                var breakLength = c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
                lines.Add(keepEnds ? s[start..(i + breakLength)] : s[start..i]);
                i += breakLength;
                start = i;
            }
            else
            {
                i++;
            }
        }

        if (start < s.Length)
        {
            lines.Add(s[start..]);
        }

        return lines;
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
        {
            count = long.MaxValue;
        }

        var sb = new StringBuilder();
        if (old.Length == 0)
        {
            // Python inserts the replacement before every code point and at the end.
            var points = CodePoints(s);
            var done = 0L;
            foreach (var point in points)
            {
                if (done < count)
                {
                    Py.Append(sb, replacement);
                    done++;
                }

                sb.Append(point);
            }

            if (done < count)
            {
                Py.Append(sb, replacement);
            }

            return sb.ToString();
        }

        var from = 0;
        var replaced = 0L;
        while (replaced < count)
        {
            var at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            Py.Append(sb.Append(s, from, at - from), replacement);
            from = at + old.Length;
            replaced++;
        }

        return sb.Append(s, from, s.Length - from).ToString();
    }

    public static string Upper(string s) => s.ToUpperInvariant().Replace("ß", "SS");

    public static string Lower(string s) => s.ToLowerInvariant();

    /// <summary>Python's <c>str.capitalize</c>: first character upper case, the rest lower case.</summary>
    public static string Capitalize(string s)
    {
        if (s.Length == 0)
        {
            return s;
        }

        var first = CodePoints(s)[0];
        return Upper(first) + Lower(s[first.Length..]);
    }

    /// <summary>Python's <c>str.title</c>: a cased character after an uncased one starts a word.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var point in CodePoints(s))
        {
            var cased = IsCased(point);
            sb.Append(cased ? (previousCased ? Lower(point) : Upper(point)) : point);
            previousCased = cased;
        }

        return sb.ToString();
    }

    private static bool IsCased(string point)
    {
        var category = CharUnicodeInfo.GetUnicodeCategory(point, 0);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;
    }

    public static bool IsLower(string s)
    {
        var anyCased = false;
        foreach (var point in CodePoints(s))
        {
            var category = CharUnicodeInfo.GetUnicodeCategory(point, 0);
            if (category is UnicodeCategory.UppercaseLetter or UnicodeCategory.TitlecaseLetter)
            {
                return false;
            }

            anyCased |= category == UnicodeCategory.LowercaseLetter;
        }

        return anyCased;
    }

    public static bool IsUpper(string s)
    {
        var anyCased = false;
        foreach (var point in CodePoints(s))
        {
            var category = CharUnicodeInfo.GetUnicodeCategory(point, 0);
            if (category is UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter)
            {
                return false;
            }

            anyCased |= category == UnicodeCategory.UppercaseLetter;
        }

        return anyCased;
    }

    /// <summary>Python slicing <c>s[start:stop:step]</c> over code points.</summary>
    public static string Slice(string s, long? start, long? stop, long? step)
    {
        if (!HasSurrogates(s) && (step ?? 1) == 1)
        {
            var (from, to, _) = Py.SliceIndices(s.Length, start, stop, 1);
            return to > from ? s[(int)from..(int)to] : "";
        }

        var points = CodePoints(s);
        var sb = new StringBuilder();
        foreach (var index in Py.SliceRange(points.Count, start, stop, step))
        {
            sb.Append(points[index]);
        }

        return sb.ToString();
    }
}
