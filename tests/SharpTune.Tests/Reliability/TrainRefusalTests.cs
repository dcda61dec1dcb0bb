using System.Text.Json.Nodes;
using SharpTune.Cli;
using SharpTune.Models;
using TorchSharp;

namespace SharpTune.Tests.Reliability;

/// <summary>One tiny finished run (2 steps, a checkpoint per step) that the resume tests copy and damage.</summary>
public sealed class FinishedRun
{
    public string Model { get; } = TestPaths.NewTinyModel();
    public string Output { get; }
    public string Data { get; }

    public FinishedRun()
    {
        Data = Path.Combine(TestPaths.TempDir(), "data.jsonl");
        File.WriteAllLines(Data, Enumerable.Range(0, 16).Select(i => $$"""{"question": "What is {{i}} + {{i}}?", "answer": "{{2 * i}}"}"""));
        Output = Path.Combine(TestPaths.TempDir(), "run");
        var r = TrainRefusalTests.Cli(Args(Output));
        Assert.True(r.Code == 0, r.Err);
    }

    public string[] Args(string output) =>
    [
        "train", "--model", Model, "--dataset", Data, "--max-steps", "2", "--save-every", "1", "--batch-size", "2",
        "--gradient-accumulation", "1", "--max-length", "256", "--lora-rank", "4", "--validation-fraction", "0",
        "--device", "cpu", "--output-dir", output, "--keep-checkpoints", "2",
    ];

    /// <summary>A copy of the finished run's output folder.</summary>
    public string Copy()
    {
        string dir = Path.Combine(TestPaths.TempDir(), "run");
        foreach (var file in Directory.GetFiles(Output, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(dir, Path.GetRelativePath(Output, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return dir;
    }
}

/// <summary>`train` checks the values, the output path, the data and a resumed run's files before it writes anything;
/// a refused run leaves nothing behind.</summary>
public class TrainRefusalTests(FinishedRun run) : IClassFixture<FinishedRun>
{
    internal static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static void OneLineError((int Code, string Out, string Err) r, params string[] expected)
    {
        Assert.True(r.Code == 1, $"rc {r.Code}: {r.Err}");
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        foreach (string text in expected) Assert.Contains(text, lines[0]);
    }

    [Theory]
    [InlineData("--learning-rate", "1e999", "learning_rate")]
    [InlineData("--adam-epsilon", "Infinity", "adam_epsilon")]
    [InlineData("--weight-decay", "NaN", "weight_decay")]
    [InlineData("--lora-alpha", "-Infinity", "lora_alpha")]
    [InlineData("--lora-dropout", "NaN", "lora_dropout")]
    [InlineData("--lora-dropout", "1", "lora dropout")]
    [InlineData("--adam-beta2", "1", "adam_beta2")]
    [InlineData("--max-grad-norm", "-1", "max_grad_norm")]
    public void Out_of_range_values_are_refused_before_anything_is_written(string flag, string value, string expected)
    {
        string output = Path.Combine(TestPaths.TempDir(), "out");
        var args = run.Args(output).Concat([flag, value]).ToArray();
        OneLineError(Cli(args), expected);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Output_folder_that_is_a_file_is_refused()
    {
        string output = Path.Combine(TestPaths.TempDir(), "out");
        File.WriteAllText(output, "not a folder");
        OneLineError(Cli(run.Args(output)), output, "is a file");
        string under = Path.Combine(output, "sub");
        OneLineError(Cli(run.Args(under)), output, "is a file");
    }

    [Fact]
    public void Data_without_examples_leaves_no_output_folder()
    {
        string data = Path.Combine(TestPaths.TempDir(), "bad.jsonl");
        File.WriteAllLines(data, ["""{"colour": "red"}""", """{"colour": "blue"}"""]);
        string output = Path.Combine(TestPaths.TempDir(), "out");
        var args = run.Args(output);
        args[Array.IndexOf(args, "--dataset") + 1] = data;
        OneLineError(Cli(args), "bad.jsonl");
        Assert.False(Directory.Exists(output), "a failed run left its output folder (metrics.jsonl, token-cache)");
    }

    static string Newest(string output) => Directory.GetDirectories(Path.Combine(output, "checkpoints")).Order(StringComparer.Ordinal).Last();

    [Fact]
    public void Corrupt_metrics_are_refused_before_resuming()
    {
        string output = run.Copy();
        string metrics = Path.Combine(output, "metrics.jsonl");
        var lines = File.ReadAllLines(metrics).ToList();
        lines.Insert(1, "{\"event\": \"step\", \"step\": [");
        File.WriteAllLines(metrics, lines);
        string adapter = Path.Combine(output, "adapter", "adapter_model.safetensors");
        var before = File.GetLastWriteTimeUtc(adapter);
        OneLineError(Cli(run.Args(output)), "metrics.jsonl:2");
        Assert.Equal(before, File.GetLastWriteTimeUtc(adapter));
    }

    static void EditState(string output, Action<JsonObject> edit)
    {
        string path = Path.Combine(Newest(output), "trainer_state.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    [Fact]
    public void Damaged_trainer_state_is_refused_with_its_key()
    {
        string a = run.Copy();
        EditState(a, j => j["step"] = new JsonArray());
        OneLineError(Cli(run.Args(a)), "trainer_state.json", "\"step\"");
        string b = run.Copy();
        EditState(b, j => j["optimizer_steps"] = null);
        OneLineError(Cli(run.Args(b)), "trainer_state.json", "\"optimizer_steps\"");
    }

    [Fact]
    public void Optimizer_state_of_the_wrong_shape_is_refused_before_libtorch_sees_it()
    {
        string output = run.Copy();
        string path = Path.Combine(Newest(output), "optimizer.safetensors");
        var tensors = new List<(string, torch.Tensor)>();
        using (var file = SafetensorsFile.Open(path))
            foreach (var name in file.Entries.Keys.Order(StringComparer.Ordinal))
                tensors.Add((name, name == "m.0" ? torch.zeros(3) : file.Read(name)));
        SafetensorsFile.Write(path, tensors);
        foreach (var (_, t) in tensors) t.Dispose();
        OneLineError(Cli(run.Args(output)), "optimizer.safetensors", "m.0", "[3]");
    }

    [Fact]
    public void Adapter_shape_of_2_32_squared_is_refused()
    {
        string output = run.Copy();
        string path = Path.Combine(Newest(output), "adapter_model.safetensors");
        var bytes = File.ReadAllBytes(path);
        long length = BitConverter.ToInt64(bytes, 0);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)length);
        var json = JsonNode.Parse(header)!.AsObject();
        var first = json.First(kv => kv.Key != "__metadata__").Value!.AsObject();
        first["shape"] = new JsonArray(4294967296L, 4294967296L);
        byte[] newHeader = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
        using (var f = File.Create(path))
        {
            f.Write(BitConverter.GetBytes((long)newHeader.Length));
            f.Write(newHeader);
            f.Write(bytes, 8 + (int)length, bytes.Length - 8 - (int)length);
        }
        OneLineError(Cli(run.Args(output)), "adapter_model.safetensors", "overflows");
    }
}
