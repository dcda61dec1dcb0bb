using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;

namespace SharpTune.Runtime;

// Stand-in until the coordinator's CudaExtension lands on main (same API); take main's version when merging.
/// <summary>A small CUDA/C++ source compiled on first use with nvcc against the installed PyTorch's headers and
/// libraries (cached in ~/.cache/sharptune/native by the hash of its source), loaded into the process.</summary>
public sealed class CudaExtension
{
    const string Prelude = """
        #include <ATen/ATen.h>
        #define ST_EXPORT extern "C" __attribute__((visibility("default")))

        """;
    static readonly Lock Gate = new();
    static readonly Dictionary<string, CudaExtension> Loaded = new();
    readonly IntPtr _handle;
    CudaExtension(IntPtr handle) => _handle = handle;

    /// <summary>The loaded extension, or null with a one-line reason (CPU, no nvcc, a failed build).</summary>
    public static CudaExtension? Load(string name, string source, out string why)
    {
        why = "";
        lock (Gate)
        {
            if (Loaded.TryGetValue(name, out var done)) return done;
            try
            {
                if (!torch.cuda.is_available()) { why = "CUDA is not in use"; return null; }
                string? lib = TorchLibDirectory();
                if (lib is null) { why = "the CUDA libtorch's folder was not found"; return null; }
                string? nvcc = FindNvcc();
                if (nvcc is null) { why = "nvcc was not found (set CUDA_HOME)"; return null; }
                string text = Prelude + source;
                string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text + lib)))[..16].ToLowerInvariant();
                string dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sharptune", "native");
                Directory.CreateDirectory(dir);
                string so = Path.Combine(dir, $"{name}-{hash}.so");
                if (!File.Exists(so))
                {
                    string cu = Path.Combine(dir, $"{name}-{hash}.cu"), tmp = so + $".{Environment.ProcessId}.tmp";
                    File.WriteAllText(cu, text);
                    string include = Path.GetFullPath(Path.Combine(lib, "..", "include"));
                    string err = "";
                    bool built = false;
                    foreach (var std in new[] { "c++17", "c++20" })
                    {
                        var args = $"-O3 -std={std} -shared -Xcompiler -fPIC -arch=native -D_GLIBCXX_USE_CXX11_ABI=1 -I{include} " +
                            $"-I{Path.Combine(include, "torch", "csrc", "api", "include")} -L{lib} -lc10 -lc10_cuda -ltorch_cpu -ltorch_cuda " +
                            $"-Xlinker -rpath -Xlinker {lib} -o {tmp} {cu}";
                        var p = Process.Start(new ProcessStartInfo(nvcc, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
                        var stderr = p.StandardError.ReadToEndAsync();
                        err = p.StandardOutput.ReadToEnd() + stderr.Result;
                        p.WaitForExit();
                        if (p.ExitCode == 0) { built = true; break; }
                    }
                    if (!built)
                    {
                        why = $"nvcc failed for {name}: {err.Split('\n').FirstOrDefault(l => l.Contains("error")) ?? err.Trim().Split('\n').LastOrDefault()}";
                        Console.Error.WriteLine(err);
                        return null;
                    }
                    File.Move(tmp, so, overwrite: true);
                }
                var ext = new CudaExtension(NativeLibrary.Load(so));
                Loaded[name] = ext;
                return ext;
            }
            catch (Exception e) { why = e.Message; return null; }
        }
    }

    public IntPtr Function(string symbol) => NativeLibrary.GetExport(_handle, symbol);

    static string? TorchLibDirectory()
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int at = line.IndexOf('/');
            if (at >= 0 && line.EndsWith("/libtorch_cuda.so")) return Path.GetDirectoryName(line[at..]);
        }
        return null;
    }

    static string? FindNvcc()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("CUDA_HOME") is { } home) candidates.Add(Path.Combine(home, "bin", "nvcc"));
        candidates.Add("/usr/local/cuda/bin/nvcc");
        foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')) if (d.Length > 0) candidates.Add(Path.Combine(d, "nvcc"));
        return candidates.FirstOrDefault(File.Exists);
    }
}
