using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Data;

/// <summary>
/// Finds the data files of a source's subset and split. A folder is read the way Hugging Face lays out dataset
/// repositories: the <c>configs</c> of the README's dataset card when it has them (e.g. medical-o1-reasoning-SFT:
/// config <c>en</c> → <c>medical_o1_sft.json</c>), otherwise subset folders (<c>en/train-00000-of-00001.parquet</c>,
/// <c>en/train/0000.parquet</c>) and split names in file or folder names (<c>train.jsonl</c>, <c>data/test-*.parquet</c>).
/// </summary>
internal static class DataFiles
{
    private static readonly Dictionary<string, string[]> SplitKeywords = new(StringComparer.OrdinalIgnoreCase)
    {
        ["train"] = ["train", "training"],
        ["validation"] = ["validation", "valid", "val", "dev"],
        ["test"] = ["test", "testing", "eval", "evaluation"],
    };

    public static IReadOnlyList<DataFile> Resolve(string path, string? subset, string split)
    {
        if (path.StartsWith(BundledDatasets.Scheme, StringComparison.Ordinal))
            return BundledDatasets.Files(path, subset, split);
        if (File.Exists(path))
            return [DataFile.FromPath(path, Path.GetFileName(path))];
        if (!Directory.Exists(path))
            throw new SharpTuneException($"dataset '{path}' not found (expected a data file, a folder or a {BundledDatasets.Scheme} name)");

        var files = AllDataFiles(path);
        var configs = DatasetCard.ReadConfigs(Path.Combine(path, "README.md"));
        var chosen = configs is { Count: > 0 }
            ? FromConfigs(path, configs, files, subset, split)
            : FromLayout(path, files, subset, split);
        return chosen.Select(f => DataFile.FromPath(Path.Combine(path, f), f)).ToList();
    }

