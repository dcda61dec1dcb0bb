using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace SharpTune.Tests.Hub;

/// <summary>A file of a fake repository. LFS files are served through a CDN redirect with X-Linked-Etag = SHA-256,
/// others directly with ETag = git blob SHA-1, as the Hub does.</summary>
internal sealed record FakeFile(string Path, byte[] Content, bool Lfs = false)
{
    /// <summary>Bytes the CDN serves instead of <see cref="Content"/> (to test verification).</summary>
    public byte[]? Served { get; init; }

    /// <summary>ETag the Hub announces instead of the real one (to test unsafe ETags).</summary>
    public string? EtagOverride { get; init; }

    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Content));

    public string GitSha1 =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {Content.Length}\0"), .. Content]));

    public string Etag => EtagOverride ?? (Lfs ? Sha256 : GitSha1);

    public static FakeFile Text(string path, string text) => new(path, Encoding.UTF8.GetBytes(text));

    /// <summary>An LFS file of bytes (i * mul + add) % 256, as scripts/fixtures/hub_cache.py makes them.</summary>
    public static FakeFile Pattern(string path, int size, int mul, int add) =>
        new(path, Enumerable.Range(0, size).Select(i => (byte)((i * mul + add) % 256)).ToArray(), Lfs: true);

    public static FakeFile Random(string path, int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return new FakeFile(path, bytes, Lfs: true);
    }
}

/// <param name="Kind">"models" or "datasets", as in the Hub's URLs.</param>
internal sealed record FakeRepo(string Kind, string Id, string Commit, IReadOnlyList<FakeFile> Files)
{
    /// <summary>When set, resolve answers 401 GatedRepo unless this bearer token is sent.</summary>
    public string? RequiredToken { get; init; }

    /// <summary>File names the revision API lists instead of the real ones (to test unsafe names).</summary>
    public IReadOnlyList<string>? Listing { get; init; }

    /// <summary>Branches and tags that resolve to <see cref="Commit"/>.</summary>
    public IReadOnlyList<string> Revisions { get; init; } = ["main"];

    /// <summary>An old id that the Hub redirects (relative 307) to this one, as for a renamed repository.</summary>
    public string? FormerId { get; init; }
}

internal sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers)
{
    public string? Header(string name) => Headers.GetValueOrDefault(name.ToLowerInvariant());
}

