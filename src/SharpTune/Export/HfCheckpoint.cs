using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>
/// Base + adapter merged into a Hugging Face checkpoint folder: safetensors in the base's stored dtype, split into
/// shards of at most <c>maxShardBytes</c> (HF's default: 5 GB) with model.safetensors.index.json when there is more
/// than one, and the small files (config, generation config, tokenizer) copied alongside. Each shard's header is
/// written from the shapes first, then its tensors one at a time: memory holds one weight, not a shard.
/// </summary>
public static class HfCheckpoint
{
    public const long DefaultMaxShardBytes = 5_000_000_000;

    static readonly string[] SmallFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "chat_template.jinja", "vocab.json", "merges.txt", "added_tokens.json",
    ];

    public static void Write(MergedWeights weights, string dir, long maxShardBytes = DefaultMaxShardBytes, Action<int, int>? progress = null)
    {
        Directory.CreateDirectory(dir);
        var type = weights.StoredType;
        long elementSize = type switch { ScalarType.Float32 => 4, ScalarType.BFloat16 or ScalarType.Float16 => 2, _ => 4 };
        if (type is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16)) type = ScalarType.Float32;

        var shards = new List<List<(string Name, long[] Shape)>> { new() };
        long current = 0;
        foreach (var w in weights.Weights)
        {
            long bytes = w.Shape.Aggregate(1L, (a, d) => a * d) * elementSize;
            if (current > 0 && current + bytes > maxShardBytes) { shards.Add([]); current = 0; }
            shards[^1].Add(w);
            current += bytes;
        }
        int done = 0, total = weights.Weights.Count;
        var weightMap = new JsonObject();
        long totalSize = 0;
        for (int s = 0; s < shards.Count; s++)
        {
            string file = shards.Count == 1 ? "model.safetensors" : $"model-{s + 1:00000}-of-{shards.Count:00000}.safetensors";
            WriteShard(Path.Combine(dir, file), shards[s], type, elementSize, weights, () => progress?.Invoke(++done, total));
            foreach (var (name, shape) in shards[s])
            {
                weightMap[name] = file;
                totalSize += shape.Aggregate(1L, (a, d) => a * d) * elementSize;
            }
        }
        if (shards.Count > 1)
        {
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = totalSize }, ["weight_map"] = weightMap };
            AtomicFile.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        foreach (var name in SmallFiles)
        {
            string source = Path.Combine(weights.ModelDir, name);
            if (File.Exists(source)) AtomicFile.Write(Path.Combine(dir, name), s => { using var f = File.OpenRead(source); f.CopyTo(s); });
        }
    }

    static void WriteShard(string path, List<(string Name, long[] Shape)> tensors, ScalarType type, long elementSize, MergedWeights weights, Action onTensor)
    {
        string dtype = SafetensorsFile.DTypeName(type);
        var entries = tensors.Select(t => (t.Name, dtype, t.Shape, t.Shape.Aggregate(1L, (a, d) => a * d) * elementSize)).ToList();
        SafetensorsFile.WriteStreamed(path, entries, (stream, index) =>
        {
            using var scope = NewDisposeScope();
            var flat = weights.Read(tensors[index].Name).to(type).reshape(-1);
            long n = flat.shape[0], chunk = 1L << 26;                  // a Span holds at most 2 GB
            for (long i = 0; i < n; i += chunk)
            {
                using var inner = NewDisposeScope();
                stream.Write(flat.narrow(0, i, Math.Min(chunk, n - i)).contiguous().bytes);
            }
            onTensor();
        }, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
