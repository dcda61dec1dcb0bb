using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// Reads projections that bitsandbytes already quantized (the `*-bnb-4bit` checkpoints, as transformers saves a
/// Params4bit): for a weight W the checkpoint holds
///   W                                   uint8 [out·in/2, 1]   two 4-bit indices per byte, high nibble first
///   W.absmax                            uint8 (double-quantized) or fp32, one per block
///   W.quant_map                         fp32 [16]   the code
///   W.nested_absmax, W.nested_quant_map fp32        (double quantization only)
///   W.quant_state.bitsandbytes__nf4|fp4 uint8       JSON: quant_type, blocksize, dtype, shape, nested_blocksize, nested_offset
/// Projections the quantizer skipped are stored dense and load as such.
/// </summary>
public static class BnbCheckpoint
{
    /// <summary>config.json's quantization_config when it is a bitsandbytes 4-bit one: the quant type (nf4|fp4); null when
    /// the checkpoint is not pre-quantized.</summary>
    public static string? QuantType(string modelDir)
    {
        string path = Path.Combine(modelDir, "config.json");
        if (!File.Exists(path)) return null;
        if (JsonFile.ReadObject(path)["quantization_config"] is not JsonObject q) return null;
        string method = q["quant_method"]?.GetValue<string>() ?? "(none)";
        if (method != "bitsandbytes")
            throw new SharpTuneException($"{path}: quantization_config.quant_method '{method}' is not supported (only bitsandbytes 4-bit checkpoints)");
        if (q["load_in_4bit"]?.GetValue<bool>() != true)
            throw new SharpTuneException($"{path}: quantization_config is bitsandbytes 8-bit (load_in_8bit); only 4-bit (load_in_4bit) checkpoints are supported");
        string type = q["bnb_4bit_quant_type"]?.GetValue<string>() ?? "fp4";
        if (type is not ("nf4" or "fp4"))
            throw new SharpTuneException($"{path}: quantization_config.bnb_4bit_quant_type '{type}' is not supported (nf4 or fp4)");
        return type;
    }

    /// <summary>The <see cref="ProjectionLoader"/> for a pre-quantized checkpoint; <paramref name="dense"/> expands each
    /// weight into the compute dtype instead of keeping it in 4 bits.</summary>
    public static ProjectionLoader Loader(bool dense) => (checkpoint, name, shape, device, dtype) =>
    {
        var w = Read(checkpoint, name, shape, device);
        if (w is DenseWeight d) return new DenseWeight(d.Tensor.to(dtype).DetachFromDisposeScope());
        if (!dense) return w;
        using (w) return new DenseWeight(w.Dense(dtype).DetachFromDisposeScope());
    };

