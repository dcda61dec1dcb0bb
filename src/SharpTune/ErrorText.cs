using System.Globalization;
using System.Text;

namespace SharpTune;

/// <summary>How user-supplied text appears in error messages: one line, control characters escaped, cut short.</summary>
public static class ErrorText
{
    /// <summary>Names from the input (columns, keys) as a comma-separated list: each escaped and cut short, at most
    /// <paramref name="max"/> of them.</summary>
    public static string List(IEnumerable<string> names, int max = 12)
    {
        var all = names.ToList();
        var shown = all.Take(max).Select(n => n.Length <= 40 && n.All(c => !char.IsControl(c) && !char.IsSurrogate(c) && c is not ',' and not '"') && n.Trim() == n && n.Length > 0
            ? n : SharpTuneException.Quote(n, 40));
        return string.Join(", ", shown) + (all.Count > max ? $" and {all.Count - max} more" : "");
    }

    /// <summary>A whole message on one line: line breaks and control characters escaped (quotes kept as they are),
    /// cut at <paramref name="max"/> characters.</summary>
    public static string Message(string text, int max = 1000) => OneLine(text, max, escapeQuotes: false);

    /// <summary>Escapes control characters, invalid surrogates and line breaks; keeps the first <paramref name="max"/>
    /// characters and says how many more there were.</summary>
    public static string OneLine(string text, int max = 80) => OneLine(text, max, escapeQuotes: true);

    static string OneLine(string text, int max, bool escapeQuotes)
    {
        var sb = new StringBuilder(Math.Min(text.Length, max) + 16);
        int i = 0;
        for (; i < text.Length && sb.Length < max; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { sb.Append(c).Append(text[++i]); continue; }
            switch (c)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '"' when escapeQuotes: sb.Append("\\\""); break;
                case '\\' when escapeQuotes: sb.Append("\\\\"); break;
                default:
                    if (char.IsControl(c) || char.IsSurrogate(c) || c is '\u2028' or '\u2029')
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        if (i < text.Length) sb.Append($"… ({text.Length - i} more characters)");
        return sb.ToString();
    }
}
