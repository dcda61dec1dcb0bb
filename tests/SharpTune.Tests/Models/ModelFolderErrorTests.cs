using System.Buffers.Binary;
using System.Text;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Bad checkpoints get one clear message naming the file and the problem.</summary>
public class ModelFolderErrorTests
{
    static string CopyOf(string arch)
    {
        string dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(TestPaths.Model(arch)))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    static void WriteRawSafetensors(string path, string headerJson, int dataBytes)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var f = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, header.Length);
        f.Write(len);
        f.Write(header);
        f.Write(new byte[dataBytes]);
    }

    static SharpTuneException Fails(Action action) => Assert.Throws<SharpTuneException>(action);

    [Fact]
    public void MissingConfig()
    {
        string dir = CopyOf("qwen2");
        File.Delete(Path.Combine(dir, "config.json"));
        var e = Fails(() => ModelFolder.Open(dir).Dispose());
        Assert.Contains("config.json", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void UnsupportedArchitectureListsSupportedOnes()
    {
        string dir = CopyOf("qwen2");
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("Qwen2ForCausalLM", "MambaForCausalLM"));
        var e = Fails(() => ModelFolder.Open(dir).Dispose());
        Assert.Contains("MambaForCausalLM", e.Message);
        Assert.Contains("LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM", e.Message);
    }

    [Theory]
    [InlineData("\"use_sliding_window\": false", "\"use_sliding_window\": true", "use_sliding_window")]
    [InlineData("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "gelu")]
    [InlineData("\"hidden_act\": \"silu\"", "\"hidden_act\": \"silu\", \"hidden_act\": \"silu\"", "invalid JSON")]   // a duplicate key
    public void UnsupportedConfigSwitchesAreNamed(string find, string replace, string expected)
    {
        string dir = CopyOf("qwen2");
        string path = Path.Combine(dir, "config.json");
        string text = File.ReadAllText(path);
        Assert.Contains(find, text);
        File.WriteAllText(path, text.Replace(find, replace));
        Assert.Contains(expected, Fails(() => ModelFolder.Open(dir).Dispose()).Message);
    }

    [Fact]
    public void UnsupportedDType()
    {
        string path = Path.Combine(TestPaths.TempDir(), "model.safetensors");
        WriteRawSafetensors(path, """{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}""", 2);
        var e = Fails(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains("F8_E4M3", e.Message);
    }

    [Fact]
    public void TruncatedFile()
    {
        string dir = CopyOf("llama");
        string path = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Fails(() => ModelFolder.Open(dir).Dispose());
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void OverlappingOffsets()
    {
        string path = Path.Combine(TestPaths.TempDir(), "x.safetensors");
        WriteRawSafetensors(path, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        var e = Fails(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains("overlap", e.Message);
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void OffsetsPastTheEnd()
    {
        string path = Path.Combine(TestPaths.TempDir(), "x.safetensors");
        WriteRawSafetensors(path, """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8);
        var e = Fails(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains("run past the end", e.Message);
    }

    [Fact]
    public void HeaderLengthLargerThanFile()
    {
        string path = Path.Combine(TestPaths.TempDir(), "x.safetensors");
        File.WriteAllBytes(path, [0xff, 0xff, 0, 0, 0, 0, 0, 0, (byte)'{']);
        var e = Fails(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains("header length", e.Message);
    }

    [Fact]
    public void ShardNamedInIndexIsMissing()
    {
        string dir = CopyOf("qwen3");
        File.Move(Path.Combine(dir, "model.safetensors"), Path.Combine(dir, "model-00001-of-00002.safetensors"));
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
            """{"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}}""");
        var e = Fails(() => ModelFolder.Open(dir).Dispose());
        Assert.Contains("model-00002-of-00002.safetensors", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void ShapeMismatchNamesTheWeight()
    {
        string dir = CopyOf("qwen2");
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"intermediate_size\": 160", "\"intermediate_size\": 128"));
        using var ckpt = ModelFolder.Open(dir);
        var e = Fails(() => ckpt.LoadModel(TestPaths.Cpu, float32).Dispose());
        Assert.Contains("gate_proj.weight", e.Message);
    }

    [Fact]
    public void ShardedCheckpointLoadsLikeSingleFile()
    {
        _ = TestPaths.Cpu;
        string dir = CopyOf("qwen3");
        using (var whole = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors")))
        {
            var names = whole.Entries.Keys.Order().ToList();
            var halves = new[] { names.Take(names.Count / 2).ToList(), names.Skip(names.Count / 2).ToList() };
            var map = new Dictionary<string, string>();
            for (int s = 0; s < 2; s++)
            {
                string shard = $"model-0000{s + 1}-of-00002.safetensors";
                using var scope = NewDisposeScope();
                SafetensorsFile.Write(Path.Combine(dir, shard), halves[s].Select(n => (n, whole.Read(n))).ToList());
                foreach (var n in halves[s]) map[n] = shard;
            }
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"),
                System.Text.Json.JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));
        }
        File.Delete(Path.Combine(dir, "model.safetensors"));
        using var sharded = ModelFolder.Open(dir);
        using var model = sharded.LoadModel(TestPaths.Cpu, float32);
        using var reference = SafetensorsFile.Open(Path.Combine(TestPaths.Model("qwen3"), "logits.safetensors"));
        using var scope2 = NewDisposeScope();
        using var noGrad = no_grad();
        var diff = (model.Forward(reference.Read("input_ids")) - reference.Read("logits_fp32")).abs().max().item<float>();
        Assert.True(diff <= 1e-4);
    }
}
