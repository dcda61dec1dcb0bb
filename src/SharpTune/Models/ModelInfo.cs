using System.Text;

namespace SharpTune.Models;

/// <summary>What `sharptune info` shows, read from config.json and the safetensors headers (no weights loaded).</summary>
public sealed record ModelInfo(
    string Directory,
    string Architecture,
    long Parameters,
    long WeightBytes,
    IReadOnlyList<string> StoredDTypes,
    int ContextLength,
    int Layers,
    int HiddenSize,
    int Heads,
    int KvHeads,
    int HeadDim,
    int VocabSize,
    bool TiedEmbeddings,
    string? RopeScaling,
    bool HasTokenizer,
    bool HasChatTemplate)
{
    public static ModelInfo Read(string dir)
    {
        using var ckpt = ModelFolder.Open(dir);
        var c = ckpt.Config;
        long stored = ckpt.Tensors.Values.Sum(e => e.Shape.Aggregate(1L, (a, d) => a * d));
        string configPath = Path.Combine(dir, "tokenizer_config.json");
        bool chatTemplate = File.Exists(configPath) && File.ReadAllText(configPath).Contains("\"chat_template\"")
            || File.Exists(Path.Combine(dir, "chat_template.jinja"));
        return new ModelInfo(dir, c.Architecture, stored, ckpt.WeightBytes, ckpt.StoredDTypes, c.MaxPositionEmbeddings,
            c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.TieWordEmbeddings,
            c.RopeScaling is { } r ? $"{r.Type} x{r.Factor}" : null, File.Exists(Path.Combine(dir, "tokenizer.json")), chatTemplate);
    }

    public string ToText()
    {
        var s = new StringBuilder();
        s.AppendLine($"model         {Directory}");
        s.AppendLine($"architecture  {Architecture}");
        s.AppendLine($"parameters    {Parameters:N0} ({HumanCount(Parameters)})");
        s.AppendLine($"weights       {WeightBytes:N0} bytes ({HumanBytes(WeightBytes)}), dtype {string.Join(", ", StoredDTypes)}");
        s.AppendLine($"context       {ContextLength:N0} tokens{(RopeScaling is null ? "" : $" (rope scaling {RopeScaling})")}");
        s.AppendLine($"shape         {Layers} layers, hidden {HiddenSize}, {Heads} heads ({KvHeads} KV heads, head dim {HeadDim}), vocab {VocabSize:N0}{(TiedEmbeddings ? ", tied embeddings" : "")}");
        s.Append($"tokenizer     {(HasTokenizer ? "tokenizer.json" : "missing")}{(HasChatTemplate ? ", chat template" : ", no chat template")}");
        return s.ToString();
    }

    static string HumanBytes(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.##} GiB"
        : bytes >= 1L << 20 ? $"{bytes / (double)(1L << 20):0.##} MiB" : $"{bytes / 1024.0:0.##} KiB";

    static string HumanCount(long n) => n >= 1_000_000_000 ? $"{n / 1e9:0.##} B" : n >= 1_000_000 ? $"{n / 1e6:0.##} M" : $"{n / 1e3:0.##} K";
}
