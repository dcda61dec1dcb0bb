using System.Buffers;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;

namespace SharpTune.Hub;

/// <summary>Downloads repository snapshots from the Hugging Face Hub into a cache laid out exactly like
/// huggingface_hub's, so both tools share downloads. Files already in the snapshot are not fetched again.</summary>
/// <param name="options">Endpoint, token, cache folder, offline mode, parallelism.</param>
/// <param name="http">Client to send requests with; it must not follow redirects itself (handler with
/// AllowAutoRedirect = false). Null uses a shared client.</param>
public sealed class HubClient(HubOptions options, HttpClient? http = null)
{
    /// <summary>Files a model needs: configuration, tokenizer, chat template and safetensors weights
    /// (no .bin/.pth/.gguf duplicates).</summary>
    public static IReadOnlyList<string> DefaultModelPatterns { get; } =
    [
        "config.json", "generation_config.json", "tokenizer*.json", "special_tokens_map.json", "*.safetensors",
        "model.safetensors.index.json", "*.jinja", "chat_template.json",
    ];

    const int MaxAttempts = 5;
    static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);
    const int ReportEveryBytes = 1 << 20;

    readonly HubOptions _options = Validate(options);
    readonly string _endpointText = (options.Endpoint ?? HubOptions.DefaultEndpoint).TrimEnd('/');
    readonly string _cacheDir = options.CacheDir ?? HubOptions.DefaultCacheDir();
    readonly HubHttp _hub = new(http ?? HubHttp.Default, EndpointUri(options.Endpoint), options.Token);

    /// <summary>False makes snapshot entries copies of the blobs, as happens where symlinks cannot be created.</summary>
    internal bool UseSymlinks { get; init; } = true;

    /// <summary>Downloads the files of a model repository matching <paramref name="allowPatterns"/> (fnmatch-style,
    /// default <see cref="DefaultModelPatterns"/>; pass ["*"] for all) and returns the local snapshot folder.</summary>
    public Task<string> DownloadModelAsync(string repoId, string? revision = null, IReadOnlyList<string>? allowPatterns = null,
        IProgress<HubProgress>? progress = null, CancellationToken ct = default) =>
        DownloadAsync(RepoType.Model, repoId, revision, allowPatterns ?? DefaultModelPatterns, progress, ct);

    /// <summary>Downloads the files of a dataset repository matching <paramref name="allowPatterns"/> (default: all
    /// files) and returns the local snapshot folder.</summary>
    public Task<string> DownloadDatasetAsync(string repoId, string? revision = null, IReadOnlyList<string>? allowPatterns = null,
        IProgress<HubProgress>? progress = null, CancellationToken ct = default) =>
        DownloadAsync(RepoType.Dataset, repoId, revision, allowPatterns, progress, ct);

    async Task<string> DownloadAsync(RepoType type, string repoId, string? revision, IReadOnlyList<string>? allowPatterns,
        IProgress<HubProgress>? progress, CancellationToken ct)
    {
        revision ??= "main";
        HubNames.CheckRevision(revision);
        var repo = new CachedRepo(_cacheDir, type, repoId);
        var patterns = allowPatterns?.Select(p => new FilePattern(p)).ToList();
        if (_options.Offline) return FromCacheOnly(repo, revision, patterns);

        var (commit, listing) = await GetRevisionAsync(repo, revision, ct);
        var selected = listing.Where(f => patterns is null || FilePattern.AnyMatch(patterns, f)).ToList();
        if (selected.Count == 0)
            throw new SharpTuneException($"No file of {repo.Description} at revision '{revision}' matches {Describe(patterns)}.");
        foreach (string file in selected) HubNames.CheckRepoFile(file, $"the file list of {repo.Description} on {_endpointText}");

        CachedRepo.TagCacheFolder(_cacheDir);
        var cached = new List<(string Path, long Size)>();
        var missing = new List<string>();
        foreach (string file in selected)
        {
            if (CachedRepo.ExistingFileSize(repo.PointerPath(commit, file)) is long size) cached.Add((file, size));
            else missing.Add(file);
        }

        var remote = new RemoteFile[missing.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, missing.Count), ParallelOptions(ct),
            async (i, token) => remote[i] = await GetFileMetadataAsync(repo, revision, commit, missing[i], token));

        var tracker = new ProgressTracker(progress, selected.Count, cached.Sum(f => f.Size) + remote.Sum(f => f.Size));
        foreach (var (path, size) in cached) tracker.Completed(path, size, alreadyCounted: 0);

        // Files with equal content share one blob: fetch each blob once, then link every file to it.
        await Parallel.ForEachAsync(remote.GroupBy(f => f.Etag), ParallelOptions(ct), async (sameBlob, token) =>
        {
            var first = sameBlob.First();
            string blob = repo.BlobPath(first.Etag);
            long counted = 0;
            if (!File.Exists(blob))
            {
                using var blobLock = await repo.LockBlobAsync(first.Etag, token);
                if (!File.Exists(blob)) // another process may have fetched it while we waited for the lock
                    await DownloadBlobAsync(repo, first, done => counted = tracker.Advanced(first, done, counted), token);
            }
            foreach (var file in sameBlob)
            {
                CachedRepo.LinkPointer(blob, repo.PointerPath(commit, file.Path), UseSymlinks);
                tracker.Completed(file.Path, file.Size, file == first ? counted : 0);
            }
        });

        repo.WriteRef(revision, commit);
        return repo.SnapshotFolder(commit);
    }

    string FromCacheOnly(CachedRepo repo, string revision, IReadOnlyList<FilePattern>? patterns)
    {
        string? snapshot = repo.CachedSnapshot(revision)
            ?? throw new SharpTuneException(
                $"Offline mode: {repo.Description} at revision '{revision}' is not in the cache ({repo.Folder}). " +
                "Download it once while online (unset HF_HUB_OFFLINE), or point HF_HUB_CACHE/HF_HOME at a cache that has it.");
        if (patterns is not null && !CachedRepo.SnapshotFiles(snapshot).Any(f => FilePattern.AnyMatch(patterns, f)))
            throw new SharpTuneException(
                $"Offline mode: the cached snapshot {snapshot} has no file matching {Describe(patterns)}. Download it once while online.");
        return snapshot;
    }

    async Task<(string Commit, List<string> Files)> GetRevisionAsync(CachedRepo repo, string revision, CancellationToken ct)
    {
        string kind = repo.Type == RepoType.Model ? "models" : "datasets";
        var uri = new Uri($"{_endpointText}/api/{kind}/{repo.RepoId}/revision/{Uri.EscapeDataString(revision)}");
        using var response = await SendToHubAsync(HttpMethod.Get, uri, repo, revision, ct);
        if (!response.IsSuccessStatusCode) throw HttpError(response, repo, revision, file: null);

        string source = $"{uri}";
        JsonDocument json;
        try
        {
            json = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(ct), cancellationToken: ct);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{source} did not answer with JSON: {e.Message}", e);
        }
        using (json)
        {
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("sha", out var sha) || sha.ValueKind != JsonValueKind.String)
                throw new SharpTuneException($"{source} answered without a string field 'sha' (the commit hash).");
            string commit = sha.GetString()!;
            HubNames.CheckCommitHash(commit, source);
            var files = new List<string>();
            if (root.TryGetProperty("siblings", out var siblings) && siblings.ValueKind != JsonValueKind.Null)
            {
                if (siblings.ValueKind != JsonValueKind.Array)
                    throw new SharpTuneException($"{source}: field 'siblings' should be an array.");
                foreach (var sibling in siblings.EnumerateArray())
                {
                    if (sibling.ValueKind != JsonValueKind.Object || !sibling.TryGetProperty("rfilename", out var name)
                        || name.ValueKind != JsonValueKind.String)
                        throw new SharpTuneException($"{source}: an entry of 'siblings' lacks a string field 'rfilename'.");
                    files.Add(name.GetString()!);
                }
            }
            return (commit, files);
        }
    }

    /// <summary>HEAD of the file's resolve URL, as huggingface_hub does it: the answer (a redirect to a CDN for LFS
    /// files) names the blob (X-Linked-Etag for LFS files, else ETag), its size and where to download it.</summary>
    async Task<RemoteFile> GetFileMetadataAsync(CachedRepo repo, string revision, string commit, string path, CancellationToken ct)
    {
        string datasets = repo.Type == RepoType.Dataset ? "datasets/" : "";
        string escapedPath = string.Join('/', path.Split('/').Select(Uri.EscapeDataString));
        var uri = new Uri($"{_endpointText}/{datasets}{repo.RepoId}/resolve/{commit}/{escapedPath}");
        using var response = await SendToHubAsync(HttpMethod.Head, uri, repo, revision, ct);
        bool redirect = HubHttp.IsRedirect(response.StatusCode) && response.Headers.Location is not null;
        if (!response.IsSuccessStatusCode && !redirect) throw HttpError(response, repo, revision, path);

        string source = $"{_endpointText} (HEAD {uri})";
        if (HubHttp.Header(response, "X-Repo-Commit") is { } servedCommit && servedCommit != commit)
            throw new SharpTuneException($"{source} served commit {servedCommit}, but revision '{revision}' is {commit}.");

        string? etag = NormalizeEtag(HubHttp.Header(response, "X-Linked-Etag") ?? HubHttp.Header(response, "ETag"))
            ?? throw new SharpTuneException($"{source} sent no ETag, so the file cannot be stored in the cache.");
        HubNames.CheckEtag(etag, source);

        long? size = long.TryParse(HubHttp.Header(response, "X-Linked-Size"), out long linked) ? linked
            : redirect ? null : response.Content.Headers.ContentLength;
        if (size is not long fileSize || fileSize < 0)
            throw new SharpTuneException($"{source} sent no file size (X-Linked-Size or Content-Length).");

        var download = redirect ? new Uri(response.RequestMessage!.RequestUri!, response.Headers.Location!) : response.RequestMessage!.RequestUri!;
        return new RemoteFile(path, etag, fileSize, download);
    }

    /// <summary>Fetches a blob into blobs/{etag}.incomplete, resuming what an earlier attempt or run left there,
    /// checks it (SHA-256 when the ETag is one, as for LFS files; the size always) and renames it into place.</summary>
    async Task DownloadBlobAsync(CachedRepo repo, RemoteFile file, Action<long> reportBytes, CancellationToken ct)
    {
        string incomplete = repo.IncompletePath(file.Etag);
        Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
        FileStream stream;
        try
        {
            stream = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        }
        catch (IOException e)
        {
            throw new SharpTuneException($"Cannot open {incomplete} for writing (is another download of {repo.Description} running?): {e.Message}", e);
        }

        string? mismatch = null;
        await using (stream)
        {
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    string? sha256 = await FetchIntoAsync(stream, file, reportBytes, ct);
                    if (sha256 is not null && sha256 != file.Etag) mismatch = sha256;
                    break;
                }
                catch (Exception e) when (IsTransient(e, ct))
                {
                    if (attempt == MaxAttempts)
                        throw new SharpTuneException(
                            $"Downloading '{file.Path}' of {repo.Description} from {file.Download.GetLeftPart(UriPartial.Authority)} " +
                            $"failed {MaxAttempts} times, last: {e.Message}. Run again to resume from the partial file {incomplete}.", e);
                    await Task.Delay(TimeSpan.FromMilliseconds(250 << (attempt - 1)), ct);
                }
            }
            if (mismatch is null) stream.Flush(flushToDisk: true);
        }
        if (mismatch is not null)
        {
            File.Delete(incomplete);
            throw new SharpTuneException(
                $"'{file.Path}' of {repo.Description} from {file.Download.GetLeftPart(UriPartial.Authority)} is corrupt: " +
                $"its SHA-256 is {mismatch}, expected {file.Etag}. The download was deleted; run again.");
        }
        File.Move(incomplete, repo.BlobPath(file.Etag), overwrite: true);
    }

    /// <summary>One attempt: asks for the bytes after those already in <paramref name="stream"/> (starting over when the
    /// server ignores the range) and appends them. Throws a transient error when the connection ends early. Returns
    /// the SHA-256 of the whole file when its ETag is one (LFS files), else null.</summary>
    async Task<string?> FetchIntoAsync(FileStream stream, RemoteFile file, Action<long> reportBytes, CancellationToken ct)
    {
        using var hash = HubNames.IsSha256(file.Etag) ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        long start = stream.Length;
        if (start > file.Size) start = 0;
        stream.SetLength(start);
        if (start == file.Size)
        {
            await HashPrefixAsync(stream, start, hash, ct);
            reportBytes(start);
            return Digest(hash);
        }

        using var response = await _hub.SendAsync(HttpMethod.Get, file.Download, followCrossOrigin: true, start > 0 ? start : null, ct);
        if (response.StatusCode == HttpStatusCode.PartialContent)
        {
            if (response.Content.Headers.ContentRange?.From != start)
            {
                stream.SetLength(0);
                throw new IOException($"{file.Download.Host} answered a request for bytes {start}- with the range " +
                                      $"'{response.Content.Headers.ContentRange}'; starting over.");
            }
        }
        else if (response.IsSuccessStatusCode)
        {
            start = 0; // the whole file came instead of the range
            stream.SetLength(0);
        }
        else if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            stream.SetLength(0);
            throw new IOException($"{file.Download.Host} refused to resume at byte {start}; starting over.");
        }
        else if ((int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests)
            throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase} from {file.Download.Host}");
        else
            throw new SharpTuneException($"Downloading '{file.Path}' from {file.Download.GetLeftPart(UriPartial.Path)} failed: " +
                                         $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}.");

        await HashPrefixAsync(stream, start, hash, ct);
        reportBytes(start);

        await using var body = await response.Content.ReadAsStreamAsync(ct);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
            long position = start;
            while (true)
            {
                idle.CancelAfter(IdleTimeout);
                int read = await body.ReadAsync(buffer, idle.Token);
                if (read == 0) break;
                if (position + read > file.Size)
                {
                    stream.SetLength(0);
                    throw new SharpTuneException($"{file.Download.Host} sent more than the {file.Size} bytes announced for '{file.Path}'.");
                }
                await stream.WriteAsync(buffer.AsMemory(0, read), ct);
                hash?.AppendData(buffer, 0, read);
                position += read;
                reportBytes(position);
            }
            if (position < file.Size)
                throw new IOException($"the connection closed after {position} of {file.Size} bytes");
            return Digest(hash);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    static string? Digest(IncrementalHash? hash) => hash is null ? null : Convert.ToHexStringLower(hash.GetHashAndReset());

    // A resumed download must hash the bytes kept from before, too.
    static async Task HashPrefixAsync(FileStream stream, long length, IncrementalHash? hash, CancellationToken ct)
    {
        stream.Position = 0;
        if (hash is not null && length > 0)
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
            try
            {
                long left = length;
                while (left > 0)
                {
                    int read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct);
                    if (read == 0) throw new IOException($"{stream.Name} shrank while being read");
                    hash.AppendData(buffer, 0, read);
                    left -= read;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        stream.Position = length;
    }

    static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        SharpTuneException => false,
        OperationCanceledException => !ct.IsCancellationRequested, // the idle timeout, not the caller
        HttpRequestException or IOException => true,
        _ => false,
    };

    async Task<HttpResponseMessage> SendToHubAsync(HttpMethod method, Uri uri, CachedRepo repo, string revision, CancellationToken ct)
    {
        try
        {
            return await _hub.SendAsync(method, uri, followCrossOrigin: false, rangeStart: null, ct);
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            string cachedHint = repo.CachedSnapshot(revision) is null
                ? ""
                : " The cache has this revision: set HF_HUB_OFFLINE=1 to use it without the network.";
            throw new SharpTuneException(
                $"Cannot reach the Hugging Face Hub at {_endpointText}: {e.Message} Check the network connection and HF_ENDPOINT, " +
                $"or set HF_HUB_OFFLINE=1 to use only the local cache.{cachedHint}", e);
        }
    }

    SharpTuneException HttpError(HttpResponseMessage response, CachedRepo repo, string revision, string? file)
    {
        int status = (int)response.StatusCode;
        string? errorCode = HubHttp.Header(response, "X-Error-Code");
        string? serverMessage = HubHttp.Header(response, "X-Error-Message");
        string detail = $"HTTP {status}{(serverMessage is null ? "" : ": " + serverMessage)}";
        string page = $"{_endpointText}/{(repo.Type == RepoType.Dataset ? "datasets/" : "")}{repo.RepoId}";
        string message = (errorCode, status) switch
        {
            ("RepoNotFound", _) => RepoNotFound(),
            (null, 404) when file is null => RepoNotFound(),
            ("RevisionNotFound", _) =>
                $"Revision '{revision}' was not found in {repo.Description} on {_endpointText} ({detail}).",
            ("EntryNotFound", _) or (_, 404) =>
                $"File '{file}' was not found in {repo.Description} at revision '{revision}' on {_endpointText} ({detail}).",
            ("GatedRepo", _) or (_, 401 or 403) =>
                $"Access to {repo.Description} was refused by {_endpointText} ({detail}). The repository is gated or private: " +
                $"open {page} while logged in and accept its license/conditions, then set HF_TOKEN to an access token of that " +
                "account (https://huggingface.co/settings/tokens) or save it in $HF_HOME/token. " +
                (_options.Token is null ? "No token was sent." : "The token that was sent does not give access."),
            (_, 429) =>
                $"{_endpointText} is rate-limiting requests ({detail}). Wait and retry; setting HF_TOKEN raises the limits.",
            _ => $"{_endpointText} answered {detail} {response.ReasonPhrase} for {response.RequestMessage?.RequestUri}.",
        };
        return new SharpTuneException(message);

        string RepoNotFound() =>
            $"{Capitalized(repo.Description)} (revision '{revision}') was not found on {_endpointText} ({detail}). " +
            "Check the id and revision; if the repository is private, set HF_TOKEN to a token that can read it.";
    }

    ParallelOptions ParallelOptions(CancellationToken ct) => new() { MaxDegreeOfParallelism = _options.MaxParallel, CancellationToken = ct };

    static string? NormalizeEtag(string? etag)
    {
        if (etag is null) return null;
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        return etag.Trim('"');
    }

    static string Describe(IReadOnlyList<FilePattern>? patterns) =>
        patterns is null ? "any pattern" : "the patterns " + string.Join(", ", patterns.Select(p => $"'{p.Text}'"));

    static string Capitalized(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    static HubOptions Validate(HubOptions options)
    {
        if (options.MaxParallel < 1)
            throw new SharpTuneException($"HubOptions.MaxParallel must be at least 1, got {options.MaxParallel}.");
        return options;
    }

    static Uri EndpointUri(string? endpoint)
    {
        string text = (endpoint ?? HubOptions.DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new SharpTuneException($"Invalid Hub endpoint '{endpoint}' (HF_ENDPOINT): expected an http(s) URL such as {HubOptions.DefaultEndpoint}.");
        return uri;
    }

    /// <summary>A file to fetch: its repository path, blob name (ETag), size and where its bytes are.</summary>
    sealed record RemoteFile(string Path, string Etag, long Size, Uri Download);

    /// <summary>Overall byte and file counts shared by the parallel downloads; reports are thinned to one per MiB per file.</summary>
    sealed class ProgressTracker(IProgress<HubProgress>? progress, int filesTotal, long bytesTotal)
    {
        long _bytesDone;
        int _filesDone;

        /// <summary>Notes that <paramref name="file"/> now has <paramref name="done"/> bytes, of which
        /// <paramref name="counted"/> were counted before; returns the new counted amount.</summary>
        public long Advanced(RemoteFile file, long done, long counted)
        {
            long total = Interlocked.Add(ref _bytesDone, done - counted);
            if (progress is not null && (done == 0 || done == file.Size || done / ReportEveryBytes != counted / ReportEveryBytes))
                progress.Report(new HubProgress(file.Path, done, file.Size, total, bytesTotal, Volatile.Read(ref _filesDone), filesTotal));
            return done;
        }

        public void Completed(string path, long size, long alreadyCounted)
        {
            long total = Interlocked.Add(ref _bytesDone, size - alreadyCounted);
            int files = Interlocked.Increment(ref _filesDone);
            progress?.Report(new HubProgress(path, size, size, total, bytesTotal, files, filesTotal));
        }
    }
}
