namespace SharpTune.Data;

/// <summary>
/// The <c>configs</c> block of a Hugging Face dataset card (the YAML front matter of README.md): which files
/// make each subset and split. Only the YAML needed for it is understood: block mappings and sequences, plain
/// and quoted scalars, and [a, b] lists.
/// </summary>
internal static class DatasetCard
{
    public sealed record Config(string Name, bool IsDefault, IReadOnlyDictionary<string, IReadOnlyList<string>> Splits);

    /// <summary>The configs of the card at <paramref name="readmePath"/>, or null when it declares none.</summary>
    public static IReadOnlyList<Config>? ReadConfigs(string readmePath)
    {
        if (!File.Exists(readmePath))
            return null;
        var lines = ConfigsBlock(File.ReadAllLines(readmePath));
        if (lines is null)
            return null;
        object? root;
        try
        {
            root = new MiniYaml(lines).Parse();
        }
        catch (FormatException e)
        {
            throw new SharpTuneException($"{readmePath}: cannot read the dataset card's YAML: {e.Message}");
        }
        if (root is not Dictionary<string, object?> map || !map.TryGetValue("configs", out object? configs) || configs is null)
            return null;
        if (configs is not List<object?> list)
            throw new SharpTuneException($"{readmePath}: 'configs' in the dataset card is not a list");

        var result = new List<Config>();
        foreach (var item in list)
        {
            if (item is not Dictionary<string, object?> config || config.GetValueOrDefault("config_name") is not string name)
                throw new SharpTuneException($"{readmePath}: each entry of 'configs' needs a config_name");
            bool isDefault = config.GetValueOrDefault("default") is string d && d.Equals("true", StringComparison.OrdinalIgnoreCase);
            result.Add(new Config(name, isDefault, SplitPatterns(config.GetValueOrDefault("data_files"), readmePath, name)));
        }
        return result;
    }

    /// <summary>data_files may be a path, a list of paths (both: the train split), or a list of {split, path}.</summary>
    private static Dictionary<string, IReadOnlyList<string>> SplitPatterns(object? dataFiles, string readmePath, string config)
    {
        var splits = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        switch (dataFiles)
        {
            case null:
                break;
            case string path:
                splits["train"] = [path];
                break;
            case List<object?> entries when entries.All(e => e is string):
                splits["train"] = entries.Cast<string>().ToList();
                break;
            case List<object?> entries:
                foreach (var entry in entries)
                {
                    if (entry is not Dictionary<string, object?> e || e.GetValueOrDefault("split") is not string split)
                        throw new SharpTuneException($"{readmePath}: config '{config}': each data_files entry needs a split and a path");
                    splits[split] = e.GetValueOrDefault("path") switch
                    {
                        string p => [p],
                        List<object?> ps => ps.OfType<string>().ToList(),
                        _ => throw new SharpTuneException($"{readmePath}: config '{config}', split '{split}': the path is missing"),
                    };
                }
                break;
            case Dictionary<string, object?> bySplit:
                foreach (var (split, value) in bySplit)
                    splits[split] = value switch { string p => [p], List<object?> ps => ps.OfType<string>().ToList(), _ => [] };
                break;
            default:
                throw new SharpTuneException($"{readmePath}: config '{config}': data_files is neither a path nor a list");
        }
        return splits;
    }

    /// <summary>The lines of the top-level <c>configs:</c> key of the YAML front matter; the rest of the card
    /// (descriptions, feature lists) is not parsed, so YAML we do not understand there does no harm.</summary>
    private static List<string>? ConfigsBlock(string[] lines)
    {
        if (lines.Length == 0 || lines[0].Trim() != "---")
            return null;
        int end = Array.FindIndex(lines, 1, l => l.Trim() == "---");
        if (end < 0)
            return null;
        int start = Array.FindIndex(lines, 1, end - 1, l => l.TrimEnd() == "configs:" || l.StartsWith("configs: ", StringComparison.Ordinal));
        if (start < 0)
            return null;
        int stop = start + 1;
        while (stop < end && (lines[stop].Trim().Length == 0 || lines[stop][0] == ' ' || lines[stop][0] == '-' || lines[stop][0] == '#'))
            stop++;
        return lines[start..stop].ToList();
    }

