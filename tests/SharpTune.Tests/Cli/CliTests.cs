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
    public void GenerateRunsOnA4BitBaseAndRefusesAnUnknownQuantization()
    {
        var r = Run("generate", "--model", Tiny.Value, "--prompt", "What is the BMI?", "--temperature", "0", "-n", "4", "--json", "--device", "cpu", "--quantization", "nf4");
        Assert.Equal(0, r.Code);
        Assert.Equal(4, JsonDocument.Parse(r.Out).RootElement.GetProperty("output_ids").GetArrayLength());
        AssertOneLineError(Run("generate", "--model", Tiny.Value, "--prompt", "x", "--device", "cpu", "--quantization", "nf3"), "nf4");
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
    public void DecodeLogitsWritesEveryStepsLogits()
    {
        string dir = TestPaths.TempDir();
        string rows = Path.Combine(dir, "rows.jsonl"), output = Path.Combine(dir, "logits.safetensors");
        File.WriteAllText(rows, "{\"prompt_ids\": [5, 6, 7], \"continuation_ids\": [8, 9]}\n{\"prompt_ids\": [10], \"continuation_ids\": [11, 12]}\n");
        var r = Run("decode-logits", "--model", Tiny.Value, "--input", rows, "--output", output, "--device", "cpu", "--json");
        Assert.Equal(0, r.Code);
        Assert.Equal(2, JsonDocument.Parse(r.Out).RootElement.GetProperty("steps").GetInt32());
        using var file = SafetensorsFile.Open(output);
        var vocab = JsonDocument.Parse(File.ReadAllText(Path.Combine(Tiny.Value, "config.json"))).RootElement.GetProperty("vocab_size").GetInt64();
        Assert.Equal(new long[] { 2, 2, vocab }, file.Entries["logits"].Shape);
        File.WriteAllText(rows, "{\"prompt_ids\": [5], \"continuation_ids\": [8]}\n{\"prompt_ids\": [10], \"continuation_ids\": [11, 12]}\n");
        AssertOneLineError(Run("decode-logits", "--model", Tiny.Value, "--input", rows, "--output", output, "--device", "cpu"), "rows.jsonl:2");
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

    [Theory]
    [InlineData("generate --promt hi", "unknown option '--promt' for `sharptune generate`; did you mean --prompt?")]
    [InlineData("train --max-step 2", "did you mean --max-steps?")]
    [InlineData("gnerate --prompt hi", "unknown command 'gnerate'; did you mean generate?")]
    [InlineData("generate --model m --prompt hi --top-k", "--top-k needs a value")]
    [InlineData("generate --model m --prompt hi --top-p 0x10", "--top-p expects a number, got '0x10'")]
    [InlineData("generate --model m", "`sharptune generate` needs --prompt")]
    [InlineData("train --max-length 256 --max-length 0", "--max-length is given 2 times ('256', '0'); give it once")]
    [InlineData("generate --model m --prompt hi --device cpu --device cuda:99", "--device is given 2 times ('cpu', 'cuda:99'); give it once")]
    [InlineData("score --predictions p --references r --bleu-tokenizer 13a --bleu-tokenizer zh", "--bleu-tokenizer is given 2 times")]
    [InlineData("", "no command given; expected one of info, generate")]
    public void FlagMistakesAreOneLineWithASuggestion(string args, string expected) =>
        AssertOneLineError(Run(args.Split(' ', StringSplitOptions.RemoveEmptyEntries)), expected);

    /// <summary>eval checks its report folder before evaluating (it failed at the end with .NET's "The file ...
    /// already exists", found by the smoke fuzzer).</summary>
    [Fact]
    public void EvalRefusesAReportFolderThatIsAFileBeforeLoadingAnything()
    {
        string file = Path.Combine(TestPaths.TempDir(), "report");
        File.WriteAllText(file, "");
        AssertOneLineError(Run("eval", "--model", "no-such-model", "--data", "d.jsonl", "-o", file), "the report folder is a file");
    }

    [Fact]
    public void UnparsableEmptyValueIsOneLine() =>
        AssertOneLineError(Run("generate", "--model", "m", "--prompt", "hi", "--top-k", ""), "--top-k expects a whole number, got ''");

    [Fact]
    public void ValuesInMessagesAreEscapedAndCut()
    {
        var r = Run("generate", "--model", "m", "--prompt", "hi", "--top-k", "1\n" + new string('x', 5000));
        AssertOneLineError(r, "--top-k expects a whole number");
        Assert.True(r.Err.Length < 200, r.Err);
    }

    [Fact]
    public void UsageNamesTheCommandSharptune()
    {
        var r = Run("--help");
        Assert.Equal(0, r.Code);
        Assert.Contains("sharptune [command] [options]", r.Out);
        Assert.DoesNotContain("SharpTune.Cli", r.Out);
    }

    [Fact]
    public void InfoGivesSmallSizesInReadableUnits()
    {
        var r = Run("info", "--model", Tiny.Value);
        Assert.Equal(0, r.Code);
        Assert.DoesNotContain("(0 GiB)", r.Out);
        Assert.Matches(@"weights .*\(\d+(\.\d+)? (KiB|MiB)\)", r.Out);
        Assert.Matches(@"parameters .*\(\d+(\.\d+)? (K|M)\)", r.Out);
    }

    [Fact]
    public void GenerateJsonSplitsReasoningFromTheAnswer()
    {
        var json = JsonDocument.Parse(Run("generate", "--model", Tiny.Value, "--prompt", "BMI?", "--temperature", "0", "-n", "4", "--json").Out).RootElement;
        Assert.Equal(json.GetProperty("text").GetString()!.Trim(), json.GetProperty("answer").GetString());   // no <think> from a random model
        Assert.Equal(JsonValueKind.Null, json.GetProperty("reasoning").ValueKind);
    }

    [Fact]
    public void TrainWithAModelButNoDatasetSaysItUsesTheSample()
    {
        var r = Run("train", "--model", Tiny.Value, "--max-steps", "1", "--output-dir", TestPaths.TempDir(), "--device", "cpu", "--max-length", "128",
            "--batch-size", "1", "--gradient-accumulation", "1", "--validation-fraction", "0");
        Assert.Equal(0, r.Code);
        Assert.Contains("no --dataset given: training on the bundled sample", r.Out);
    }
}
