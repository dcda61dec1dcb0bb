using System.Text;

namespace SharpTune;

/// <summary>A user-facing error: bad input, missing file, unsupported feature. The CLI prints its message
/// on one line without a stack trace.</summary>
public sealed class SharpTuneException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>A user's value for a message: quoted, control characters and lone surrogates escaped, cut to
    /// <paramref name="max"/> characters, so that an error stays one readable line whatever the input held.</summary>
    public static string Quote(string value, int max = 80)
    {
        var s = new StringBuilder("'");
        for (int i = 0; i < value.Length && s.Length <= max; i++)
        {
            char c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])) { s.Append(c).Append(value[++i]); continue; }
            s.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\'' => "\\'",
                _ when char.IsControl(c) || char.IsSurrogate(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        bool cut = s.Length > max;
        if (cut) s.Length = max;
        return s.Append(cut ? "…'" : "'").ToString();
    }

    /// <summary>"; did you mean 'x'?" when one of <paramref name="known"/> is a likely typo of <paramref name="given"/>,
    /// else null.</summary>
    public static string? NearestName(string given, IEnumerable<string> known)
    {
        var best = known.Select(k => (Name: k, Distance: EditDistance(k, given))).OrderBy(k => k.Distance).FirstOrDefault();
        return best.Name is not null && best.Distance <= Math.Max(2, given.Length / 3) ? best.Name : null;
    }

    static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
