using System.Reflection;
using System.Security.Cryptography;

namespace SharpTune.Data;

/// <summary>
/// Datasets bundled in the library (embedded resources), so that an installed tool can train without
/// downloading anything. Use them as a <see cref="DatasetSource"/> path: <c>sample:medical-calculations</c>.
/// </summary>
public static class SampleData
{
    public const string Scheme = "sample:";

    /// <summary>Clinical arithmetic in the medical-o1-reasoning-SFT schema (Question, Complex_CoT, Response):
    /// split <c>train</c> (400 rows) and <c>test</c> (40 rows). Written by <see cref="SampleDataGenerator"/>.</summary>
    public static DatasetSource MedicalCalculations { get; } = new("sample:medical-calculations");

    public static IReadOnlyList<string> Names { get; } = ["sample:medical-calculations"];

    private const string ResourcePrefix = "SharpTune.Samples.";

    internal static IReadOnlyList<DataFile> Files(string path, string? subset, string split)
    {
        string name = path[Scheme.Length..];
        if (!Names.Contains(path))
            throw new SharpTuneException($"unknown sample dataset '{path}'; bundled samples: {string.Join(", ", Names)}");
        if (subset is not null)
            throw new SharpTuneException($"{path} has no subsets (asked for '{subset}')");
        string resource = $"{ResourcePrefix}{name}.{split}.json";
        var assembly = typeof(SampleData).Assembly;
        if (assembly.GetManifestResourceInfo(resource) is null)
        {
            string splits = string.Join(", ", assembly.GetManifestResourceNames()
                .Where(n => n.StartsWith($"{ResourcePrefix}{name}.", StringComparison.Ordinal))
                .Select(n => n[($"{ResourcePrefix}{name}.".Length)..^".json".Length]));
            throw new SharpTuneException($"{path} has no split '{split}'; it has: {splits}");
        }
        string identity;
        using (var stream = Open(assembly, resource))
            identity = $"{path}/{split}.json|{Convert.ToHexStringLower(SHA256.HashData(stream))}";
        return [new DataFile($"{path}/{split}.json", DataFileKind.Json, () => Open(assembly, resource), identity)];
    }

    private static Stream Open(Assembly assembly, string resource) =>
        assembly.GetManifestResourceStream(resource) ?? throw new InvalidOperationException($"resource {resource} is missing");
}
