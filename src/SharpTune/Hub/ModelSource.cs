namespace SharpTune.Hub;

/// <summary>Tells a Hub repository reference <c>org/name[@revision]</c> from a local folder, and resolves either to a
/// local folder.</summary>
public static class ModelSource
{
    /// <summary>True when <paramref name="s"/> has the form org/name[@revision] and is not an existing local
    /// folder or file (a local path always wins).</summary>
    public static bool LooksLikeRepoId(string s) =>
        !Directory.Exists(s) && !File.Exists(s) && TrySplit(s, out _, out _);

    /// <summary>Splits org/name[@revision] into the repository id and the revision (null when absent). Syntax only:
    /// call <see cref="LooksLikeRepoId"/> first to let a local folder win.</summary>
    public static (string RepoId, string? Revision) Parse(string s) =>
        TrySplit(s, out string repoId, out string? revision)
            ? (repoId, revision)
            : throw new SharpTuneException(
                $"'{s}' is neither an existing local folder nor a Hugging Face repository reference of the form org/name[@revision].");

    /// <summary>A model's local folder: <paramref name="source"/> itself when it is a folder, otherwise a Hub id
    /// (org/name[@revision]) downloaded into the Hugging Face cache (a cached snapshot is not downloaded again).</summary>
    public static string ResolveModel(string source, IProgress<HubProgress>? progress = null, HubOptions? options = null) =>
        Fetch(source, dataset: false, progress, options);

    /// <summary>A dataset's local path: a file, a folder or a name that is not a Hub id (e.g. a bundled sample)
    /// as is, otherwise a Hub dataset id downloaded into the Hugging Face cache.</summary>
    public static string ResolveDataset(string source, IProgress<HubProgress>? progress = null, HubOptions? options = null) =>
        File.Exists(source) || Directory.Exists(source) || !LooksLikeRepoId(source)
            ? source : Fetch(source, dataset: true, progress, options);

    static string Fetch(string source, bool dataset, IProgress<HubProgress>? progress, HubOptions? options)
    {
        if (Directory.Exists(source)) return source;
        if (!LooksLikeRepoId(source))
            throw new SharpTuneException($"{source}: no such folder, and not a Hub id of the form org/name[@revision]");
        var (repo, revision) = Parse(source);
        var client = new HubClient(options ?? HubOptions.FromEnvironment());
        return dataset
            ? client.DownloadDatasetAsync(repo, revision, null, progress).GetAwaiter().GetResult()
            : client.DownloadModelAsync(repo, revision, null, progress).GetAwaiter().GetResult();
    }

    static bool TrySplit(string s, out string repoId, out string? revision)
    {
        int at = s.IndexOf('@');
        repoId = at < 0 ? s : s[..at];
        revision = at < 0 ? null : s[(at + 1)..];
        return HubNames.IsRepoId(repoId, requireOrg: true)
               && (revision is null || HubNames.UnsafePathReason(revision) is null);
    }
}
