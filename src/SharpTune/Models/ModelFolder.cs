using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>A Hugging Face model folder (its weights and config): config.json plus model.safetensors or a sharded set named by
/// model.safetensors.index.json. Opening it validates every header; loading streams one tensor at a time.</summary>
public sealed class ModelFolder : IDisposable
{
    readonly List<SafetensorsFile> _files;
    readonly Dictionary<string, SafetensorsFile> _byName = new();

    public string Directory { get; }
    public ModelConfig Config { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Tensors { get; }

    ModelFolder(string dir, ModelConfig config, List<SafetensorsFile> files)
    {
        Directory = dir; Config = config; _files = files;
        var tensors = new Dictionary<string, SafetensorsEntry>();
        foreach (var f in files)
            foreach (var (name, e) in f.Entries)
            {
                if (_byName.TryGetValue(name, out var other))
                    throw new SharpTuneException($"{f.Path}: tensor '{name}' is also in {other.Path}");
                _byName[name] = f;
                tensors[name] = e;
            }
        Tensors = tensors;
    }

    public static ModelFolder Open(string dir)
    {
        var config = ModelConfig.Load(dir);
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var path in WeightFiles(dir)) files.Add(SafetensorsFile.Open(path));
            return new ModelFolder(dir, config, files);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    static IEnumerable<string> WeightFiles(string dir)
    {
        string single = Path.Combine(dir, "model.safetensors");
        string index = Path.Combine(dir, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            var map = JsonFile.Read(index)["weight_map"];
            var shards = map.Properties().Select(kv => kv.Value.String()).Distinct().Order(StringComparer.Ordinal).ToList();
            foreach (var shard in shards)
            {
                if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard.Contains("..") || shard.Contains('\0'))
                    throw new SharpTuneException($"{index}: weight_map names an invalid shard file {SharpTuneException.Quote(shard)}");
                if (!File.Exists(Path.Combine(dir, shard)))
                    throw new SharpTuneException($"{index}: shard '{shard}' named in weight_map is missing from {dir}");
            }
            return shards.Select(s => Path.Combine(dir, s));
        }
        if (File.Exists(single)) return [single];
        var bins = System.IO.Directory.GetFiles(dir, "*.bin").Concat(System.IO.Directory.GetFiles(dir, "*.pth")).ToList();
        throw new SharpTuneException(bins.Count > 0
            ? $"{dir}: only PyTorch pickle weights ({Path.GetFileName(bins[0])}) found; SharpTune reads safetensors (model.safetensors or model.safetensors.index.json)"
            : $"{dir}: no model.safetensors or model.safetensors.index.json");
    }

    /// <summary>The dtype to compute in: "auto" is the checkpoint's half-precision dtype on a GPU and float32 on the CPU.</summary>
    public static ScalarType ResolveDType(string dtype, ModelConfig config, Device device) => dtype.ToLowerInvariant() switch
    {
        "auto" when device.type == DeviceType.CPU => float32,
        "auto" => config.DType is "float16" ? float16 : bfloat16,
        "float32" or "fp32" => float32,
        "bfloat16" or "bf16" => bfloat16,
        "float16" or "fp16" => float16,
        "float64" or "fp64" => float64,
        _ => throw new SharpTuneException($"--dtype: expected auto, float32, bfloat16, float16 or float64, got '{dtype}'"),
    };

    readonly HashSet<string> _used = new();

    /// <summary>Whether the checkpoint holds a tensor of this name.</summary>
    public bool Has(string name) => _byName.ContainsKey(name);

    /// <summary>The file that holds <paramref name="name"/> (for error messages).</summary>
    public string FileOf(string name) => _byName.TryGetValue(name, out var f) ? f.Path : Directory;

    /// <summary>Reads one tensor as stored (CPU, the file's dtype) and records it as used by the model.</summary>
    public Tensor ReadRaw(string name)
    {
        if (!_byName.TryGetValue(name, out var file))
            throw new SharpTuneException($"{Directory}: weight '{name}' is missing from the checkpoint (config.json says {Config.Architecture} with {Config.NumLayers} layers)");
        _used.Add(name);
        return file.Read(name);
    }

