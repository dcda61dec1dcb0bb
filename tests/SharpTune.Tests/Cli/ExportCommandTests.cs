using SharpTune.Cli;

namespace SharpTune.Tests.Cli;

/// <summary>`sharptune export`: progress, the checks, the closing line that tells how to run the result, and one-line errors.</summary>
public class ExportCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void ExportsVerifiesAndSaysHowToRunIt()
    {
        string model = TestPaths.NewTinyModel();
        string dir = TestPaths.TempDir();
        var r = Run("export", "--model", model, "--format", "ollama", "--quant", "q8_0", "--out", Path.Combine(dir, "tiny"));
        Assert.Equal(0, r.Code);
        Assert.Contains("writing: ", r.Out);
        Assert.Contains("ok  greedy tokens (q8_0)", r.Out);
        Assert.Contains("ok  ollama template: equals the Jinja chat template", r.Out);
        Assert.EndsWith($"run it: ollama create tiny -f {Path.Combine(dir, "tiny", "Modelfile")} && ollama run tiny", r.Out.TrimEnd());
        Assert.Equal(["Modelfile", "model.gguf"], Directory.GetFiles(Path.Combine(dir, "tiny")).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var again = Run("export", "--model", model, "--format", "ollama", "--out", Path.Combine(dir, "tiny"));
        Assert.Equal(1, again.Code);
        Assert.Equal($"error: {Path.Combine(dir, "tiny")}: already exists; pass --overwrite to replace it", again.Err.Trim());
    }

    [Fact]
    public void BadFormatAndLoraWithoutAdapterAreOneLineErrors()
    {
        string model = TestPaths.NewTinyModel();
        var r = Run("export", "--model", model, "--format", "onnx", "--out", Path.Combine(TestPaths.TempDir(), "x"));
        Assert.Equal(1, r.Code);
        Assert.Equal("error: --format: expected hf, gguf, gguf-lora, ollama, got 'onnx'", r.Err.Trim());
        r = Run("export", "--model", model, "--format", "gguf-lora", "--out", Path.Combine(TestPaths.TempDir(), "x.gguf"));
        Assert.Equal("error: --format gguf-lora needs --adapter", r.Err.Trim());
    }

    /// <summary>An --out under a file is refused up front with its name (it failed after merging, with .NET's
    /// "Could not find a part of the path '...o.tmp-...'", found by the smoke fuzzer), and nothing is left.</summary>
    [Fact]
    public void OutUnderAFileIsRefusedBeforeWriting()
    {
        string model = TestPaths.NewTinyModel();
        string dir = TestPaths.TempDir();
        string file = Path.Combine(dir, "f");
        File.WriteAllText(file, "");
        var r = Run("export", "--model", model, "--format", "hf", "--out", Path.Combine(file, "o"));
        Assert.Equal(1, r.Code);
        Assert.Equal($"error: {file}: the folder of --out is a file; choose a folder", r.Err.Trim());
        Assert.Equal(["f"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }
}
