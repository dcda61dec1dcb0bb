namespace SharpTune.Hub;

/// <summary>Tells a Hub repository reference <c>org/name[@revision]</c> from a local folder.</summary>
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

    static bool TrySplit(string s, out string repoId, out string? revision)
    {
        int at = s.IndexOf('@');
        repoId = at < 0 ? s : s[..at];
        revision = at < 0 ? null : s[(at + 1)..];
        return HubNames.IsRepoId(repoId, requireOrg: true)
               && (revision is null || HubNames.UnsafePathReason(revision) is null);
    }
}