    /// <summary>Loads the model onto <paramref name="device"/>, converting each tensor as it is read. The seven
    /// projections' weights come from <paramref name="projections"/> when given (a quantizing loader), one at a time,
    /// so that only one layer's weight in the checkpoint's dtype is in memory at once. With <paramref name="hostEmbedding"/>
    /// (on CUDA, embeddings not tied to lm_head) the embedding table stays in pinned host memory and lookups gather
    /// their rows with it (see <see cref="CausalLM.HostEmbeddingLookup"/>). With <paramref name="compressHead"/>, lm_head is
    /// read into host memory and compressed from there (<see cref="CausalLM.CompressHead"/>; the function puts its result on
    /// the device): its dense form never takes GPU memory, where it would set the load's peak (a 1 GB head of an 8B model
    /// on top of every quantized layer).</summary>
    public CausalLM LoadModel(Device device, ScalarType dtype, ProjectionLoader? projections = null, Func<Tensor, Tensor, Tensor>? hostEmbedding = null,
        Func<Tensor, IFrozenWeight>? compressHead = null)
    {
        bool embeddingOnHost = hostEmbedding is not null && device.type == DeviceType.CUDA && !Config.TieWordEmbeddings;
        bool headOnHost = compressHead is not null && !Config.TieWordEmbeddings;
        _used.Clear();
        var loaded = new List<IDisposable>();
        Tensor Fetch(string name, long[] shape)
        {
            if (_byName.TryGetValue(name, out var file) && !file.Entries[name].Shape.SequenceEqual(shape))
                throw new SharpTuneException($"{file.Path}: weight '{name}' has shape [{string.Join(", ", file.Entries[name].Shape)}], config.json implies [{string.Join(", ", shape)}]");
            using var raw = ReadRaw(name);
            var t = (embeddingOnHost && name == "model.embed_tokens.weight" ? raw.to(dtype).pin_memory()
                : headOnHost && name == "lm_head.weight" ? raw.to(dtype) : raw.to(dtype, device)).DetachFromDisposeScope();
            loaded.Add(t);
            return t;
        }
        Func<string, long[], IFrozenWeight>? projection = projections is null ? null : (name, shape) =>
        {
            var w = projections(this, name, shape, device, dtype);
            loaded.Add(w);
            return w;
        };

        CausalLM model;
        try { model = new CausalLM(Config, device, dtype, Fetch, projection) { HostEmbeddingLookup = embeddingOnHost ? hostEmbedding : null }; }
        catch
        {
            foreach (var t in loaded) t.Dispose();   // a missing or misshapen weight: free what was loaded
            throw;
        }
        if (compressHead is not null)
        {
            try { model.CompressHead(compressHead, "lm_head_quantization"); }
            catch { model.Dispose(); throw; }
        }
        var unexpected = Tensors.Keys.Where(n => !_used.Contains(n) && !n.EndsWith("rotary_emb.inv_freq")
            && !(Config.TieWordEmbeddings && n == "lm_head.weight")).Order().ToList();
        if (unexpected.Count > 0)
        {
            model.Dispose();
            throw new SharpTuneException($"{Directory}: {unexpected.Count} weights do not belong to a {Config.Architecture} of this config "
                + $"(e.g. {string.Join(", ", unexpected.Take(3))}); is config.json from another model?");
        }
        return model;
    }

    /// <summary>Reads one stored tensor (CPU, the file's dtype), for tools that stream a checkpoint tensor by tensor.</summary>
    public Tensor Read(string name) => _byName.TryGetValue(name, out var file) ? file.Read(name)
        : throw new SharpTuneException($"{Directory}: weight '{name}' is missing from the checkpoint");

    /// <summary>The names and shapes of the weights a model of <paramref name="config"/> is built from, in the
    /// decoder's order (the table in <see cref="CausalLM"/>'s constructor), lm_head left out when tied.</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> WeightNames(ModelConfig config)
    {
        var names = new List<(string, long[])>();
        using var model = new CausalLM(config, CPU, float32, (name, shape) => { names.Add((name, shape)); return empty(0); });
        return names;
    }

    /// <summary>Bytes of all weights as stored.</summary>
    public long WeightBytes => Tensors.Values.Sum(e => e.ByteLength);

    public IReadOnlyList<string> StoredDTypes => Tensors.Values.Select(e => e.DType).Distinct().Order().ToList();

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
