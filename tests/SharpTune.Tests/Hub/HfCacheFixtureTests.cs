using System.Formats.Tar;
using System.Security.Cryptography;
using SharpTune.Hub;

namespace SharpTune.Tests.Hub;

/// <summary>Checks against a cache made by huggingface_hub 1.33 itself (Fixtures/Hub/hf_hub_cache.tar, from
/// scripts/fixtures/hub_cache.py, which serves these same repositories from its own fake Hub).</summary>
public sealed class HfCacheFixtureTests : IDisposable
{
    const string ModelCommit = "0123456789abcdef0123456789abcdef01234567";
    const string DatasetCommit = "89abcdef0123456789abcdef0123456789abcdef";

    static readonly FakeRepo Model = new("models", "org/model", ModelCommit,
    [
        FakeFile.Text("config.json", """{"model_type": "qwen2"}"""),
        FakeFile.Text("tokenizer.json", """{"version": "1.0"}"""),
        FakeFile.Pattern("model.safetensors", 5000, 7, 3),
        FakeFile.Pattern("sub/dir/extra.safetensors", 1200, 13, 1),
        FakeFile.Pattern("pytorch_model.bin", 800, 5, 0),
        FakeFile.Text("README.md", "# model\n"),
    ]);

    static readonly FakeRepo Dataset = new("datasets", "org/set", DatasetCommit,
    [
        FakeFile.Text("README.md", "# set\n"),
        FakeFile.Text("data/train.jsonl", "{\"prompt\": \"1+1\", \"completion\": \"2\"}\n"),
        FakeFile.Pattern("data/test.parquet", 3000, 11, 5),
    ])
    { Revisions = ["refs/pr/1"] };

    readonly string _root = Directory.CreateTempSubdirectory("sharptune-hfcache-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task Builds_the_same_tree_as_huggingface_hub()
    {
        string reference = ExtractReference();
        string ours = Path.Combine(_root, "ours", "hub");
        using var hub = new FakeHub(Model, Dataset);
        var client = new HubClient(new HubOptions(hub.Endpoint, CacheDir: ours));

        await client.DownloadModelAsync("org/model");
        await client.DownloadDatasetAsync("org/set", "refs/pr/1");

        var expected = Tree(reference);
        Assert.Equal(expected, Tree(ours));
        Assert.Equal(42, expected.Count); // as listed in hf_hub_cache.json, less the two trees/ folders and files
        Assert.Contains($"models--org--model/snapshots/{ModelCommit}/sub/dir/extra.safetensors -> " +
                        $"../../../../blobs/{Model.Files[3].Sha256}", expected);
        Assert.Contains($"datasets--org--set/refs/refs/pr/1 {Convert.ToHexStringLower(SHA256.HashData("89abcdef0123456789abcdef0123456789abcdef"u8))}", expected);
        Assert.Contains($".locks/models--org--model/{Model.Files[2].Sha256}.lock {Convert.ToHexStringLower(SHA256.HashData([]))}", expected);
    }

    [Fact]
    public async Task Reuses_a_cache_made_by_huggingface_hub()
    {
        string cache = ExtractReference();
        using var hub = new FakeHub(Model, Dataset);
        var client = new HubClient(new HubOptions(hub.Endpoint, CacheDir: cache));

        string model = await client.DownloadModelAsync("org/model");
        string dataset = await client.DownloadDatasetAsync("org/set", "refs/pr/1");

        Assert.Equal(Path.Combine(cache, "models--org--model", "snapshots", ModelCommit), model);
        Assert.Equal(Path.Combine(cache, "datasets--org--set", "snapshots", DatasetCommit), dataset);
        Assert.Equal(
            ["/api/models/org/model/revision/main", "/api/datasets/org/set/revision/refs%2Fpr%2F1"],
            hub.Requests.Select(r => r.Path));
    }

    [Fact]
    public async Task Offline_mode_finds_huggingface_hub_snapshots_through_their_refs()
    {
        string cache = ExtractReference();
        var client = new HubClient(new HubOptions("http://127.0.0.1:9", CacheDir: cache, Offline: true));

        string model = await client.DownloadModelAsync("org/model");
        string dataset = await client.DownloadDatasetAsync("org/set", "refs/pr/1");

        Assert.Equal(Path.Combine(cache, "models--org--model", "snapshots", ModelCommit), model);
        Assert.Equal("# set\n", File.ReadAllText(Path.Combine(dataset, "README.md")));
    }

    string ExtractReference()
    {
        string target = Path.Combine(_root, "reference");
        Directory.CreateDirectory(target);
        TarFile.ExtractToDirectory(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Hub", "hf_hub_cache.tar"), target, overwriteFiles: false);
        return Path.Combine(target, "hub");
    }

    /// <summary>Every entry under a cache: folders, symlinks with their targets, files with their SHA-256.
    /// Left out: huggingface_hub's listing cache (trees/), which SharpTune neither writes nor needs, and the
    /// wording of CACHEDIR.TAG, which names its creator.</summary>
    static List<string> Tree(string cache) =>
        Directory.EnumerateFileSystemEntries(cache, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(full => (Full: full, Relative: Path.GetRelativePath(cache, full).Replace(Path.DirectorySeparatorChar, '/')))
            .Where(e => e.Relative.Split('/') is not [_, "trees", ..])
            .Select(e => new FileInfo(e.Full) switch
            {
                { LinkTarget: { } target } => $"{e.Relative} -> {target}",
                _ when Directory.Exists(e.Full) => e.Relative + "/",
                _ when e.Relative == "CACHEDIR.TAG" => e.Relative,
                _ => $"{e.Relative} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(e.Full)))}",
            })
            .Order(StringComparer.Ordinal)
            .ToList();
}
