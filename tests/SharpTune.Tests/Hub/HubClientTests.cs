using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using SharpTune.Hub;

namespace SharpTune.Tests.Hub;

public sealed class HubClientTests : IDisposable
{
    const string Commit = "0123456789abcdef0123456789abcdef01234567";
    const string OtherCommit = "89abcdef0123456789abcdef0123456789abcdef";

    static readonly FakeFile Config = FakeFile.Text("config.json", """{"model_type": "qwen2"}""");
    static readonly FakeFile Tokenizer = FakeFile.Text("tokenizer.json", """{"model": {}}""");
    static readonly FakeFile Weights = FakeFile.Random("model.safetensors", 200_000, seed: 1);
    static readonly FakeFile NestedWeights = FakeFile.Random("sub/dir/extra.safetensors", 5_000, seed: 2);
    static readonly FakeFile PickleWeights = FakeFile.Random("pytorch_model.bin", 1_000, seed: 3);
    static readonly FakeFile Readme = FakeFile.Text("README.md", "# model");

    readonly string _root = Directory.CreateTempSubdirectory("sharptune-hub-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    string CacheDir => Path.Combine(_root, "cache");
    string ModelFolder => Path.Combine(CacheDir, "models--org--model");

    HubClient Client(FakeHub hub, string? token = null, bool offline = false, int maxParallel = 8) =>
        new(new HubOptions(hub.Endpoint, token, CacheDir, offline, maxParallel));

    static FakeRepo Model(params FakeFile[] files) => new("models", "org/model", Commit,
        files.Length > 0 ? files : [Config, Tokenizer, Weights, NestedWeights, PickleWeights, Readme]);

    [Fact]
    public async Task Download_builds_the_huggingface_hub_cache_layout()
    {
        using var hub = new FakeHub(Model());

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal(Path.Combine(ModelFolder, "snapshots", Commit), snapshot);
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(ModelFolder, "refs", "main")));
        AssertLinked(snapshot, Config, "../../blobs/" + Config.GitSha1);
        AssertLinked(snapshot, Tokenizer, "../../blobs/" + Tokenizer.GitSha1);
        AssertLinked(snapshot, Weights, "../../blobs/" + Weights.Sha256);
        AssertLinked(snapshot, NestedWeights, "../../../../blobs/" + NestedWeights.Sha256);
        // Default patterns skip pickled weights and non-model files without even asking for them.
        Assert.False(File.Exists(Path.Combine(snapshot, PickleWeights.Path)));
        Assert.False(File.Exists(Path.Combine(snapshot, Readme.Path)));
        Assert.DoesNotContain(hub.Requests, r => r.Path.Contains("pytorch_model") || r.Path.Contains("README"));
        Assert.Equal(
            new[] { Config.GitSha1, Tokenizer.GitSha1, Weights.Sha256, NestedWeights.Sha256 }.Order(),
            Directory.GetFiles(Path.Combine(ModelFolder, "blobs")).Select(Path.GetFileName).Order());
        Assert.DoesNotContain(hub.Requests, r => r.Header("Authorization") is not null);
    }

    [Fact]
    public async Task Dataset_uses_dataset_urls_and_folder_and_takes_all_files_by_default()
    {
        var train = FakeFile.Text("data/train.jsonl", """{"prompt": "1+1", "completion": "2"}""");
        var parquet = FakeFile.Random("data/test.parquet", 3_000, seed: 4);
        using var hub = new FakeHub(new FakeRepo("datasets", "org/set", Commit, [Readme, train, parquet]));

        string snapshot = await Client(hub).DownloadDatasetAsync("org/set");

        Assert.Equal(Path.Combine(CacheDir, "datasets--org--set", "snapshots", Commit), snapshot);
        AssertLinked(snapshot, Readme, "../../blobs/" + Readme.GitSha1);
        AssertLinked(snapshot, train, "../../../blobs/" + train.GitSha1);
        AssertLinked(snapshot, parquet, "../../../blobs/" + parquet.Sha256);
        Assert.Equal(1, hub.Count("GET", "/api/datasets/org/set/revision/main"));
        Assert.Equal(3, hub.Count("HEAD", "/datasets/org/set/resolve/" + Commit + "/"));
    }

    [Fact]
    public async Task Second_download_reuses_the_cache_with_only_the_revision_lookup()
    {
        using var hub = new FakeHub(Model());
        await Client(hub).DownloadModelAsync("org/model");
        hub.Requests.Clear();

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal("/api/models/org/model/revision/main", Assert.Single(hub.Requests).Path);
        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, Weights.Path)));
    }

    [Fact]
    public async Task Cache_written_by_huggingface_hub_is_reused()
    {
        // The layout huggingface_hub leaves behind: blobs named by ETag, relative symlinks, refs/main.
        string blobs = Path.Combine(ModelFolder, "blobs");
        string snapshot = Path.Combine(ModelFolder, "snapshots", Commit);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        foreach (var file in new[] { Config, Weights })
        {
            File.WriteAllBytes(Path.Combine(blobs, file.Etag), file.Content);
            File.CreateSymbolicLink(Path.Combine(snapshot, file.Path), "../../blobs/" + file.Etag);
        }
        Directory.CreateDirectory(Path.Combine(ModelFolder, "refs"));
        File.WriteAllText(Path.Combine(ModelFolder, "refs", "main"), Commit);
        using var hub = new FakeHub(Model(Config, Weights));

        Assert.Equal(snapshot, await Client(hub).DownloadModelAsync("org/model"));
        Assert.Single(hub.Requests);
    }

    [Fact]
    public async Task Blob_from_another_revision_is_linked_without_downloading_again()
    {
        using (var first = new FakeHub(Model(Config, Weights)))
            await Client(first).DownloadModelAsync("org/model");
        var changedConfig = FakeFile.Text("config.json", """{"model_type": "llama"}""");
        using var hub = new FakeHub(new FakeRepo("models", "org/model", OtherCommit, [changedConfig, Weights]));

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal(OtherCommit, File.ReadAllText(Path.Combine(ModelFolder, "refs", "main")));
        AssertLinked(snapshot, Weights, "../../blobs/" + Weights.Sha256);
        AssertLinked(snapshot, changedConfig, "../../blobs/" + changedConfig.GitSha1);
        Assert.Equal(0, hub.Count("GET", "/cdn/"));
        Assert.Equal(1, hub.Count("GET", "/org/model/resolve/"));
    }

    [Fact]
    public async Task Waits_for_the_blob_lock_of_another_process_and_uses_its_result()
    {
        using var hub = new FakeHub(Model(Weights));
        // The lock file huggingface_hub (filelock) and SharpTune both take before writing a blob.
        string lockPath = Path.Combine(CacheDir, ".locks", "models--org--model", Weights.Sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        var otherProcess = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

        var download = Client(hub).DownloadModelAsync("org/model");
        await Task.Delay(300);
        Assert.False(download.IsCompleted);
        string blob = Path.Combine(ModelFolder, "blobs", Weights.Sha256);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob, Weights.Content);
        otherProcess.Dispose();

        AssertLinked(await download, Weights, "../../blobs/" + Weights.Sha256);
        Assert.Equal(0, hub.Count("GET", "/cdn/"));
    }

    [Fact]
    public async Task Offline_mode_resolves_from_the_cache_without_any_request()
    {
        string online;
        using (var hub = new FakeHub(Model()))
            online = await Client(hub).DownloadModelAsync("org/model");
        using var silent = new FakeHub();
        var offline = Client(silent, offline: true);

        Assert.Equal(online, await offline.DownloadModelAsync("org/model"));
        Assert.Equal(online, await offline.DownloadModelAsync("org/model", revision: Commit));
        var missing = await Assert.ThrowsAsync<SharpTuneException>(() => offline.DownloadModelAsync("org/other"));
        Assert.Contains("Offline mode", missing.Message);
        Assert.Contains("'org/other'", missing.Message);
        var noMatch = await Assert.ThrowsAsync<SharpTuneException>(() => offline.DownloadModelAsync("org/model", allowPatterns: ["*.gguf"]));
        Assert.Contains("'*.gguf'", noMatch.Message);
        Assert.Empty(silent.Requests);

        var deadHub = new HubClient(new HubOptions($"http://127.0.0.1:{UnusedPort()}", CacheDir: CacheDir));
        var unreachable = await Assert.ThrowsAsync<SharpTuneException>(() => deadHub.DownloadModelAsync("org/model"));
        Assert.Contains("The cache has this revision: set HF_HUB_OFFLINE=1", unreachable.Message);
    }

    [Fact]
    public async Task Gated_repository_needs_the_token_which_goes_to_the_hub_only()
    {
        using var hub = new FakeHub(Model(Config, Weights) with { RequiredToken = "hf_secret" });

        var refused = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/model"));
        Assert.Contains("accept its license", refused.Message);
        Assert.Contains("HF_TOKEN", refused.Message);
        Assert.Contains($"{hub.Endpoint}/org/model", refused.Message);
        Assert.False(Directory.Exists(Path.Combine(ModelFolder, "refs")));

        hub.Requests.Clear();
        string snapshot = await Client(hub, token: "hf_secret").DownloadModelAsync("org/model");

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, Weights.Path)));
        var toHub = hub.Requests.Where(r => r.Header("Host") == $"127.0.0.1:{hub.Port}").ToList();
        var toCdn = hub.Requests.Where(r => r.Header("Host") == $"localhost:{hub.Port}").ToList();
        Assert.Equal(4, toHub.Count); // revision API, 2 HEADs, GET of config.json (non-LFS files come from the Hub itself)
        Assert.All(toHub, r => Assert.Equal("Bearer hf_secret", r.Header("Authorization")));
        Assert.Single(toCdn);
        Assert.Null(toCdn[0].Header("Authorization"));
    }

    [Fact]
    public async Task Missing_repository_revision_and_unreachable_endpoint_give_clear_errors()
    {
        using var hub = new FakeHub(Model());

        var noRepo = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/nope"));
        Assert.Contains("Model 'org/nope'", noRepo.Message);
        Assert.Contains("not found", noRepo.Message);

        var noRevision = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/model", "v9"));
        Assert.Contains("Revision 'v9' was not found", noRevision.Message);

        string deadEndpoint = $"http://127.0.0.1:{UnusedPort()}";
        var client = new HubClient(new HubOptions(deadEndpoint, CacheDir: CacheDir));
        var unreachable = await Assert.ThrowsAsync<SharpTuneException>(() => client.DownloadModelAsync("org/model"));
        Assert.Contains($"Cannot reach the Hugging Face Hub at {deadEndpoint}", unreachable.Message);
        Assert.Contains("HF_HUB_OFFLINE", unreachable.Message);
    }

    [Fact]
    public async Task Connection_dropped_mid_file_is_resumed_with_a_range_request()
    {
        var big = FakeFile.Random("model.safetensors", 3 << 20, seed: 5);
        using var hub = new FakeHub(Model(Config, big));
        hub.DropFirstDownload.Add(big.Sha256);

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal(big.Content, File.ReadAllBytes(Path.Combine(snapshot, big.Path)));
        var gets = hub.Requests.Where(r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Header("Range"));
        Assert.Equal($"bytes={big.Content.Length / 2}-", gets[1].Header("Range"));
        Assert.False(File.Exists(Path.Combine(ModelFolder, "blobs", big.Sha256 + ".incomplete")));
    }

    [Fact]
    public async Task Partial_file_left_by_an_earlier_run_is_resumed()
    {
        string incomplete = Path.Combine(ModelFolder, "blobs", Weights.Sha256 + ".incomplete");
        Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
        File.WriteAllBytes(incomplete, Weights.Content[..1000]);
        using var hub = new FakeHub(Model(Weights));

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, Weights.Path)));
        Assert.Equal("bytes=1000-", Assert.Single(hub.Requests, r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).Header("Range"));
        Assert.False(File.Exists(incomplete));
    }

    [Fact]
    public async Task Server_ignoring_the_range_restarts_the_file()
    {
        string incomplete = Path.Combine(ModelFolder, "blobs", Weights.Sha256 + ".incomplete");
        Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
        File.WriteAllBytes(incomplete, new byte[1000]); // wrong bytes: a resume would fail the SHA-256 check
        using var hub = new FakeHub(Model(Weights)) { IgnoreRange = true };

        string snapshot = await Client(hub).DownloadModelAsync("org/model");

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, Weights.Path)));
        Assert.Equal("bytes=1000-", Assert.Single(hub.Requests, r => r.Path.StartsWith("/cdn/", StringComparison.Ordinal)).Header("Range"));
    }

    [Fact]
    public async Task Corrupt_download_is_rejected_and_deleted()
    {
        using var hub = new FakeHub(Model(Weights with { Served = FakeFile.Random("x", Weights.Content.Length, seed: 99).Content }));

        var error = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/model"));

        Assert.Contains("corrupt", error.Message);
        Assert.Contains(Weights.Sha256, error.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(ModelFolder, "blobs")));
        Assert.False(File.Exists(Path.Combine(ModelFolder, "snapshots", Commit, Weights.Path)));
    }

    [Theory]
    [InlineData("../../evil.safetensors")]
    [InlineData("/tmp/evil.safetensors")]
    [InlineData("sub/../../../evil.safetensors")]
    [InlineData("..\\..\\evil.safetensors")]
    [InlineData("C:evil.safetensors")]
    [InlineData("evil\0.safetensors")]
    public async Task File_names_escaping_the_cache_are_refused(string name)
    {
        using var hub = new FakeHub(Model(Config, Weights) with { Listing = [Config.Path, name] });

        var error = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/model"));

        Assert.StartsWith("Refusing file name", error.Message);
        Assert.Single(hub.Requests); // nothing fetched once the listing is found unsafe
        Assert.Empty(Directory.GetFiles(_root, "*evil*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Unsafe_etag_is_refused()
    {
        using var hub = new FakeHub(Model(Config with { EtagOverride = "../../../escape" }));

        var error = await Assert.ThrowsAsync<SharpTuneException>(() => Client(hub).DownloadModelAsync("org/model"));

        Assert.Contains("unusable ETag", error.Message);
        Assert.Empty(Directory.GetFiles(_root, "escape", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Files_download_in_parallel_up_to_the_limit()
    {
        var files = Enumerable.Range(0, 8).Select(i => FakeFile.Random($"model-{i:D5}.safetensors", 10_000, seed: 10 + i)).ToArray();
        using var hub = new FakeHub(Model(files)) { HoldCdnUntilConcurrent = 3 };

        string snapshot = await Client(hub, maxParallel: 3).DownloadModelAsync("org/model");

        Assert.Equal(3, hub.MaxCdnInFlight);
        Assert.All(files, f => Assert.Equal(f.Content, File.ReadAllBytes(Path.Combine(snapshot, f.Path))));
    }

    [Fact]
    public async Task Without_symlinks_the_snapshot_holds_copies()
    {
        using var hub = new FakeHub(Model(Config, Weights));

        string snapshot = await new HubClient(new HubOptions(hub.Endpoint, CacheDir: CacheDir)) { UseSymlinks = false }
            .DownloadModelAsync("org/model");

        var copy = new FileInfo(Path.Combine(snapshot, Weights.Path));
        Assert.Null(copy.LinkTarget);
        Assert.Equal(Weights.Content, File.ReadAllBytes(copy.FullName));
        Assert.True(File.Exists(Path.Combine(ModelFolder, "blobs", Weights.Sha256)));
    }

    [Fact]
    public async Task HttpClient_that_follows_redirects_itself_is_refused()
    {
        using var hub = new FakeHub(Model(Weights));
        using var autoRedirect = new HttpClient();

        var error = await Assert.ThrowsAsync<SharpTuneException>(
            () => new HubClient(new HubOptions(hub.Endpoint, CacheDir: CacheDir), autoRedirect).DownloadModelAsync("org/model"));

        Assert.Contains("AllowAutoRedirect = false", error.Message);
    }

    [Fact]
    public async Task Renamed_repository_follows_the_hubs_relative_redirect()
    {
        using var hub = new FakeHub(Model(Config, Weights) with { FormerId = "old-org/model" });

        string snapshot = await Client(hub).DownloadModelAsync("old-org/model");

        Assert.Equal(Path.Combine(CacheDir, "models--old-org--model", "snapshots", Commit), snapshot);
        Assert.Equal(Config.Content, File.ReadAllBytes(Path.Combine(snapshot, Config.Path)));
        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, Weights.Path)));
    }

    [Fact]
    public async Task Progress_counts_bytes_per_file_and_overall()
    {
        var big = FakeFile.Random("model.safetensors", 3 << 20, seed: 6);
        using var hub = new FakeHub(Model(Config, big));
        var reports = new ConcurrentQueue<HubProgress>();

        await Client(hub).DownloadModelAsync("org/model", progress: new Collect(reports));

        long total = Config.Content.Length + big.Content.Length;
        Assert.All(reports, r => Assert.Equal(total, r.BytesTotal));
        Assert.All(reports, r => Assert.Equal(2, r.FilesTotal));
        Assert.Equal(total, reports.Max(r => r.BytesDone));
        Assert.Equal(2, reports.Max(r => r.FilesDone));
        var bigReports = reports.Where(r => r.File == big.Path).ToList();
        Assert.Contains(bigReports, r => r.FileBytesDone > 0 && r.FileBytesDone < big.Content.Length);
        Assert.Equal(big.Content.Length, bigReports[^1].FileBytesDone);
        Assert.True(bigReports.Zip(bigReports.Skip(1)).All(p => p.First.FileBytesDone <= p.Second.FileBytesDone));
    }

    static void AssertLinked(string snapshot, FakeFile file, string expectedTarget)
    {
        var pointer = new FileInfo(Path.Combine(snapshot, file.Path));
        Assert.Equal(expectedTarget, pointer.LinkTarget);
        Assert.Equal(file.Content, File.ReadAllBytes(pointer.FullName));
    }

    static int UnusedPort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    sealed class Collect(ConcurrentQueue<HubProgress> into) : IProgress<HubProgress>
    {
        public void Report(HubProgress value) => into.Enqueue(value);
    }
}
