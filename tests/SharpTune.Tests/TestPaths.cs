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

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
