using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>One LoRA pair of a PEFT adapter, for the projection <see cref="Module"/> (e.g. "model.layers.0.self_attn.q_proj").</summary>
public sealed record LoraPair(string Module, string NameA, string NameB, long InFeatures, long OutFeatures);

/// <summary>
/// A base checkpoint with an optional PEFT LoRA adapter, read one weight at a time with the adapter merged in
/// (W + scaling · B·A, computed in fp32): no whole model is ever held in memory. Opening it checks that the adapter
/// fits the base (every target module present, every shape right, no stray tensors) before anything is written.
/// </summary>
public sealed class MergedWeights : IDisposable
{
    readonly ModelFolder _checkpoint;
    readonly SafetensorsFile? _adapterFile;
    readonly Dictionary<string, LoraPair> _pairs = [];

    public string ModelDir { get; }
    public ModelConfig Config => _checkpoint.Config;
    public LoraOptions? Lora { get; }
    public IReadOnlyList<(string Name, long[] Shape)> Weights { get; }
    public IReadOnlyCollection<LoraPair> Pairs => _pairs.Values;
    /// <summary>The checkpoint's stored dtype when all weights share it (what an HF export keeps).</summary>
    public ScalarType StoredType { get; }

    MergedWeights(string modelDir, ModelFolder checkpoint, SafetensorsFile? adapterFile, LoraOptions? lora)
    {
        ModelDir = modelDir; _checkpoint = checkpoint; _adapterFile = adapterFile; Lora = lora;
        Weights = ModelFolder.WeightNames(checkpoint.Config);
        var stored = checkpoint.StoredDTypes;
        StoredType = stored.Count == 1 ? SafetensorsFile.ScalarTypeOf(stored[0]) : ScalarType.Float32;
        foreach (var (name, shape) in Weights)
        {
            if (!checkpoint.Tensors.TryGetValue(name, out var entry))
                throw new SharpTuneException($"{modelDir}: weight '{name}' is missing from the checkpoint (config.json says {Config.Architecture} with {Config.NumLayers} layers)");
            if (!entry.Shape.SequenceEqual(shape))
                throw new SharpTuneException($"{modelDir}: weight '{name}' has shape [{string.Join(", ", entry.Shape)}], config.json implies [{string.Join(", ", shape)}]");
        }
    }

    public static MergedWeights Open(string modelDir, string? adapterDir)
    {
        var checkpoint = ModelFolder.Open(modelDir);
        SafetensorsFile? file = null;
        try
        {
            LoraOptions? lora = adapterDir is null ? null : LoraAdapter.ReadConfig(adapterDir);
            if (adapterDir is not null) file = SafetensorsFile.Open(Path.Combine(adapterDir, "adapter_model.safetensors"));
            var merged = new MergedWeights(modelDir, checkpoint, file, lora);
            if (lora is not null) merged.MatchAdapter(file!);
            return merged;
        }
        catch
        {
            file?.Dispose();
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>Pairs every target projection of the base with its lora_A / lora_B, checking shapes.</summary>
    void MatchAdapter(SafetensorsFile file)
    {
        var targets = Lora!.Targets;
        var expected = new HashSet<string>();
        foreach (var (name, shape) in Weights)
        {
            if (!name.EndsWith(".weight") || shape.Length != 2) continue;
            string module = name[..^".weight".Length];
            if (!targets.Contains(module[(module.LastIndexOf('.') + 1)..])) continue;
            string nameA = LoraAdapter.PeftName(module, "lora_A"), nameB = LoraAdapter.PeftName(module, "lora_B");
            expected.Add(nameA); expected.Add(nameB);
            if (!file.Entries.TryGetValue(nameA, out var a) || !file.Entries.TryGetValue(nameB, out var b))
                throw new SharpTuneException($"{file.Path}: no LoRA weights for {module} ({nameA}); is the adapter for another model?");
            long outF = shape[0], inF = shape[1], r = Lora.Rank;
            if (!a.Shape.SequenceEqual(new[] { r, inF }) || !b.Shape.SequenceEqual(new[] { outF, r }))
                throw new SharpTuneException($"{file.Path}: {module} has lora_A [{string.Join(", ", a.Shape)}] and lora_B [{string.Join(", ", b.Shape)}], "
                    + $"the base model ({ModelDir}) needs [{r}, {inF}] and [{outF}, {r}]; is the adapter for another model?");
            _pairs[name] = new LoraPair(module, nameA, nameB, inF, outF);
        }
        if (_pairs.Count == 0)
            throw new SharpTuneException($"{file.Path}: the adapter targets {string.Join(", ", targets)}, none of which is a projection of {ModelDir}");
        var extra = file.Entries.Keys.Where(n => !expected.Contains(n)).ToList();
        if (extra.Count > 0)
            throw new SharpTuneException($"{file.Path}: {extra.Count} tensors match no module of the base model (e.g. {extra[0]}); is the adapter for another model?");
    }

    /// <summary>The adapter's A [r, in] and B [out, r] in fp32 (CPU) for a merged weight's name, or null.</summary>
    public (Tensor A, Tensor B)? ReadLora(string weightName) =>
        _adapterFile is not null && _pairs.TryGetValue(weightName, out var p)
            ? (_adapterFile.Read(p.NameA).to(float32), _adapterFile.Read(p.NameB).to(float32))
            : null;

    /// <summary>One weight in fp32 on the CPU, with the adapter's update added when it has one.</summary>
    public Tensor Read(string name)
    {
        using var scope = NewDisposeScope();
        var w = _checkpoint.Read(name).to(float32);
        if (ReadLora(name) is var (a, b)) w = w.addmm_(b, a, beta: 1, alpha: (float)Lora!.Scaling);
        return w.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _adapterFile?.Dispose();
        _checkpoint.Dispose();
    }
}
