using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using TorchSharp;

namespace SharpTune.Runtime;

/// <summary>
/// Loads libtorch once per process and picks the device. The CPU libtorch ships with the package; CUDA
/// comes from an existing PyTorch installation (found through <c>python3</c>, or named by
/// <c>SHARPTUNE_TORCH_LIB</c> = the folder holding libtorch_cuda.so). Nothing under <c>torch.*</c> may be
/// touched before <see cref="Initialize"/>: TorchSharp's static initializer would bind the wrong libraries
/// for the life of the process.
/// </summary>
public static partial class TorchRuntime
{
    public const string TorchLibVariable = "SHARPTUNE_TORCH_LIB";
    static readonly Lock Gate = new();
    static torch.Device? _device;
    static readonly Dictionary<string, IntPtr> Handles = new();

    /// <summary>Where libtorch came from and which device is in use, for `info` output and error reports.</summary>
    public static string Description { get; private set; } = "not loaded";

    /// <summary>The torch/lib folder libtorch was loaded from on Linux (null before loading or elsewhere).</summary>
    public static string? LibraryFolder { get; private set; }

    /// <summary>Whether the loaded libtorch is a CUDA build with a usable GPU.</summary>
    public static bool UsesCuda { get; private set; }

    /// <summary>An exported function of TorchSharp's native library (e.g. THSTensor_data, for a tensor's device pointer).</summary>
    public static IntPtr TorchSharpExport(string name)
    {
        lock (Gate)
        {
            if (!Handles.TryGetValue("LibTorchSharp", out var lib))
                throw new InvalidOperationException("TorchRuntime.Initialize must run before native TorchSharp functions are looked up");
            return NativeLibrary.GetExport(lib, name);
        }
    }

