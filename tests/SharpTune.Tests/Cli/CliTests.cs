using System.Text.Json;
using SharpTune.Cli;
using SharpTune.Models;

namespace SharpTune.Tests.Cli;

/// <summary>The command line, run in-process: output for people and scripts, and one-line errors for user mistakes.</summary>
public class CliTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel());

    static void AssertOneLineError((int Code, string Out, string Err) r, string expected)
    {
        Assert.Equal(1, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", r.Err);
    }

    [Fact]
    public void InfoDescribesTheModel()
    {
        var r = Run("info", "--model", TestPaths.Model("llama"));
        Assert.Equal(0, r.Code);
        Assert.Contains("LlamaForCausalLM", r.Out);
        Assert.Contains("rope scaling llama3", r.Out);
        var json = JsonDocument.Parse(Run("info", "--model", TestPaths.Model("qwen2"), "--json").Out).RootElement;
        Assert.Equal("Qwen2ForCausalLM", json.GetProperty("architecture").GetString());
        Assert.True(json.GetProperty("tied_embeddings").GetBoolean());
    }

    [Fact]
    public void GenerateJsonGivesIdsTextAndTimings()
    {
        var r = Run("generate", "--model", Tiny.Value, "--prompt", "What is the BMI?", "--temperature", "0", "-n", "8", "--json", "--device", "cpu");
        Assert.Equal(0, r.Code);
        var json = JsonDocument.Parse(r.Out).RootElement;
        Assert.True(json.GetProperty("prompt_ids").GetArrayLength() > 1);
        Assert.Equal(8, json.GetProperty("output_ids").GetArrayLength());
        Assert.True(json.GetProperty("timings").GetProperty("decode_tokens_per_second").GetDouble() > 0);
        Assert.Equal("length", json.GetProperty("finish_reason").GetString());
        // greedy is deterministic
        var again = JsonDocument.Parse(Run("generate", "--model", Tiny.Value, "--prompt", "What is the BMI?", "--temperature", "0", "-n", "8", "--json").Out).RootElement;
        Assert.Equal(json.GetProperty("output_ids").ToString(), again.GetProperty("output_ids").ToString());
    }

    [Fact]
    public void TokenizeShowsTokens()
    {
        var r = Run("tokenize", "--model", Tiny.Value, "--text", "Weight 70 kg", "--json");
        Assert.Equal(0, r.Code);
        var json = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal(json.GetProperty("count").GetInt32(), json.GetProperty("ids").GetArrayLength());
    }

    [Fact]
    public void MissingModelFolderIsOneLine() => AssertOneLineError(Run("info", "--model", "/nonexistent/model"), "/nonexistent/model");

    [Fact]
    public void MissingConfigIsOneLine()
    {
        string dir = TestPaths.TempDir();
        AssertOneLineError(Run("info", "--model", dir), "config.json");
    }

    [Fact]
    public void TruncatedWeightsAreOneLine()
    {
        string dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(TestPaths.Model("qwen3"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        string weights = Path.Combine(dir, "model.safetensors");
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..5000]);
        AssertOneLineError(Run("info", "--model", dir), "model.safetensors");
    }

    [Fact]
    public void BadSamplingFlagIsOneLine() =>
        AssertOneLineError(Run("generate", "--model", Tiny.Value, "--prompt", "x", "--top-p", "1.5", "--device", "cpu"), "--top-p");

    [Fact]
    public void VerboseShowsTheStackTrace()
    {
        var r = Run("info", "--model", "/nonexistent/model", "--verbose");
        Assert.Equal(1, r.Code);
        Assert.Contains("   at ", r.Err);
    }

    [Fact]
    public void InitRefusesANonEmptyFolder()
    {
        string dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "mine");
        AssertOneLineError(Run("init", "--tiny", dir), "not empty");
        Assert.True(File.Exists(Path.Combine(dir, "keep.txt")));
    }

    [Fact]
    public void DatasetDetailsWithoutDatasetAreRefused() =>
        AssertOneLineError(Run("train", "--dataset-rows", "5"), "give --dataset too");

    [Fact]
    public void UnknownTrainSettingSuggestsTheRightOne()
    {
        string recipe = Path.Combine(TestPaths.TempDir(), "r.yaml");
        File.WriteAllText(recipe, "lora_rnak: 8\n");
        AssertOneLineError(Run("train", "--recipe", recipe), "did you mean 'lora_rank'");
    }
}