    /// <summary>Relative paths ('/'-separated, sorted) of the data files under a folder, leaving out hidden folders
    /// such as .git and .cache.</summary>
    private static List<string> AllDataFiles(string root)
    {
        var result = new List<string>();
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            string dir = pending.Pop();
            foreach (string sub in Directory.EnumerateDirectories(dir))
            {
                if (!Path.GetFileName(sub).StartsWith('.'))
                    pending.Push(sub);
            }
            foreach (string file in Directory.EnumerateFiles(dir))
            {
                if (DataFile.KindOf(file) is not null)
                    result.Add(Path.GetRelativePath(root, file).Replace('\\', '/'));
            }
        }
        result.Sort(StringComparer.Ordinal);
        return result;
    }

    private static List<string> FromConfigs(string root, IReadOnlyList<DatasetCard.Config> configs, List<string> files, string? subset, string split)
    {
        string names = string.Join(", ", configs.Select(c => c.Name));
        DatasetCard.Config config;
        if (subset is not null)
        {
            config = configs.FirstOrDefault(c => c.Name == subset)
                ?? throw new SharpTuneException($"{root}: no subset '{subset}'; the dataset card lists: {names}");
        }
        else
        {
            config = configs.FirstOrDefault(c => c.IsDefault) ?? configs.FirstOrDefault(c => c.Name == "default")
                ?? (configs.Count == 1 ? configs[0]
                    : throw new SharpTuneException($"{root}: the dataset has several subsets ({names}); choose one (DatasetSource.Subset)"));
        }

        if (!config.Splits.TryGetValue(split, out var patterns))
        {
            throw new SharpTuneException(
                $"{root}: subset '{config.Name}' has no split '{split}'; it has: {string.Join(", ", config.Splits.Keys)}");
        }
        var matched = files.Where(f => patterns.Any(p => Glob(p).IsMatch(f))).ToList();
        if (matched.Count == 0)
        {
            throw new SharpTuneException(
                $"{root}: subset '{config.Name}', split '{split}': no data file matches {string.Join(", ", patterns)} " +
                $"(is the snapshot complete? data files found: {Preview(files)})");
        }
        return matched;
    }

    private static List<string> FromLayout(string root, List<string> files, string? subset, string split)
    {
        if (files.Count == 0)
            throw new SharpTuneException($"{root}: no data files ({DataFile.SupportedExtensions})");

        // Subsets are the top folders that hold data files ("data/" is where single-subset repositories keep theirs).
        var subsets = files.Where(f => f.Contains('/')).Select(f => f[..f.IndexOf('/')])
            .Where(d => d != "data").Distinct().ToList();
        List<string> inSubset;
        if (subset is not null)
        {
            inSubset = files.Where(f => BelongsToSubset(f, subset)).ToList();
            if (inSubset.Count == 0)
            {
                throw new SharpTuneException(
                    $"{root}: no data files for subset '{subset}'" + (subsets.Count > 0 ? $"; subsets found: {string.Join(", ", subsets)}" : ""));
            }
        }
        else if (subsets.Count > 1 && files.All(f => subsets.Any(s => f.StartsWith(s + "/", StringComparison.Ordinal))))
        {
            throw new SharpTuneException($"{root}: the dataset has several subsets ({string.Join(", ", subsets)}); choose one (DatasetSource.Subset)");
        }
        else
        {
            inSubset = files;
        }

        var bySplit = inSubset.GroupBy(SplitOf).ToDictionary(g => g.Key ?? "", g => g.ToList());
        if (bySplit.Count == 1 && bySplit.ContainsKey(""))
        {
            if (split == "train")
                return bySplit[""]; // no split names anywhere: everything is the training split
            throw new SharpTuneException($"{root}: the files carry no split names, so there is only a 'train' split (asked for '{split}')");
        }
        string canonical = Canonical(split);
        if (bySplit.TryGetValue(canonical, out var chosen))
            return chosen;
        throw new SharpTuneException(
            $"{root}: no files for split '{split}'; splits found: {string.Join(", ", bySplit.Keys.Where(k => k.Length > 0))}");
    }

    private static bool BelongsToSubset(string file, string subset)
    {
        string[] parts = file.Split('/');
        if (parts[..^1].Contains(subset, StringComparer.Ordinal))
            return true;
        string name = parts[^1];
        return name[..name.IndexOf('.')] == subset;
    }

    /// <summary>The split a file belongs to by the words in its name, then in its folders (deepest first).</summary>
    private static string? SplitOf(string file)
    {
        string[] parts = file.Split('/');
        for (int i = parts.Length - 1; i >= 0; i--)
        {
            foreach (string word in Regex.Split(parts[i], "[^A-Za-z0-9]+"))
            {
                foreach (var (split, keywords) in SplitKeywords)
                {
                    if (keywords.Contains(word, StringComparer.OrdinalIgnoreCase))
                        return split;
                }
            }
        }
        return null;
    }

    private static string Canonical(string split)
    {
        foreach (var (name, keywords) in SplitKeywords)
        {
            if (keywords.Contains(split, StringComparer.OrdinalIgnoreCase))
                return name;
        }
        return split;
    }

    /// <summary>A data_files glob as a regex over '/'-separated paths relative to the dataset folder: '**' crosses
    /// folders, '*' and '?' do not.</summary>
    internal static Regex Glob(string pattern)
    {
        pattern = pattern.Replace('\\', '/');
        if (pattern.StartsWith("./", StringComparison.Ordinal))
            pattern = pattern[2..];
        var regex = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                bool slash = i + 2 < pattern.Length && pattern[i + 2] == '/';
                regex.Append(slash ? "(?:.*/)?" : ".*");
                i += slash ? 2 : 1;
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }
        regex.Append('$');
        return new Regex(regex.ToString(), RegexOptions.CultureInvariant);
    }

    private static string Preview(List<string> files) =>
        files.Count == 0 ? "none" : string.Join(", ", files.Take(5)) + (files.Count > 5 ? $" and {files.Count - 5} more" : "");
}
