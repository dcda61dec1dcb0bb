using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

/// <summary>
/// A `*-bnb-4bit` checkpoint built by hand in bitsandbytes' layout (bitsandbytes is not installed anywhere here): the
/// layout read from bitsandbytes' QuantState.as_dict(packed=True) / from_dict and its 4-bit dequantization kernel
/// (high nibble = first value; absmax = nested_quant_map[absmax_code] · nested_absmax + nested_offset), with
/// indices and absmax codes from a fixed pattern, and the expected weights computed from that definition in double.
/// The stored maps are deliberately not our own (a linear nested map), so the loader must use what the file says.
/// </summary>
public class BnbCheckpointTests
{
    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel());
    const float Offset = 0.02f;
    static readonly float[] NestedMap = Enumerable.Range(0, 256).Select(i => -1f + 2f * i / 255).ToArray();

    static readonly string[] Projections = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
    const string DenseKept = "model.layers.1.mlp.down_proj.weight";   // as llm_int8_skip_modules leaves some layers dense

    static int Index(string name, long j) => (int)((j * 5 + name.Length) % 16);
    static int AbsmaxCode(long b) => (int)((b * 37 + 11) % 256);
    static float NestedAbsmax(long k) => 0.01f * (k + 1);

    static double Expected(string name, long j) =>
        Codebooks.Nf4[Index(name, j)] * ((double)NestedMap[AbsmaxCode(j / 64)] * NestedAbsmax(j / 64 / 256) + Offset);

    /// <summary>Writes the bnb variant of the tiny model; <paramref name="drop"/> leaves one tensor out.</summary>
    static string Build(string? drop = null)
    {
        string src = Tiny.Value, dir = Path.Combine(TestPaths.TempDir(), "bnb");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(src).Where(f => !f.EndsWith(".safetensors") && !f.EndsWith("config.json")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        File.Copy(Path.Combine(src, "generation_config.json"), Path.Combine(dir, "generation_config.json"));
        var config = JsonFile.ReadObject(Path.Combine(src, "config.json"));
        config["quantization_config"] = new JsonObject
        {
            ["quant_method"] = "bitsandbytes", ["load_in_4bit"] = true, ["load_in_8bit"] = false, ["bnb_4bit_quant_type"] = "nf4",
            ["bnb_4bit_use_double_quant"] = true, ["bnb_4bit_compute_dtype"] = "bfloat16",
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());

        using var original = SafetensorsFile.Open(Path.Combine(src, "model.safetensors"));
        var tensors = new List<(string, Tensor)>();
        foreach (var name in original.Entries.Keys)
        {
            bool projection = Projections.Any(p => name.EndsWith(p + ".weight")) && name != DenseKept;
            var dense = original.Read(name);
            if (!projection) { tensors.Add((name, dense)); continue; }
            long outF = dense.shape[0], inF = dense.shape[1], n = outF * inF, blocks = n / 64, nested = (blocks + 255) / 256;
            dense.Dispose();
            var packed = new byte[n / 2];
            for (long k = 0; k < n / 2; k++) packed[k] = (byte)(Index(name, 2 * k) << 4 | Index(name, 2 * k + 1));
            var state = new JsonObject
            {
                ["quant_type"] = "nf4", ["absmax"] = null, ["blocksize"] = 64, ["quant_map"] = null, ["dtype"] = "bfloat16",
                ["shape"] = new JsonArray(outF, inF), ["nested_blocksize"] = 256, ["nested_dtype"] = "float32", ["nested_offset"] = Offset,
            };
            state.Remove("absmax"); state.Remove("quant_map");
            tensors.Add((name, tensor(packed, [n / 2, 1])));
            tensors.Add((name + ".absmax", tensor(Enumerable.Range(0, (int)blocks).Select(b => (byte)AbsmaxCode(b)).ToArray())));
            tensors.Add((name + ".quant_map", tensor(Codebooks.Nf4)));
            tensors.Add((name + ".nested_absmax", tensor(Enumerable.Range(0, (int)nested).Select(k => NestedAbsmax(k)).ToArray())));
            tensors.Add((name + ".nested_quant_map", tensor(NestedMap)));
            tensors.Add((name + ".quant_state.bitsandbytes__nf4", tensor(Encoding.UTF8.GetBytes(state.ToJsonString()))));
        }
        SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), tensors.Where(t => t.Item1 != drop).ToList());
        foreach (var (_, t) in tensors) t.Dispose();
        return dir;
    }

    [Fact]
    public void PackedWeightsDequantizeAsTheLayoutDefines()
    {
        string dir = Build();
        using var ckpt = ModelFolder.Open(dir);
        using var model = ckpt.LoadModel(TestPaths.Cpu, float32, WeightQuantization.For("nf4", dir));
        int checkedCount = 0;
        foreach (var linear in model.Projections)
        {
            string name = linear.Name + ".weight";
            if (name == DenseKept) { Assert.IsType<DenseWeight>(linear.Weight); continue; }
            var q = Assert.IsType<FourBitWeight>(linear.Weight);
            using var dense = q.Dense(float32);
            var values = dense.contiguous().data<float>().ToArray();
            for (long j = 0; j < values.Length; j++)
                Assert.True(Math.Abs(values[j] - Expected(name, j)) <= 1e-6 * Math.Abs(Expected(name, j)) + 1e-9, $"{name}[{j}]: {values[j]} vs {Expected(name, j)}");
            checkedCount++;
        }
        Assert.Equal(13, checkedCount);   // 2 layers × 7 projections, one kept dense
    }

    [Fact]
    public void QuantizationNoneExpandsToDenseAndAnotherTypeIsRefused()
    {
        string dir = Build();
        using var ckpt = ModelFolder.Open(dir);
        using (var model = ckpt.LoadModel(TestPaths.Cpu, float32, WeightQuantization.For("none", dir)))
        {
            var w = Assert.IsType<DenseWeight>(model.Layers[0].Q.Weight);
            Assert.Equal(Expected("model.layers.0.self_attn.q_proj.weight", 7), w.Tensor[0, 7].item<float>(), 6);
        }
        var e = Assert.Throws<SharpTuneException>(() => WeightQuantization.For("int8", dir));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("nf4", e.Message);
    }

    [Theory]
    [InlineData("model.layers.0.self_attn.k_proj.weight.quant_state.bitsandbytes__nf4")]
    [InlineData("model.layers.1.mlp.up_proj.weight.nested_absmax")]
    [InlineData("model.layers.0.mlp.gate_proj.weight.absmax")]
    public void AMissingQuantStateTensorIsNamed(string missing)
    {
        string dir = Build(drop: missing);
        using var ckpt = ModelFolder.Open(dir);
        var e = Assert.Throws<SharpTuneException>(() => ckpt.LoadModel(TestPaths.Cpu, float32, WeightQuantization.For("nf4", dir)).Dispose());
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains(missing.EndsWith("nf4") ? missing.Replace("k_proj.weight.quant_state.bitsandbytes__nf4", "k_proj.weight") : missing, e.Message);
    }
}
