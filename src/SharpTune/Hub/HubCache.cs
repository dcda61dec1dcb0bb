namespace SharpTune.Hub;

internal enum RepoType { Model, Dataset }

/// <summary>One repository's folder in a huggingface_hub cache:
/// <c>{cache}/{models|datasets}--{org}--{name}/</c> holding <c>blobs/{etag}</c> (file contents, named by ETag),
/// <c>snapshots/{commit}/{path}</c> (relative symlinks into blobs, or copies where symlinks are not possible) and
/// <c>refs/{revision}</c> (the commit a branch or tag pointed to when last resolved).</summary>
internal sealed class CachedRepo
{
    public CachedRepo(string cacheDir, RepoType type, string repoId)
    {
        HubNames.CheckRepoId(repoId);
        Type = type;
        RepoId = repoId;
        string prefix = type == RepoType.Model ? "models" : "datasets";
        Folder = Path.Combine(Path.GetFullPath(cacheDir), $"{prefix}--{repoId.Replace("/", "--")}");
    }

    public RepoType Type { get; }
    public string RepoId { get; }
    public string Folder { get; }
    public string Description => $"{(Type == RepoType.Model ? "model" : "dataset")} '{RepoId}'";

    public string BlobPath(string etag) => Path.Combine(Folder, "blobs", etag);

    public string IncompletePath(string etag) => BlobPath(etag) + ".incomplete";

    public string SnapshotFolder(string commit) => Path.Combine(Folder, "snapshots", commit);

    /// <summary>Where <paramref name="repoPath"/> of <paramref name="commit"/> lives; the path must already have
    /// passed <see cref="HubNames.CheckRepoFile"/>, and is checked again to stay inside the snapshot folder.</summary>
    public string PointerPath(string commit, string repoPath)
    {
        string snapshot = SnapshotFolder(commit);
        string full = Path.GetFullPath(Path.Combine(snapshot, repoPath.Replace('/', Path.DirectorySeparatorChar)));
        if (!full.StartsWith(snapshot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new SharpTuneException($"Refusing file name '{repoPath}': it resolves outside {snapshot}.");
        return full;
    }

    /// <summary>Size of the file a snapshot entry points to, or null when the entry is missing or its link is broken.</summary>
    public static long? ExistingFileSize(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (info.LinkTarget is null) return info.Length;
        return info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo { Exists: true } target ? target.Length : null;
    }

    /// <summary>Makes the snapshot entry <paramref name="pointer"/> show the blob: a relative symlink as
    /// huggingface_hub makes it, or a copy where symlinks cannot be made. The entry appears atomically.</summary>
    public static void LinkPointer(string blob, string pointer, bool useSymlinks)
    {
        string folder = Path.GetDirectoryName(pointer)!;
        Directory.CreateDirectory(folder);
        string temp = TempName(pointer);
        try
        {
            if (!useSymlinks || !TrySymlink(temp, Path.GetRelativePath(folder, blob)))
                File.Copy(blob, temp);
            File.Move(temp, pointer, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    static bool TrySymlink(string path, string target)
    {
        try
        {
            File.CreateSymbolicLink(path, target);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>Takes the lock huggingface_hub takes before writing a blob, <c>{cache}/.locks/{repo folder}/{etag}.lock</c>,
    /// waiting while another process (SharpTune or huggingface_hub) holds it. Dispose the stream to release it.</summary>
    public async Task<FileStream> LockBlobAsync(string etag, CancellationToken ct)
    {
        string folder = Path.Combine(Path.GetDirectoryName(Folder)!, ".locks", Path.GetFileName(Folder));
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, etag + ".lock");
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive flock on Unix: the same lock as Python's filelock.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (IsHeldElsewhere(e))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
            }
        }
    }

    // EWOULDBLOCK from flock (Linux 11, macOS 35) or Windows' sharing violation.
    static bool IsHeldElsewhere(IOException e) => e.HResult is 11 or 35 or unchecked((int)0x80070020);

    /// <summary>Marks the cache folder for backup tools (https://bford.info/cachedir/), as huggingface_hub does.</summary>
    public static void TagCacheFolder(string cacheDir)
    {
        string path = Path.Combine(cacheDir, "CACHEDIR.TAG");
        if (File.Exists(path)) return;
        WriteAtomically(path, "Signature: 8a477f597d28d172789f06886806bc55\n" +
                              "# This file is a cache directory tag created by SharpTune (a huggingface_hub cache).\n" +
                              "# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n");
    }

    /// <summary>Records that <paramref name="revision"/> (a branch or tag) resolved to <paramref name="commit"/>;
    /// written without a trailing newline, like huggingface_hub.</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit) return;
        WriteAtomically(RefPath(revision), commit);
    }

    static void WriteAtomically(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = TempName(path);
        try
        {
            File.WriteAllText(temp, text);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>The commit a revision resolves to from the cache alone, or null when the cache does not know it.</summary>
    public string? CachedCommit(string revision)
    {
        if (HubNames.IsCommitHash(revision)) return revision;
        string path = RefPath(revision);
        if (!File.Exists(path)) return null;
        string commit = File.ReadAllText(path).Trim();
        return HubNames.IsCommitHash(commit) ? commit : null;
    }

    /// <summary>The cached snapshot folder of a revision, or null when it is not in the cache.</summary>
    public string? CachedSnapshot(string revision) =>
        CachedCommit(revision) is { } commit && Directory.Exists(SnapshotFolder(commit)) ? SnapshotFolder(commit) : null;

    /// <summary>Paths (with '/') of the files in a snapshot folder.</summary>
    public static IEnumerable<string> SnapshotFiles(string snapshotFolder) =>
        Directory.EnumerateFiles(snapshotFolder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshotFolder, f).Replace(Path.DirectorySeparatorChar, '/'));

    string RefPath(string revision)
    {
        HubNames.CheckRevision(revision);
        return Path.Combine(Folder, "refs", revision.Replace('/', Path.DirectorySeparatorChar));
    }

    static string TempName(string path) => $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
}
