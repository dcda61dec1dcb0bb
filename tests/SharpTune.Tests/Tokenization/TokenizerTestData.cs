using System.Collections.Concurrent;
using System.IO.Compression;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>The corpus, Hugging Face reference fixtures (scripts/fixtures/tokenizer_reference.py) and the real
/// tokenizer files (scripts/fetch-test-data.sh) shared by the tokenizer tests.</summary>
internal static class TokenizerTestData
{
    private static readonly Lazy<string[]> LazyCorpus = new(() =>
        JsonSerializer.Deserialize<string[]>(ReadGzip(FixturePath("corpus.json.gz")))!);

    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> Tokenizers = new();
    private static readonly ConcurrentDictionary<string, Lazy<JsonDocument>> References = new();

    public static string[] Corpus => LazyCorpus.Value;

    public static string FixturePath(string name) =>
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizer", name);

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SharpTune.slnx")))
            {
                dir = dir.Parent;
            }
            return dir?.FullName ?? throw new InvalidOperationException("repository root (SharpTune.slnx) not found");
        }
    }

    /// <summary>The folder of a real tokenizer fetched by scripts/fetch-test-data.sh.</summary>
    public static string RealTokenizerDir(string name)
    {
        string dir = Path.Combine(RepoRoot, ".cache", "tokenizers", name);
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
        {
            throw new InvalidOperationException($"{dir}/tokenizer.json missing: run scripts/fetch-test-data.sh");
        }
        return dir;
    }

    public static Tokenizer Real(string name) =>
        Tokenizers.GetOrAdd(name, n => new Lazy<Tokenizer>(() => Tokenizer.Load(RealTokenizerDir(n)))).Value;

    public static JsonElement Reference(string name) => References.GetOrAdd(name, n => new Lazy<JsonDocument>(() =>
        JsonDocument.Parse(ReadGzip(FixturePath($"reference_{n}.json.gz"))))).Value.RootElement;

    public static int[][] IdLists(JsonElement element) =>
        [.. element.EnumerateArray().Select(Ints)];

    public static int[] Ints(JsonElement element) => [.. element.EnumerateArray().Select(e => e.GetInt32())];

    /// <summary>Expected ids with special tokens, from the fixture's prefix/suffix/exceptions summary.</summary>
    public static int[] WithSpecial(JsonElement summary, int index, int[] plain)
    {
        if (summary.GetProperty("exceptions").TryGetProperty(index.ToString(System.Globalization.CultureInfo.InvariantCulture),
                out var exception))
        {
            return Ints(exception);
        }
        return [.. Ints(summary.GetProperty("prefix")), .. plain, .. Ints(summary.GetProperty("suffix"))];
    }

    /// <summary>UTF-16 offsets as Python's code point offsets.</summary>
    public static (int, int)[] ToCodePointOffsets(string text, (int Start, int End)[] offsets)
    {
        var codePointIndex = new int[text.Length + 1];
        int cp = 0;
        for (int i = 0; i < text.Length; i++)
        {
            codePointIndex[i] = cp;
            bool startsPair = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (!startsPair)
            {
                cp++;
            }
        }
        codePointIndex[text.Length] = cp;
        return [.. offsets.Select(o => (codePointIndex[o.Start], codePointIndex[o.End]))];
    }

    /// <summary>A readable description of the first difference, for assertion messages.</summary>
    public static string DescribeMismatch(Tokenizer tokenizer, string text, int[] expected, int[] actual)
    {
        int k = 0;
        while (k < expected.Length && k < actual.Length && expected[k] == actual[k])
        {
            k++;
        }
        string Show(int[] ids) => string.Join(" ", ids.Skip(Math.Max(0, k - 2)).Take(6)
            .Select(id => $"{id}:{JsonSerializer.Serialize(tokenizer.IdToToken(id))}"));
        return $"text {JsonSerializer.Serialize(text)[..Math.Min(160, JsonSerializer.Serialize(text).Length)]}\n" +
               $"  at token {k}: expected {Show(expected)}\n  actual {Show(actual)}";
    }

    private static string ReadGzip(string path)
    {
        using var stream = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
