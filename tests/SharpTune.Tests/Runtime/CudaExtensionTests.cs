using SharpTune.Runtime;

namespace SharpTune.Tests.Runtime;

/// <summary>The build-and-cache logic of <see cref="CudaExtension"/>, with a shell script standing in for nvcc (the GPU
/// path itself is checked on the GPU machine by `bench native`).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CudaExtensionTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("sharptune-ext-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A fake compiler that counts its calls, waits a little, and writes the file named after -o (or fails
    /// with an nvcc-like error when the source holds "BROKEN").</summary>
    string FakeCompiler()
    {
        string path = Path.Combine(_dir, "nvcc");
        File.WriteAllText(path, $$"""
            #!/bin/sh
            echo call >> "{{_dir}}/calls"
            sleep 0.3
            out=""; prev=""; src=""
            for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; src="$a"; done
            if grep -q BROKEN "$src"; then echo "$src(3): error: identifier \"BROKEN\" is undefined" >&2; exit 2; fi
            echo library > "$out"
            """);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    CudaExtension.BuildRequest Request(string source) =>
        new("demo", source, FakeCompiler(), Path.Combine(_dir, "include"), Path.Combine(_dir, "lib"), Cxx11Abi: true, "Model: test GPU", Path.Combine(_dir, "cache"));

    int Calls => File.Exists(Path.Combine(_dir, "calls")) ? File.ReadAllLines(Path.Combine(_dir, "calls")).Length : 0;

    [Fact]
    public void BuildsOnceAndReusesTheCachedLibrary()
    {
        var notices = new List<string>();
        string first = CudaExtension.Build(Request("ok"), notices.Add);
        string second = CudaExtension.Build(Request("ok"), notices.Add);
        Assert.Equal(first, second);
        Assert.Equal("library\n", File.ReadAllText(first));
        Assert.Equal(1, Calls);
        Assert.Single(notices);
        Assert.Contains("first use only", notices[0]);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(first)!, "*.tmp"));
    }

    [Fact]
    public void ADifferentSourceOrGpuBuildsAnew()
    {
        var a = Request("one");
        Assert.NotEqual(a.Key, Request("two").Key);
        Assert.NotEqual(a.Key, (a with { GpuModels = "Model: other GPU" }).Key);
        Assert.NotEqual(a.Key, (a with { Cxx11Abi = false }).Key);
        Assert.Equal(a.Key, Request("one").Key);
    }

    [Fact]
    public void ProcessesStartingTogetherBuildOnce()
    {
        var request = Request("ok");
        var paths = new string[4];
        Parallel.For(0, paths.Length, i => paths[i] = CudaExtension.Build(request));
        Assert.Single(paths.Distinct());
        Assert.Equal(1, Calls);
    }

    [Fact]
    public void AFailedBuildNamesTheErrorAndTheLogAndLeavesNoLibrary()
    {
        var e = Assert.Throws<SharpTuneException>(() => CudaExtension.Build(Request("BROKEN")));
        Assert.Contains("identifier \"BROKEN\" is undefined", e.Message);
        Assert.Contains("build.log", e.Message);
        string folder = Path.Combine(_dir, "cache", Request("BROKEN").Key);
        Assert.Empty(Directory.GetFiles(folder, "*.so*"));
        Assert.Throws<SharpTuneException>(() => CudaExtension.Build(Request("BROKEN")));
        Assert.Equal(2, Calls);   // a failure is not cached: fixing the toolchain and rerunning builds again
    }

    [Fact]
    public void CompilesForThisGpuAgainstPyTorchWithItsAbi()
    {
        var args = Request("x").CompilerArguments("src.cu", "out.so");
        Assert.Contains("-arch=native", args);
        Assert.Contains("-D_GLIBCXX_USE_CXX11_ABI=1", args);
        Assert.Contains($"-I{Path.Combine(_dir, "include")}", args);
        Assert.Contains("-ltorch_cuda", args);
        Assert.Equal(["-Xlinker", "-rpath", "-Xlinker", Path.Combine(_dir, "lib")], args.SkipWhile(a => a != "-Xlinker").Take(4));
        Assert.Equal(["-o", "out.so", "src.cu"], args[^3..]);
        Assert.Contains("-D_GLIBCXX_USE_CXX11_ABI=0", (Request("x") with { Cxx11Abi = false }).CompilerArguments("s", "o"));
    }

    [Fact]
    public void OnTheCpuTheExtensionIsUnavailableWithAReason()
    {
        TorchRuntime.Initialize("cpu");
        Assert.Null(CudaExtension.Load("cpu-only", "int x;", out string why));
        Assert.Contains("CUDA libtorch", why);
    }
}
