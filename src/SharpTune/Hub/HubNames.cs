using System.Text.RegularExpressions;

namespace SharpTune.Hub;

/// <summary>Checks for names that become paths in the cache: repository ids, revisions, file names from the
/// server, ETags and commit hashes. Anything that could leave the cache folder is refused.</summary>
internal static partial class HubNames
{
    /// <summary>The reason <paramref name="path"/> is not a safe relative path of '/'-separated plain
    /// segments, or null when it is.</summary>
    public static string? UnsafePathReason(string path)
    {
        if (path.Length == 0) return "it is empty";
        if (path.Contains('\0')) return "it contains a NUL character";
        if (path.Contains('\\')) return "it contains a backslash";
        if (path.StartsWith('/')) return "it is an absolute path";
        if (DriveLetter().IsMatch(path)) return "it starts with a drive letter";
        foreach (string segment in path.Split('/'))
        {
            if (segment.Length == 0) return "it has an empty path segment";
            if (segment is "." or "..") return $"it has a '{segment}' path segment";
        }
        return null;
    }

    /// <summary>Checks a file name listed by the server; <paramref name="source"/> says where it came from.</summary>
    public static void CheckRepoFile(string path, string source)
    {
        if (UnsafePathReason(path) is { } reason)
            throw new SharpTuneException($"Refusing file name '{Printable(path)}' from {source}: {reason}.");
    }

    public static void CheckRevision(string revision)
    {
        if (UnsafePathReason(revision) is { } reason)
            throw new SharpTuneException($"Invalid revision '{Printable(revision)}': {reason}.");
    }

    public static bool IsCommitHash(string s) => CommitHash().IsMatch(s);

    public static void CheckCommitHash(string sha, string source)
    {
        if (!IsCommitHash(sha))
            throw new SharpTuneException($"{source} gave '{Printable(sha)}' as commit hash; expected 40 lowercase hex digits.");
    }

    /// <summary>ETags become blob file names: letters, digits, '-', '_' and '.' only, not starting with '.'.</summary>
    public static void CheckEtag(string etag, string source)
    {
        if (!Etag().IsMatch(etag))
            throw new SharpTuneException($"{source} gave an unusable ETag '{Printable(etag)}' (expected a hex digest).");
    }

    public static bool IsSha256(string s) => Sha256().IsMatch(s);

    /// <summary>A Hub repository id: "name" or "org/name", each part letters, digits, '-', '_', '.', not starting or
    /// ending with '-' or '.', without "--" or "..", at most 96 characters (the Hub's own rule).</summary>
    public static bool IsRepoId(string s, bool requireOrg)
    {
        string[] parts = s.Split('/');
        if (parts.Length > 2 || (requireOrg && parts.Length != 2)) return false;
        return parts.All(p => RepoIdPart().IsMatch(p) && !p.Contains("--") && !p.Contains(".."));
    }

    public static void CheckRepoId(string repoId)
    {
        if (!IsRepoId(repoId, requireOrg: false))
            throw new SharpTuneException(
                $"Invalid Hub repository id '{Printable(repoId)}': expected org/name (letters, digits, '-', '_', '.').");
    }

    static string Printable(string s) => s.Replace("\0", "\\0");

    [GeneratedRegex("^[A-Za-z]:")]
    private static partial Regex DriveLetter();

    [GeneratedRegex("^[0-9a-f]{40}\\z")]
    private static partial Regex CommitHash();

    [GeneratedRegex("^[0-9a-f]{64}\\z")]
    private static partial Regex Sha256();

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}\\z")]
    private static partial Regex Etag();

    [GeneratedRegex("^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?\\z")]
    private static partial Regex RepoIdPart();
}
