namespace SharpTune.Hub;

/// <summary>How <see cref="HubClient"/> reaches the Hugging Face Hub and where it caches files.</summary>
/// <param name="Endpoint">Hub base URL; null means https://huggingface.co.</param>
/// <param name="Token">Access token sent as "Authorization: Bearer" to the endpoint only; null for anonymous access.</param>
/// <param name="CacheDir">The hub cache folder (the one holding models--org--name); null means the standard
/// location from <see cref="DefaultCacheDir()"/>.</param>
/// <param name="Offline">Resolve from the cache only, never touching the network.</param>
/// <param name="MaxParallel">How many files are fetched at the same time.</param>
public sealed record HubOptions(string? Endpoint = null, string? Token = null, string? CacheDir = null, bool Offline = false, int MaxParallel = 8)
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Options as huggingface_hub reads them: HF_ENDPOINT, HF_TOKEN (else the token file
    /// $HF_TOKEN_PATH or $HF_HOME/token), HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE.</summary>
    public static HubOptions FromEnvironment() =>
        FromEnvironment(Environment.GetEnvironmentVariable, Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    /// <summary>The hub cache huggingface_hub uses: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.</summary>
    public static string DefaultCacheDir() =>
        DefaultCacheDir(Environment.GetEnvironmentVariable, Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    internal static HubOptions FromEnvironment(Func<string, string?> env, string home) => new(
        Endpoint: Value(env, "HF_ENDPOINT")?.TrimEnd('/'),
        Token: TokenFromEnvironment(env, home),
        CacheDir: DefaultCacheDir(env, home),
        Offline: IsTrue(Value(env, "HF_HUB_OFFLINE") ?? Value(env, "TRANSFORMERS_OFFLINE")));

    internal static string DefaultCacheDir(Func<string, string?> env, string home) =>
        ExpandHome(Value(env, "HF_HUB_CACHE") ?? Value(env, "HUGGINGFACE_HUB_CACHE"), home)
        ?? Path.Combine(HfHome(env, home), "hub");

    static string HfHome(Func<string, string?> env, string home) =>
        ExpandHome(Value(env, "HF_HOME"), home)
        ?? Path.Combine(ExpandHome(Value(env, "XDG_CACHE_HOME"), home) ?? Path.Combine(home, ".cache"), "huggingface");

    static string? TokenFromEnvironment(Func<string, string?> env, string home)
    {
        string? token = Value(env, "HF_TOKEN") ?? Value(env, "HUGGING_FACE_HUB_TOKEN");
        if (token is not null) return token.Trim();
        string tokenFile = ExpandHome(Value(env, "HF_TOKEN_PATH"), home) ?? Path.Combine(HfHome(env, home), "token");
        if (!File.Exists(tokenFile)) return null;
        string fromFile = File.ReadAllText(tokenFile).Trim();
        return fromFile.Length == 0 ? null : fromFile;
    }

    static string? Value(Func<string, string?> env, string name) => env(name) is { Length: > 0 } v ? v : null;

    // huggingface_hub treats 1/ON/YES/TRUE (any case) as true.
    static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    static string? ExpandHome(string? path, string home) => path switch
    {
        null => null,
        "~" => home,
        _ when path.StartsWith("~/", StringComparison.Ordinal) => Path.Combine(home, path[2..]),
        _ => path,
    };
}
