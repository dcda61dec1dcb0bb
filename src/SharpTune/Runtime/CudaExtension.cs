using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace SharpTune.Runtime;

/// <summary>
/// A CUDA/C++ source compiled on first use against the PyTorch that <see cref="TorchRuntime"/> loaded (its headers
/// ship in the wheel, under torch/include), as torch.utils.cpp_extension does, cached under
/// ~/.cache/sharptune/native and loaded into this process. Exported functions take TorchSharp tensor handles, which
/// are <c>at::Tensor*</c>; a function that makes a tensor returns <c>new at::Tensor(...)</c>, which
/// <c>torch.Tensor.UnsafeCreateTensor</c> wraps. Where no CUDA libtorch, headers or nvcc exist (CI, CPU users),
/// <see cref="Load"/> returns null with a one-line reason, and the caller keeps its stock-op path.
/// </summary>
public sealed unsafe class CudaExtension
{
    /// <summary>SHARPTUNE_NATIVE=off turns every extension off (to compare against the stock-op paths).</summary>
    public const string SwitchVariable = "SHARPTUNE_NATIVE";
    /// <summary>SHARPTUNE_NVCC names the compiler; otherwise $CUDA_HOME/bin/nvcc, nvcc on PATH, /usr/local/cuda/bin/nvcc.</summary>
    public const string CompilerVariable = "SHARPTUNE_NVCC";

    /// <summary>Prepended to every source: ATen, the export macro, and error capture. C++ exceptions must not cross
    /// into .NET, so every exported function returns an int through <c>ST_TRY(...)</c>, 0 on success, and the
    /// message of a failure is kept for <see cref="Check"/>.</summary>
    public const string Prelude = """
        #include <ATen/ATen.h>
        #include <ATen/cuda/CUDAContext.h>
        #include <c10/cuda/CUDAGuard.h>
        #include <exception>
        #include <string>
        #define ST_EXPORT extern "C" __attribute__((visibility("default")))
        static thread_local std::string st_error;
        ST_EXPORT const char* st_last_error() { return st_error.c_str(); }
        #define ST_TRY(...) try { __VA_ARGS__; return 0; } \
            catch (const c10::Error& e) { st_error = e.what_without_backtrace(); return 1; } \
            catch (const std::exception& e) { st_error = e.what(); return 1; }
        #line 1 "extension.cu"

        """;

    static readonly Lock Gate = new();
    static readonly Dictionary<string, (CudaExtension? Extension, string Why)> Loaded = new();

    readonly IntPtr _library;
    readonly delegate* unmanaged<IntPtr> _lastError;

    public string Name { get; }
    /// <summary>The compiled library (in the cache folder).</summary>
    public string LibraryPath { get; }

    CudaExtension(string name, string path)
    {
        Name = name;
        LibraryPath = path;
        _library = NativeLibrary.Load(path);
        _lastError = (delegate* unmanaged<IntPtr>)NativeLibrary.GetExport(_library, "st_last_error");
    }

    /// <summary>The extension <paramref name="name"/> built from <paramref name="source"/> (without the prelude),
    /// built at most once per source, PyTorch, GPU model and compiler, and loaded once per process. Null where it is
    /// unavailable, with the reason in <paramref name="why"/>. <paramref name="onBuild"/> hears that a build starts
    /// (it takes about a minute).</summary>
    public static CudaExtension? Load(string name, string source, out string why, Action<string>? onBuild = null)
    {
        lock (Gate)
        {
            if (!Loaded.TryGetValue(name, out var entry))
                Loaded[name] = entry = TryLoad(name, source, onBuild);
            why = entry.Why;
            return entry.Extension;
        }
    }

    /// <summary>The address of an exported <c>extern "C"</c> function, for a <c>delegate* unmanaged</c>.</summary>
    public IntPtr Function(string symbol) => NativeLibrary.GetExport(_library, symbol);

    /// <summary>Turns a failed call's return code into an exception carrying the native message (an internal fault,
    /// not a user mistake).</summary>
    public void Check(int rc)
    {
        if (rc != 0) throw new InvalidOperationException($"native extension {Name}: {Marshal.PtrToStringUTF8(_lastError())}");
    }

    static (CudaExtension?, string) TryLoad(string name, string source, Action<string>? onBuild)
    {
        if (string.Equals(Environment.GetEnvironmentVariable(SwitchVariable), "off", StringComparison.OrdinalIgnoreCase))
            return (null, $"{SwitchVariable}=off");
        if (!TorchRuntime.UsesCuda || TorchRuntime.LibraryFolder is not { } libDir)
            return (null, "needs the CUDA libtorch of a PyTorch installation");
        string include = Path.GetFullPath(Path.Combine(libDir, "..", "include"));
        if (!File.Exists(Path.Combine(include, "ATen", "ATen.h")))
            return (null, $"PyTorch's C++ headers are missing ({include}/ATen/ATen.h)");
        if (FindCompiler() is not { } compiler)
            return (null, $"nvcc was not found (set CUDA_HOME or {CompilerVariable})");
        try
        {
            var request = new BuildRequest(name, Prelude + source, compiler, include, libDir, Cxx11Abi(libDir), GpuModels(), CacheFolder());
            return (new CudaExtension(name, Build(request, onBuild)), "");
        }
        catch (Exception e) when (e is SharpTuneException or DllNotFoundException or EntryPointNotFoundException or IOException)
        {
            return (null, ErrorText.Message(e.Message, 300));
        }
    }

