using SharpTune.Runtime;
using TorchSharp;

namespace SharpTune.Tests;

static class TestPaths
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures");
    public static string Model(string name) => Path.Combine(Fixtures, "models", name);

    /// <summary>libtorch on the CPU, loaded once per test process.</summary>
    public static torch.Device Cpu => TorchRuntime.Initialize("cpu");

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sharptune-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
