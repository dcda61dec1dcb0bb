using SharpTune.Data;

namespace SharpTune.Demo;

/// <summary>
/// Datasets bundled in the library (embedded resources), so that an installed tool can train without
/// downloading anything. Use them as a <see cref="DatasetSource"/> path: <c>sample:medical-calculations</c>.
/// </summary>
public static class SampleData
{
    /// <summary>Clinical arithmetic in the medical-o1-reasoning-SFT schema (Question, Complex_CoT, Response):
    /// split <c>train</c> (400 rows) and <c>test</c> (40 rows). Written by scripts/generate-sample-data.cs.</summary>
    public static DatasetSource MedicalCalculations { get; } = new(BundledDatasets.Scheme + "medical-calculations");

    public static IReadOnlyList<string> Names => BundledDatasets.Names;
}