    /// <summary>What one build depends on. <see cref="Key"/> names the cached library: a change to any part builds anew.</summary>
    internal sealed record BuildRequest(string Name, string Source, string Compiler, string IncludeFolder, string LibraryFolder,
        bool Cxx11Abi, string GpuModels, string CacheFolder)
    {
        public string Key
        {
            get
            {
                var torchCuda = new FileInfo(Path.Combine(LibraryFolder, "libtorch_cuda.so"));
                var compiler = new FileInfo(Compiler);
                string identity = string.Join("\n", Source, Compiler, compiler.Exists ? compiler.Length : 0, LibraryFolder,
                    torchCuda.Exists ? $"{torchCuda.Length}:{torchCuda.LastWriteTimeUtc.Ticks}" : "", Cxx11Abi, GpuModels);
                return $"{Name}-{Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..16].ToLowerInvariant()}";
            }
        }

        /// <summary>nvcc's arguments: a shared library for the GPUs of this machine, linked against libtorch where it
        /// lies (rpath), with the CUDA runtime shared so that it is the one PyTorch already loaded.</summary>
        public string[] CompilerArguments(string sourceFile, string output) =>
        [
            "-O3", "-std=c++17", "--shared", "-Xcompiler", "-fPIC", "-cudart", "shared", "-arch=native",
            "--expt-relaxed-constexpr", "-DNDEBUG", $"-D_GLIBCXX_USE_CXX11_ABI={(Cxx11Abi ? 1 : 0)}",
            $"-I{IncludeFolder}", $"-I{Path.Combine(IncludeFolder, "torch", "csrc", "api", "include")}",
            $"-L{LibraryFolder}", "-lc10", "-lc10_cuda", "-ltorch_cpu", "-ltorch_cuda",
            "-Xlinker", "-rpath", "-Xlinker", LibraryFolder,
            "-o", output, sourceFile,
        ];
    }

    /// <summary>The cached library for <paramref name="request"/>, compiled when missing. A file lock makes processes
    /// that start together (one per GPU) wait for one build; the library appears under its final name only whole.</summary>
    internal static string Build(BuildRequest request, Action<string>? onBuild = null, TimeSpan? timeout = null)
    {
        string folder = Path.Combine(request.CacheFolder, request.Key);
        string library = Path.Combine(folder, $"lib{request.Name}.so");
        if (File.Exists(library)) return library;
        Directory.CreateDirectory(folder);
        using var buildLock = AcquireLock(Path.Combine(folder, "build.lock"), timeout ?? TimeSpan.FromMinutes(15));
        if (File.Exists(library)) return library;   // another process built it while this one waited

        string source = Path.Combine(folder, $"{request.Name}.cu");
        string log = Path.Combine(folder, "build.log");
        string partial = $"{library}.{Environment.ProcessId}.tmp";
        File.WriteAllText(source, request.Source);
        onBuild?.Invoke($"building the CUDA extension '{request.Name}' for this GPU and PyTorch (first use only, about a minute)");
        var psi = new ProcessStartInfo(request.Compiler, request.CompilerArguments(source, partial))
        { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = folder };
        using var process = Process.Start(psi) ?? throw new SharpTuneException($"could not start {request.Compiler}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new SharpTuneException($"building {request.Name} took over 10 minutes and was stopped");
        }
        File.WriteAllText(log, stdout.Result + stderr.Result);
        if (process.ExitCode != 0 || !File.Exists(partial))
        {
            File.Delete(partial);
            string first = (stderr.Result + stdout.Result).Split('\n').FirstOrDefault(l => l.Contains("error")) ?? $"exit code {process.ExitCode}";
            throw new SharpTuneException($"building {request.Name} failed: {first.Trim()} (full log: {log})");
        }
        File.Move(partial, library, overwrite: true);
        return library;
    }

    static FileStream AcquireLock(string path, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            // FileShare.None takes an exclusive flock on Unix, so other processes wait here too.
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (clock.Elapsed < timeout) { Thread.Sleep(200); }
        }
    }

    static string? FindCompiler()
    {
        string? named = Environment.GetEnvironmentVariable(CompilerVariable);
        if (!string.IsNullOrWhiteSpace(named)) return File.Exists(named) ? named : null;
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("CUDA_HOME") is { Length: > 0 } home) candidates.Add(Path.Combine(home, "bin", "nvcc"));
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            candidates.Add(Path.Combine(dir, "nvcc"));
        candidates.Add("/usr/local/cuda/bin/nvcc");
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>Whether libtorch was built with the C++11 string ABI (every wheel since PyTorch 2.7): its c10 library
    /// then exports std::__cxx11 names, and the extension must match.</summary>
    static bool Cxx11Abi(string libDir)
    {
        byte[] bytes = File.ReadAllBytes(Path.Combine(libDir, "libc10.so"));
        return bytes.AsSpan().IndexOf("__cxx11"u8) >= 0;
    }

    /// <summary>The GPU models of this machine, from the driver (part of the cache key, since -arch=native builds for them).</summary>
    static string GpuModels()
    {
        const string root = "/proc/driver/nvidia/gpus";
        if (!Directory.Exists(root)) return "";
        return string.Join(";", Directory.GetDirectories(root).Order()
            .Select(d => Path.Combine(d, "information")).Where(File.Exists)
            .Select(f => File.ReadLines(f).FirstOrDefault(l => l.StartsWith("Model:"))?.Trim() ?? ""));
    }

    static string CacheFolder() => Path.Combine(TorchRuntime.CacheRoot(), "native");
}
