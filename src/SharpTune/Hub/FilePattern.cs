using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>Shell-style patterns over repository paths with the semantics of Python's fnmatch, as huggingface_hub's
/// allow_patterns use them: '*' matches any run of characters including '/', '?' one character, [abc] / [!abc]
/// a character class; matching is case-sensitive and covers the whole path. A pattern ending in '/' matches
/// everything under that folder.</summary>
internal sealed class FilePattern
{
    readonly Regex _regex;

    public FilePattern(string pattern)
    {
        Text = pattern;
        _regex = new Regex(ToRegex(pattern.EndsWith('/') ? pattern + "*" : pattern), RegexOptions.Singleline | RegexOptions.CultureInvariant);
    }

    public string Text { get; }

    public bool IsMatch(string path) => _regex.IsMatch(path);

    public static bool AnyMatch(IReadOnlyList<FilePattern> patterns, string path) => patterns.Any(p => p.IsMatch(path));

    static string ToRegex(string pattern)
    {
        var sb = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            switch (c)
            {
                case '*': sb.Append(".*"); break;
                case '?': sb.Append('.'); break;
                case '[':
                    int close = ClassEnd(pattern, i);
                    if (close < 0) { sb.Append(@"\["); break; }
                    sb.Append(CharClass(pattern[(i + 1)..close]));
                    i = close;
                    break;
                default: sb.Append(Regex.Escape(c.ToString())); break;
            }
        }
        return sb.Append(@"\z").ToString();
    }

    // Index of the ']' closing the class opened at 'open', or -1 when unclosed (then '[' is literal, as in fnmatch).
    // A ']' right after '[' or '[!' belongs to the class.
    static int ClassEnd(string pattern, int open)
    {
        int j = open + 1;
        if (j < pattern.Length && pattern[j] == '!') j++;
        if (j < pattern.Length && pattern[j] == ']') j++;
        while (j < pattern.Length && pattern[j] != ']') j++;
        return j < pattern.Length ? j : -1;
    }

    static string CharClass(string body)
    {
        bool negate = body.StartsWith('!');
        if (negate) body = body[1..];
        var sb = new StringBuilder(negate ? "[^" : "[");
        foreach (char c in body)
            sb.Append(c is '\\' or '^' or '[' or ']' ? "\\" + c : c.ToString()); // '-' keeps its range meaning
        return sb.Append(']').ToString();
    }
}
