using System.Text.RegularExpressions;

namespace SharpTune.Tests;

/// <summary>
/// The library's shape (docs/architecture.md): one folder per concern, each folder one namespace, no cycles
/// between folders, and every cross-folder dependency visible in the <c>using</c> lines. Files at the root of
/// src/SharpTune are the foundation every folder uses (errors, atomic files, JSON) and the front door
/// (<c>PretrainedModel</c>); the foundation uses no folder.
/// </summary>
public class ArchitectureTests
{
    static readonly string Library = Path.Combine(Tokenization.TokenizerTestData.RepoRoot, "src", "SharpTune");
    const string Root = "(root)";
    static readonly string[] FrontDoor = ["PretrainedModel.cs"];

    sealed record SourceFile(string RelativePath, string Folder, string[] Lines);

    static List<SourceFile> Sources() => Directory.EnumerateFiles(Library, "*.cs", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(Library, f).Replace('\\', '/'))
        .Where(r => !r.StartsWith("bin/", StringComparison.Ordinal) && !r.StartsWith("obj/", StringComparison.Ordinal))
        .Order(StringComparer.Ordinal)
        .Select(r => new SourceFile(r, r.Contains('/') ? r[..r.IndexOf('/')] : Root, File.ReadAllLines(Path.Combine(Library, r))))
        .ToList();

    static readonly Regex UsingLine = new(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?SharpTune\.(\w+)", RegexOptions.Compiled);

    /// <summary>Folder → folders it names in its using lines.</summary>
    static Dictionary<string, SortedSet<string>> FolderGraph(IEnumerable<SourceFile> files)
    {
        var graph = new Dictionary<string, SortedSet<string>>();
        foreach (var file in files)
        {
            var edges = graph.TryGetValue(file.Folder, out var e) ? e : graph[file.Folder] = [];
            foreach (string line in file.Lines)
                if (UsingLine.Match(line) is { Success: true } m && m.Groups[1].Value != file.Folder)
                    edges.Add(m.Groups[1].Value);
        }
        return graph;
    }

    /// <summary>The first cycle found (a → b → … → a), or null when the graph has none.</summary>
    internal static List<string>? FindCycle(IReadOnlyDictionary<string, SortedSet<string>> graph)
    {
        var state = new Dictionary<string, int>();   // 1: on the current path, 2: done
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (string next in graph.TryGetValue(node, out var e) ? e : [])
            {
                int s = state.GetValueOrDefault(next);
                if (s == 1) return [.. path[path.IndexOf(next)..], next];
                if (s == 0 && Visit(next) is { } cycle) return cycle;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (string node in graph.Keys.Order(StringComparer.Ordinal))
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle)
                return cycle;
        return null;
    }

    [Fact]
    public void FoldersHaveNoCycles()
    {
        var graph = FolderGraph(Sources());
        Assert.True(graph.Count > 5, $"expected the library's folders under {Library}");
        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"folder cycle: {string.Join(" → ", cycle ?? [])}");
    }

    [Fact]
    public void CycleFinderFindsACycle()
    {
        var graph = new Dictionary<string, SortedSet<string>>
        {
            ["Models"] = ["Tokenization"], ["Training"] = ["Models", "Data"], ["Data"] = ["Tokenization"], ["Tokenization"] = [],
        };
        Assert.Null(FindCycle(graph));
        graph["Models"].Add("Training");
        Assert.Equal(["Models", "Training", "Models"], FindCycle(graph));
    }

    [Fact]
    public void EachFolderIsOneNamespace()
    {
        var wrong = Sources()
            .Select(f => (f.RelativePath, Expected: string.Join(".", ["SharpTune", .. f.RelativePath.Split('/')[..^1]]),
                Actual: f.Lines.Select(l => Regex.Match(l, @"^namespace\s+([\w.]+)")).FirstOrDefault(m => m.Success)?.Groups[1].Value))
            .Where(f => f.Actual != f.Expected)
            .Select(f => $"{f.RelativePath}: namespace {f.Actual ?? "(none)"}, expected {f.Expected}")
            .ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void FoundationUsesNoFolder()
    {
        var uses = Sources()
            .Where(f => f.Folder == Root && !FrontDoor.Contains(f.RelativePath))
            .SelectMany(f => f.Lines.Where(l => UsingLine.IsMatch(l)).Select(l => $"{f.RelativePath}: {l.Trim()}"))
            .ToList();
        Assert.True(uses.Count == 0, string.Join("\n", uses));
    }

    /// <summary>A type named through its folder (<c>Data.PromptFormat</c>, <c>SharpTune.Peft.LoraAdapter</c>) is a
    /// dependency that the using lines hide.</summary>
    [Fact]
    public void NoFullyQualifiedCrossFolderNames()
    {
        var files = Sources();
        string folders = string.Join("|", files.Select(f => f.Folder).Where(f => f != Root).Distinct());
        var qualified = new Regex($@"(?<![\w.""])(?:SharpTune\.)?({folders})\.[A-Z]\w*");
        var found = new List<string>();
        foreach (var file in files)
        {
            for (int i = 0; i < file.Lines.Length; i++)
            {
                string code = CodeOf(file.Lines[i]);
                if (Regex.IsMatch(code, @"^\s*(using|namespace)\b")) continue;
                foreach (Match m in qualified.Matches(code))
                    if (m.Groups[1].Value != file.Folder)
                        found.Add($"{file.RelativePath}:{i + 1}: {m.Value}");
            }
        }
        Assert.True(found.Count == 0, "name the folder in a using line instead:\n" + string.Join("\n", found));
    }

    [Fact]
    public void QualifiedNameCheckSeesCodeNotTextOrComments()
    {
        Assert.Equal("var a = Peft.LoraAdapter.Load(d, m); ", CodeOf("var a = Peft.LoraAdapter.Load(d, m); // Data.X"));
        Assert.Equal("var s = \"\";", CodeOf("var s = \"Data.PromptFormat\";"));
    }

    /// <summary>A line without its string literals and its // comment.</summary>
    internal static string CodeOf(string line)
    {
        string noStrings = Regex.Replace(line, @"@?\$?""(?:[^""\\]|\\.)*""", "\"\"");
        int comment = noStrings.IndexOf("//", StringComparison.Ordinal);
        return comment < 0 ? noStrings : noStrings[..comment];
    }
}