    /// <summary>Loads libtorch for <paramref name="device"/> ("auto", "cpu", "cuda" or "cuda:N") and returns
    /// the device to use. Later calls return the first answer when they ask for the same kind.</summary>
    public static torch.Device Initialize(string device = "auto")
    {
        lock (Gate)
        {
            string want = device.Trim().ToLowerInvariant();
            if (want is not ("auto" or "cpu" or "cuda") && !CudaIndex().IsMatch(want))
                throw new SharpTuneException($"--device: expected auto, cpu, cuda or cuda:N, got '{device}'");
            if (_device is not null)
            {
                if (want == "cpu") return torch.CPU;
                if (want.StartsWith("cuda") && _device.type != DeviceType.CUDA)
                    throw new SharpTuneException("--device cuda: this process already loaded the CPU-only libtorch");
                return want.StartsWith("cuda:") ? torch.device(want) : _device;
            }

            if (!OperatingSystem.IsLinux())
            {
                // Elsewhere TorchSharp's own loader finds its packaged natives.
                bool cuda = want != "cpu" && torch.TryInitializeDeviceType(DeviceType.CUDA) && torch.cuda.is_available();
                if (want.StartsWith("cuda") && !cuda) throw NoCuda("no CUDA libtorch could be loaded");
                if (!cuda) torch.InitializeDeviceType(DeviceType.CPU);
                UsesCuda = cuda;
                Description = cuda ? "TorchSharp packaged libtorch, CUDA" : "TorchSharp packaged libtorch, CPU";
                return _device = cuda ? torch.device(want == "auto" ? "cuda" : want) : torch.CPU;
            }

            string? external = FindExternalTorch(want);
            bool useCuda = want != "cpu" && external is not null && File.Exists(Path.Combine(external, "libtorch_cuda.so"));
            if (want.StartsWith("cuda") && !useCuda)
                throw NoCuda(external is null ? "no PyTorch installation with CUDA was found" : $"{external} has no libtorch_cuda.so");

            string libDir = external ?? BundledLibDir()
                ?? throw new SharpTuneException("libtorch was not found next to the program and no PyTorch installation was found; "
                    + $"reinstall SharpTune or set {TorchLibVariable} to a PyTorch torch/lib folder");
            PreferPassiveOpenMpThreads();
            LoadLinux(libDir, useCuda);
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);

            torch.InitializeDeviceType(useCuda ? DeviceType.CUDA : DeviceType.CPU);
            if (useCuda && !torch.cuda.is_available())
                throw NoCuda($"libtorch from {libDir} loaded but reports no usable GPU (driver missing or too old?)");
            LibraryFolder = libDir;
            UsesCuda = useCuda;
            Description = $"libtorch from {libDir}, {(useCuda ? $"CUDA ({torch.cuda.device_count()} GPU)" : "CPU")}";
            return _device = useCuda ? torch.device(want == "auto" ? "cuda" : want) : torch.CPU;
        }
    }

    /// <summary>OpenMP's worker threads spin while they wait by default. On a machine whose cores are busy with other
    /// work they then steal each other's time slices: the demo took 4m20s for 20 steps on two loaded cores, 36 s with
    /// passive waiting (and 51 s on one thread). libgomp reads the variable when libtorch loads, from the native
    /// environment, which .NET's Environment.SetEnvironmentVariable does not write; a user's own setting wins.</summary>
    static void PreferPassiveOpenMpThreads()
    {
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null) SetNativeEnvironment("OMP_WAIT_POLICY", "PASSIVE", 0);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironment(string name, string value, int overwrite);

    [GeneratedRegex("^cuda:[0-9]+$")]
    private static partial Regex CudaIndex();

    static SharpTuneException NoCuda(string why) => new(
        $"--device cuda: {why}. CUDA needs an NVIDIA driver and a CUDA build of PyTorch (pip install torch); "
        + $"SharpTune finds it through python3, or set {TorchLibVariable} to its torch/lib folder. Use --device cpu to run on the CPU.");

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        Handles.TryGetValue(name, out var h) ? h : IntPtr.Zero;

    /// <summary>Loads libtorch's libraries from <paramref name="libDir"/> by full path (so that their
    /// sonames satisfy LibTorchSharp's dependencies), then LibTorchSharp itself, weakening symbol versions
    /// the system's libstdc++ lacks when needed.</summary>
    static void LoadLinux(string libDir, bool cuda)
    {
        // Expandable segments: the caching allocator grows its blocks in place instead of keeping differently sized
        // ones apart, so that reserved memory stays close to what is allocated (a user's own setting wins). It must be
        // in the process environment before libtorch's allocator starts; .NET's SetEnvironmentVariable is not.
        if (cuda && Environment.GetEnvironmentVariable("PYTORCH_CUDA_ALLOC_CONF") is null)
            SetNativeEnvironment("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", 0);
        var names = new List<string> { "c10", "torch_cpu" };
        if (cuda) names.AddRange(["c10_cuda", "torch_cuda"]);
        names.Add("torch");
        foreach (var n in names)
        {
            string file = Path.Combine(libDir, $"lib{n}.so");
            if (!File.Exists(file)) throw new SharpTuneException($"libtorch in {libDir} is incomplete: {Path.GetFileName(file)} is missing");
            Handles[n] = NativeLibrary.Load(file);
        }
        Handles["LibTorchSharp"] = LoadTorchSharpNative();
    }

    static IntPtr LoadTorchSharpNative()
    {
        string original = LocateNative("libLibTorchSharp.so")
            ?? throw new SharpTuneException("libLibTorchSharp.so was not found next to the program; reinstall SharpTune");
        try { return NativeLibrary.Load(original); }
        catch (DllNotFoundException e) when (MissingVersions(e.Message).Count > 0)
        {
            return LoadPatchedCopy(original, MissingVersions(e.Message));
        }
    }

    static HashSet<string> MissingVersions(string loaderMessage) =>
        MissingVersion().Matches(loaderMessage).Select(m => m.Groups[1].Value).ToHashSet();

    [GeneratedRegex("version `([A-Za-z0-9_.]+)' not found")]
    private static partial Regex MissingVersion();

    /// <summary>Writes (once) a copy of the library whose missing version needs are weak, into the user's
    /// cache folder keyed by the original's hash, and loads it; retries while the loader names further versions.</summary>
    static IntPtr LoadPatchedCopy(string original, HashSet<string> missing)
    {
        byte[] bytes = File.ReadAllBytes(original);
        string hash = Convert.ToHexString(SHA256.HashData(bytes))[..16].ToLowerInvariant();
        string dir = Path.Combine(CacheRoot(), "native", hash);
        Directory.CreateDirectory(dir);
        while (true)
        {
            string target = Path.Combine(dir, "libLibTorchSharp-" + string.Join("-", missing.Order()) + ".so");
            if (!File.Exists(target))
            {
                var (patched, changed) = ElfVersionPatcher.WeakenVersions(bytes, missing);
                if (changed < missing.Count)
                    throw new SharpTuneException($"cannot load {original}: it needs {string.Join(", ", missing)} from libstdc++, which this system lacks");
                string tmp = $"{target}.{Environment.ProcessId}.tmp";
                File.WriteAllBytes(tmp, patched);
                File.Move(tmp, target, overwrite: true);
            }
            try { return NativeLibrary.Load(target); }
            catch (DllNotFoundException e) when (MissingVersions(e.Message).Except(missing).Any())
            {
                missing.UnionWith(MissingVersions(e.Message));
            }
        }
    }

    internal static string CacheRoot()
    {
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "sharptune");
    }

    static string? LocateNative(string file)
    {
        string[] dirs =
        [
            AppContext.BaseDirectory,
            Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "",
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"),
        ];
        return dirs.Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists);
    }

    static string? BundledLibDir() => LocateNative("libtorch_cpu.so") is { } f ? Path.GetDirectoryName(f) : null;

    /// <summary>An existing PyTorch's torch/lib folder: named by SHARPTUNE_TORCH_LIB, or asked of python3 when a
    /// GPU may be present (or when no libtorch ships with the program).</summary>
    static string? FindExternalTorch(string want)
    {
        string? named = Environment.GetEnvironmentVariable(TorchLibVariable);
        if (!string.IsNullOrWhiteSpace(named))
        {
            if (!File.Exists(Path.Combine(named, "libtorch_cpu.so")))
                throw new SharpTuneException($"{TorchLibVariable}={named}: no libtorch_cpu.so there; point it at PyTorch's torch/lib folder");
            return named;
        }
        bool mayHaveGpu = File.Exists("/dev/nvidiactl") || File.Exists("/proc/driver/nvidia/version");
        if (want == "cpu" && BundledLibDir() is not null) return null;
        if (!mayHaveGpu && BundledLibDir() is not null) return null;
        return AskPython();
    }

    static string? AskPython()
    {
        foreach (var python in new[] { Environment.GetEnvironmentVariable("SHARPTUNE_PYTHON"), "python3", "python" })
        {
            if (string.IsNullOrEmpty(python)) continue;
            try
            {
                var psi = new ProcessStartInfo(python, ["-c", "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
                { RedirectStandardOutput = true, RedirectStandardError = true };
                using var p = Process.Start(psi);
                if (p is null) continue;
                string output = p.StandardOutput.ReadToEnd().Trim();
                if (!p.WaitForExit(30_000)) { p.Kill(); continue; }
                if (p.ExitCode == 0 && File.Exists(Path.Combine(output, "libtorch_cpu.so"))) return output;
            }
            catch (System.ComponentModel.Win32Exception) { }   // that interpreter is not installed
        }
        return null;
    }
}