/// <summary>A minimal HTTP/1.1 server on 127.0.0.1 with the Hub's URL layout: the revision API, resolve (with CDN
/// redirects to http://localhost:port/cdn/..., a different origin), Range requests and error codes. Every response
/// closes its connection, which keeps the server simple.</summary>
internal sealed class FakeHub : IDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly CancellationTokenSource _stop = new();
    readonly ConcurrentDictionary<string, int> _cdnGets = new();
    int _cdnInFlight, _maxCdnInFlight;

    public FakeHub(params FakeRepo[] repos)
    {
        Repos = repos;
        _listener.Start();
        _ = Task.Run(AcceptLoopAsync);
    }

    public IReadOnlyList<FakeRepo> Repos { get; }
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public string Endpoint => $"http://127.0.0.1:{Port}";
    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>SHA-256s of files whose first CDN download is cut off after half the bytes.</summary>
    public HashSet<string> DropFirstDownload { get; } = [];

    /// <summary>Makes the CDN answer Range requests with the whole file (200), as some servers do.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Holds each CDN answer until this many CDN downloads run at once (at most 300 ms), so the highest
    /// concurrency the client reaches shows in <see cref="MaxCdnInFlight"/>.</summary>
    public int HoldCdnUntilConcurrent { get; set; }

    public int MaxCdnInFlight => Volatile.Read(ref _maxCdnInFlight);

    public int Count(string method, string pathPrefix) =>
        Requests.Count(r => r.Method == method && r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }

    async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var request = await ReadRequestAsync(stream);
                if (request is null) return;
                Requests.Enqueue(request);
                await RespondAsync(request, stream);
            }
            catch (IOException)
            {
                // The client went away; nothing to answer.
            }
        }
    }

    static async Task<RecordedRequest?> ReadRequestAsync(NetworkStream stream)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (!EndsWithBlankLine(head))
        {
            if (await stream.ReadAsync(one) == 0) return null;
            head.Add(one[0]);
        }
        string[] lines = Encoding.ASCII.GetString([.. head]).Split("\r\n");
        string[] requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>();
        foreach (string line in lines.Skip(1).Where(l => l.Length > 0))
        {
            int colon = line.IndexOf(':');
            headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
        }
        return new RecordedRequest(requestLine[0], requestLine[1], headers);
    }

    static bool EndsWithBlankLine(List<byte> b) =>
        b.Count >= 4 && b[^4] == '\r' && b[^3] == '\n' && b[^2] == '\r' && b[^1] == '\n';

    async Task RespondAsync(RecordedRequest request, NetworkStream stream)
    {
        string[] segments = request.Path.Split('?')[0].Split('/', StringSplitOptions.RemoveEmptyEntries)
            .Select(Uri.UnescapeDataString).ToArray();
        if (segments is ["api", var kind, var org, var name, "revision", var revision])
            await RevisionApiAsync(request, stream, kind, $"{org}/{name}", revision);
        else if (segments is ["cdn", var sha])
            await CdnAsync(request, stream, sha);
        else if (segments is ["datasets", var dOrg, var dName, "resolve", var dRev, .. var dPath])
            await ResolveAsync(request, stream, "datasets", $"{dOrg}/{dName}", dRev, string.Join('/', dPath));
        else if (segments is [var mOrg, var mName, "resolve", var mRev, .. var mPath])
            await ResolveAsync(request, stream, "models", $"{mOrg}/{mName}", mRev, string.Join('/', mPath));
        else
            await WriteAsync(stream, request, 404, "Not Found", []);
    }

    FakeRepo? Find(string kind, string id) => Repos.FirstOrDefault(r => r.Kind == kind && (r.Id == id || r.FormerId == id));

    async Task RevisionApiAsync(RecordedRequest request, NetworkStream stream, string kind, string id, string revision)
    {
        var repo = Find(kind, id);
        if (repo is null)
        {
            await WriteAsync(stream, request, 404, "Not Found", [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")]);
            return;
        }
        if (!repo.Revisions.Contains(revision) && revision != repo.Commit)
        {
            await WriteAsync(stream, request, 404, "Not Found", [("X-Error-Code", "RevisionNotFound"), ("X-Error-Message", "Invalid rev id")]);
            return;
        }
        var names = repo.Listing ?? repo.Files.Select(f => f.Path).ToList();
        var json = JsonSerializer.SerializeToUtf8Bytes(new
        {
            id = repo.Id,
            sha = repo.Commit,
            siblings = names.Select(n => new { rfilename = n }),
        });
        await WriteAsync(stream, request, 200, "OK", [("Content-Type", "application/json")], json);
    }

    async Task ResolveAsync(RecordedRequest request, NetworkStream stream, string kind, string id, string revision, string path)
    {
        var repo = Find(kind, id);
        if (repo is null)
        {
            await WriteAsync(stream, request, 404, "Not Found", [("X-Error-Code", "RepoNotFound")]);
            return;
        }
        if (id != repo.Id)
        {
            string prefix = kind == "datasets" ? "/datasets/" : "/";
            await WriteAsync(stream, request, 307, "Temporary Redirect",
                [("Location", $"{prefix}{repo.Id}/resolve/{Uri.EscapeDataString(revision)}/{path}")]);
            return;
        }
        if (repo.RequiredToken is not null && request.Header("Authorization") != $"Bearer {repo.RequiredToken}")
        {
            await WriteAsync(stream, request, 401, "Unauthorized",
                [("X-Error-Code", "GatedRepo"), ("X-Error-Message", "Access to this model is restricted.")]);
            return;
        }
        var file = repo.Files.FirstOrDefault(f => f.Path == path);
        if ((!repo.Revisions.Contains(revision) && revision != repo.Commit) || file is null)
        {
            await WriteAsync(stream, request, 404, "Not Found", [("X-Error-Code", "EntryNotFound")]);
            return;
        }
        if (file.Lfs)
        {
            await WriteAsync(stream, request, 302, "Found",
            [
                ("Location", $"http://localhost:{Port}/cdn/{file.Sha256}?signature=abc"),
                ("X-Repo-Commit", repo.Commit),
                ("X-Linked-Etag", $"\"{file.Etag}\""),
                ("X-Linked-Size", file.Content.Length.ToString()),
                ("ETag", "\"0123456789abcdef0123456789abcdef01234567\""), // the LFS pointer's blob, not the content
            ]);
            return;
        }
        await WriteAsync(stream, request, 200, "OK", [("X-Repo-Commit", repo.Commit), ("ETag", $"\"{file.Etag}\"")], file.Content);
    }

    async Task CdnAsync(RecordedRequest request, NetworkStream stream, string sha)
    {
        var file = Repos.SelectMany(r => r.Files).FirstOrDefault(f => f.Lfs && f.Sha256 == sha);
        if (file is null)
        {
            await WriteAsync(stream, request, 404, "Not Found", []);
            return;
        }
        byte[] content = file.Served ?? file.Content;
        int now = Interlocked.Increment(ref _cdnInFlight);
        try
        {
            UpdateMax(now);
            var holdUntil = DateTime.UtcNow.AddMilliseconds(300);
            while (Volatile.Read(ref _cdnInFlight) < HoldCdnUntilConcurrent && DateTime.UtcNow < holdUntil)
                await Task.Delay(5);

            long start = 0;
            if (!IgnoreRange && request.Header("Range") is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
                start = long.Parse(range["bytes=".Length..^1]);
            bool drop = _cdnGets.AddOrUpdate(sha, 1, (_, n) => n + 1) == 1 && DropFirstDownload.Contains(sha);
            byte[] body = content[(int)start..];
            var headers = new List<(string, string)> { ("Accept-Ranges", "bytes") };
            if (start > 0)
                headers.Add(("Content-Range", $"bytes {start}-{content.Length - 1}/{content.Length}"));
            await WriteAsync(stream, request, start > 0 ? 206 : 200, start > 0 ? "Partial Content" : "OK", headers, body,
                sendOnly: drop ? body.Length / 2 : null);
        }
        finally
        {
            Interlocked.Decrement(ref _cdnInFlight);
        }
    }

    void UpdateMax(int now)
    {
        int seen;
        while (now > (seen = Volatile.Read(ref _maxCdnInFlight)) && Interlocked.CompareExchange(ref _maxCdnInFlight, now, seen) != seen) { }
    }

    /// <summary>Writes a response; <paramref name="sendOnly"/> announces the whole body but stops after that many
    /// bytes and closes the connection, like a network failure mid-file.</summary>
    static async Task WriteAsync(NetworkStream stream, RecordedRequest request, int status, string reason,
        IEnumerable<(string Name, string Value)> headers, byte[]? body = null, int? sendOnly = null)
    {
        body ??= [];
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (name, value) in headers) head.Append($"{name}: {value}\r\n");
        head.Append($"Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()));
        if (request.Method != "HEAD")
            await stream.WriteAsync(body.AsMemory(0, sendOnly ?? body.Length));
        await stream.FlushAsync();
    }
}
