using SharpTune.Demo;
using SharpTune.Runtime;
using TorchSharp;

namespace SharpTune.Tests;

static class TestPaths
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures");
    public static string Model(string name) => Path.Combine(Fixtures, "models", name);

    /// <summary>libtorch on the CPU, loaded once per test process.</summary>
    public static torch.Device Cpu => TorchRuntime.Initialize("cpu");

    /// <summary>A fresh small random model with a tokenizer (hidden 64, 2 layers), in its own temp folder.</summary>
    public static string NewTinyModel(long seed = 0)
    {
        _ = Cpu;
        string dir = Path.Combine(TempDir(), "tiny");
        TinyModel.Create(dir, new TinyModelOptions(HiddenSize: 64, Layers: 2, IntermediateSize: 128, Seed: seed));
        return dir;
    }

    /// <summary>The repository's root (the folder holding SharpTune.slnx).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SharpTune.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