    /// <summary>A parser for the block-style YAML subset used by dataset cards. Values are strings,
    /// <c>List&lt;object?&gt;</c> or <c>Dictionary&lt;string, object?&gt;</c>.</summary>
    private sealed class MiniYaml
    {
        private readonly List<(int Indent, string Text)> _lines = [];
        private int _next;

        public MiniYaml(IEnumerable<string> lines)
        {
            foreach (string raw in lines)
            {
                string text = StripComment(raw.TrimEnd());
                if (text.Trim().Length == 0)
                    continue;
                int indent = text.Length - text.TrimStart(' ').Length;
                _lines.Add((indent, text.Trim()));
            }
        }

        public object? Parse() => _lines.Count == 0 ? null : ParseNode(_lines[0].Indent);

        private object? ParseNode(int indent) =>
            IsSequenceItem(_lines[_next].Text) ? ParseSequence(indent) : ParseMapping(indent);

        private List<object?> ParseSequence(int indent)
        {
            var items = new List<object?>();
            while (_next < _lines.Count && _lines[_next].Indent == indent && IsSequenceItem(_lines[_next].Text))
            {
                string rest = _lines[_next].Text[1..].TrimStart();
                if (rest.Length == 0)
                {
                    _next++;
                    items.Add(_next < _lines.Count && _lines[_next].Indent > indent ? ParseNode(_lines[_next].Indent) : null);
                }
                else if (SplitKey(rest) is not null)
                {
                    // "- key: value" starts a mapping whose keys line up with "key".
                    int childIndent = indent + (_lines[_next].Text.Length - rest.Length);
                    _lines[_next] = (childIndent, rest);
                    items.Add(ParseMapping(childIndent));
                }
                else
                {
                    _next++;
                    items.Add(Scalar(rest));
                }
            }
            return items;
        }

        private Dictionary<string, object?> ParseMapping(int indent)
        {
            var map = new Dictionary<string, object?>(StringComparer.Ordinal);
            while (_next < _lines.Count && _lines[_next].Indent == indent && !IsSequenceItem(_lines[_next].Text))
            {
                var (key, value) = SplitKey(_lines[_next].Text)
                    ?? throw new FormatException($"expected 'key: value', found '{_lines[_next].Text}'");
                _next++;
                if (value.Length > 0)
                {
                    map[key] = Scalar(value);
                    continue;
                }
                bool nested = _next < _lines.Count &&
                    (_lines[_next].Indent > indent || _lines[_next].Indent == indent && IsSequenceItem(_lines[_next].Text));
                map[key] = nested ? ParseNode(_lines[_next].Indent) : null;
            }
            if (_next < _lines.Count && _lines[_next].Indent > indent)
                throw new FormatException($"unexpected indentation at '{_lines[_next].Text}'");
            return map;
        }

        private static bool IsSequenceItem(string text) => text == "-" || text.StartsWith("- ", StringComparison.Ordinal);

        private static (string Key, string Value)? SplitKey(string text)
        {
            if (text.StartsWith('"') || text.StartsWith('\'') || text.StartsWith('[') || text.StartsWith('{'))
                return null;
            int colon = text.IndexOf(": ", StringComparison.Ordinal);
            if (colon < 0 && text.EndsWith(':'))
                colon = text.Length - 1;
            if (colon <= 0)
                return null;
            return (text[..colon].Trim(), text[(colon + 1)..].Trim());
        }

        private static object? Scalar(string text)
        {
            if (text.StartsWith('[') && text.EndsWith(']'))
            {
                return text[1..^1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                    .Select(Unquote).Cast<object?>().ToList();
            }
            return text is "null" or "~" ? null : Unquote(text);
        }

        private static string Unquote(string text)
        {
            if (text.Length >= 2 && text[0] == '"' && text[^1] == '"')
                return text[1..^1].Replace("\\\"", "\"").Replace("\\\\", "\\");
            if (text.Length >= 2 && text[0] == '\'' && text[^1] == '\'')
                return text[1..^1].Replace("''", "'");
            return text;
        }

        private static string StripComment(string line)
        {
            bool single = false, dbl = false;
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                if (c == '\'' && !dbl)
                    single = !single;
                else if (c == '"' && !single)
                    dbl = !dbl;
                else if (c == '#' && !single && !dbl && (i == 0 || line[i - 1] == ' '))
                    return line[..i];
            }
            return line;
        }
    }
}