    /// <summary>One projection's weight: a <see cref="FourBitWeight"/> when quantized, else the stored tensor (as read).</summary>
    public static IFrozenWeight Read(ModelFolder checkpoint, string name, long[] shape, Device device)
    {
        string file = checkpoint.FileOf(name);
        string? stateName = new[] { "nf4", "fp4" }.Select(t => $"{name}.quant_state.bitsandbytes__{t}").FirstOrDefault(checkpoint.Has);
        if (stateName is null)
        {
            if (checkpoint.Has(name) && checkpoint.Tensors[name].DType == "U8")
                throw new SharpTuneException($"{file}: '{name}' is packed 4-bit (uint8) but its quant-state tensor '{name}.quant_state.bitsandbytes__nf4' (or __fp4) is missing");
            if (checkpoint.Has(name) && !checkpoint.Tensors[name].Shape.SequenceEqual(shape))
                throw new SharpTuneException($"{file}: weight '{name}' has shape [{string.Join(", ", checkpoint.Tensors[name].Shape)}], config.json implies [{string.Join(", ", shape)}]");
            using var raw = checkpoint.ReadRaw(name);
            return new DenseWeight(raw.to(device).DetachFromDisposeScope());
        }

        var state = ReadState(checkpoint, stateName);
        string Need(string key) => checkpoint.Has($"{name}.{key}") ? $"{name}.{key}"
            : throw new SharpTuneException($"{checkpoint.FileOf(stateName)}: '{name}' is quantized ({stateName}) but the tensor '{name}.{key}' is missing");
        string StateString(string key) => state[key]?.ToString() ?? throw new SharpTuneException($"{file}: {stateName} has no '{key}'");

        string quantType = StateString("quant_type");
        int blockSize = int.Parse(StateString("blocksize"));
        var storedShape = (state["shape"] as JsonArray)?.Select(v => v!.GetValue<long>()).ToArray() ?? [];
        if (!storedShape.SequenceEqual(shape))
            throw new SharpTuneException($"{file}: {stateName} gives shape [{string.Join(", ", storedShape)}], config.json implies [{string.Join(", ", shape)}] for '{name}'");
        long n = shape[0] * shape[1];
        if (n % blockSize != 0 || n % 2 != 0)
            throw new SharpTuneException($"{file}: '{name}' has {n} values, not a multiple of its blocksize {blockSize}");
        if (!checkpoint.Has(name))
            throw new SharpTuneException($"{checkpoint.FileOf(stateName)}: '{stateName}' is there but the packed weight '{name}' is missing");
        var packedEntry = checkpoint.Tensors[name];
        if (packedEntry.DType != "U8" || packedEntry.Shape.Aggregate(1L, (a, d) => a * d) != n / 2)
            throw new SharpTuneException($"{file}: '{name}' should be uint8 with {n / 2} bytes (two 4-bit values each), found {packedEntry.DType} [{string.Join(", ", packedEntry.Shape)}]");

        Tensor Load(string key) { using var raw = checkpoint.ReadRaw(key); return raw.to(device).DetachFromDisposeScope(); }
        bool nested = state["nested_offset"] is not null || checkpoint.Has($"{name}.nested_absmax");
        string absmaxKey = Need("absmax"), codeKey = Need("quant_map");
        string? nestedAbsmaxKey = nested ? Need("nested_absmax") : null, nestedCodeKey = nested ? Need("nested_quant_map") : null;
        long blocks = n / blockSize;
        if (checkpoint.Tensors[absmaxKey].Shape.Aggregate(1L, (a, d) => a * d) != blocks)
            throw new SharpTuneException($"{file}: '{absmaxKey}' should hold {blocks} values (one per block of {blockSize})");

        var packed = Load(name).reshape(-1);
        var code = Load(codeKey).to(float32);
        BlockScales scales;
        if (nested)
        {
            int nestedBlock = int.Parse(StateString("nested_blocksize"));
            scales = new BlockScales
            {
                Codes = Load(absmaxKey).reshape(-1), NestedAbsmax = Load(nestedAbsmaxKey!).to(float32), NestedCode = Load(nestedCodeKey!).to(float32),
                Offset = float.Parse(StateString("nested_offset"), System.Globalization.CultureInfo.InvariantCulture), NestedBlockSize = nestedBlock,
            };
        }
        else scales = new BlockScales { Plain = Load(absmaxKey).to(float32).reshape(-1) };
        return new FourBitWeight
        {
            Format = quantType, Packed = packed, Code = code, Absmax = scales, OutFeatures = shape[0], InFeatures = shape[1], BlockSize = blockSize,
        };
    }

    static JsonObject ReadState(ModelFolder checkpoint, string stateName)
    {
        using var raw = checkpoint.ReadRaw(stateName);
        try
        {
            return JsonNode.Parse(Encoding.UTF8.GetString(raw.bytes)) as JsonObject
                ?? throw new SharpTuneException($"{checkpoint.FileOf(stateName)}: '{stateName}' is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{checkpoint.FileOf(stateName)}: '{stateName}' is not valid JSON ({e.Message})");
        }
    }
}
