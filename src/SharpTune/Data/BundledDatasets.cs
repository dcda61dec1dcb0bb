using System.Reflection;
using System.Security.Cryptography;

namespace SharpTune.Data;

/// <summary>
/// Datasets embedded in the library as resources <c>SharpTune.Samples.NAME.SPLIT.json</c>, read through a
/// <see cref="DatasetSource"/> path <c>sample:NAME</c> (the demo's are named in <c>Demo/SampleData</c>).
/// </summary>
internal static class BundledDatasets
{
    public const string Scheme = "sample:";

    private const string ResourcePrefix = "SharpTune.Samples.";

    private static Assembly Assembly => typeof(BundledDatasets).Assembly;

    /// <summary>The bundled datasets' paths, e.g. <c>sample:medical-calculations</c>.</summary>
    public static IReadOnlyList<string> Names { get; } = Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".json", StringComparison.Ordinal))
        .Select(n => n[ResourcePrefix.Length..^".json".Length])
        .Where(n => n.Contains('.'))
        .Select(n => Scheme + n[..n.LastIndexOf('.')])
        .Distinct().Order(StringComparer.Ordinal).ToList();

    public static IReadOnlyList<DataFile> Files(string path, string? subset, string split)
    {
        string name = path[Scheme.Length..];
        if (!Names.Contains(path))
            throw new SharpTuneException($"unknown sample dataset '{path}'; bundled samples: {string.Join(", ", Names)}");
        if (subset is not null)
            throw new SharpTuneException($"{path} has no subsets (asked for '{subset}')");
        string resource = $"{ResourcePrefix}{name}.{split}.json";
        if (Assembly.GetManifestResourceInfo(resource) is null)
        {
            string splits = string.Join(", ", Assembly.GetManifestResourceNames()
                .Where(n => n.StartsWith($"{ResourcePrefix}{name}.", StringComparison.Ordinal))
                .Select(n => n[($"{ResourcePrefix}{name}.".Length)..^".json".Length]));
            throw new SharpTuneException($"{path} has no split '{split}'; it has: {splits}");
        }
        string identity;
        using (var stream = Open(resource))
            identity = $"{path}/{split}.json|{Convert.ToHexStringLower(SHA256.HashData(stream))}";
        return [new DataFile($"{path}/{split}.json", DataFileKind.Json, () => Open(resource), identity)];
    }

    private static Stream Open(string resource) =>
        Assembly.GetManifestResourceStream(resource) ?? throw new InvalidOperationException($"resource {resource} is missing");
}
