using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace SharpTune.Export;

/// <summary>
/// llama.cpp through LLamaSharp, on the CPU: what export needs from it (loading a GGUF with an optional LoRA,
/// tokenizing, end-of-generation tokens, metadata, logits of a sequence, the K-quant quantizer). All native calls
/// of the Export folder live here. The native library comes from a LLamaSharp.Backend package that the program
/// (CLI, tests) references; llama.cpp's log goes to a buffer whose tail explains a failed load.
/// </summary>
public sealed class LlamaCpp : IDisposable
{
    static readonly object Gate = new();
    static bool _configured;
    static readonly Queue<string> RecentLog = new();

    readonly LLamaWeights _weights;
    readonly LLamaContext _context;
    readonly LoraAdapter? _lora;

    public string Path { get; }

    static void Configure()
    {
        lock (Gate)
        {
            if (_configured) return;
            try
            {
                NativeLibraryConfig.All.WithLogCallback((level, message) =>
                {
                    lock (RecentLog)
                    {
                        RecentLog.Enqueue(message.TrimEnd());
                        while (RecentLog.Count > 20) RecentLog.Dequeue();
                    }
                });
            }
            catch (Exception e)
            {
                throw new SharpTuneException($"llama.cpp (LLamaSharp) could not be set up: {e.Message}", e);
            }
            NativeApi.llama_empty_call();    // loads the native library now (the quantizer alone does not)
            _configured = true;
        }
    }

    static string LogTail()
    {
        lock (RecentLog) return string.Join(" | ", RecentLog.Where(l => l.Length > 0).TakeLast(4));
    }

    LlamaCpp(string path, LLamaWeights weights, LLamaContext context, LoraAdapter? lora)
    {
        Path = path; _weights = weights; _context = context; _lora = lora;
    }

    /// <summary>Loads a GGUF (and a LoRA GGUF on top, at scale 1) with a context of <paramref name="contextLength"/> tokens.</summary>
    public static LlamaCpp Load(string path, string? loraPath = null, int contextLength = 512)
    {
        Configure();
        var p = new ModelParams(path)
        {
            ContextSize = (uint)contextLength, BatchSize = (uint)contextLength, UBatchSize = (uint)contextLength,
            GpuLayerCount = 0, Threads = Math.Max(1, Environment.ProcessorCount),
            // An f32 KV cache: llama.cpp's default f16 cache alone moves logits by ~1e-3, which would hide real differences.
            TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,    // the CPU flash-attention kernel rounds queries to f16
        };
        LLamaWeights weights;
        try { weights = LLamaWeights.LoadFromFile(p); }
        catch (Exception e) when (e is not SharpTuneException)
        {
            throw new SharpTuneException($"{path}: llama.cpp cannot load this GGUF ({e.Message}; llama.cpp: {LogTail()})", e);
        }
        LLamaContext? context = null;
        try
        {
            context = weights.CreateContext(p);
            LoraAdapter? lora = null;
            if (loraPath is not null)
            {
                try { lora = weights.NativeHandle.LoadLoraFromFile(loraPath); }
                catch (Exception e) { throw new SharpTuneException($"{loraPath}: llama.cpp cannot load this LoRA adapter ({e.Message}; llama.cpp: {LogTail()})", e); }
                context.NativeHandle.SetLoraAdapters([(lora, 1f)]);
            }
            return new LlamaCpp(path, weights, context, lora);
        }
        catch
        {
            context?.Dispose();
            weights.Dispose();
            throw;
        }
    }

    /// <summary>Token ids as llama.cpp makes them; special-token text is parsed as tokens (as HF tokenizers does).</summary>
    public int[] Tokenize(string text, bool addSpecial) =>
        _weights.NativeHandle.Tokenize(text, addSpecial, special: true, Encoding.UTF8).Select(t => (int)t).ToArray();

    public bool IsEndOfGeneration(int id) => ((LLamaToken)id).IsEndOfGeneration(_weights.NativeHandle.Vocab);

    public int VocabSize => _weights.NativeHandle.Vocab.Count;

    public IReadOnlyDictionary<string, string> Metadata => _weights.Metadata;

    /// <summary>Logits [ids.Length, vocab] for every position of one sequence, computed from an empty cache.</summary>
    public float[][] Logits(IReadOnlyList<int> ids)
    {
        var handle = _context.NativeHandle;
        handle.MemoryClear();
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Count; i++) batch.Add((LLamaToken)ids[i], i, LLamaSeqId.Zero, logits: true);
        var status = handle.Decode(batch);
        if (status != DecodeResult.Ok) throw new SharpTuneException($"{Path}: llama.cpp failed to evaluate {ids.Count} tokens ({status}; llama.cpp: {LogTail()})");
        var result = new float[ids.Count][];
        for (int i = 0; i < ids.Count; i++) result[i] = handle.GetLogitsIth(i).ToArray();
        return result;
    }

    /// <summary>llama.cpp's own quantizer (K-quants and the rest): <paramref name="source"/> → <paramref name="target"/>.</summary>
    public static void Quantize(string source, string target, string type)
    {
        Configure();
        bool ok;
        try { ok = LLamaQuantizer.Quantize(source, target, type, nthread: Math.Max(1, Environment.ProcessorCount)); }
        catch (ArgumentException) { throw new SharpTuneException($"--quant: '{type}' is not a llama.cpp quantization type (e.g. q4_k_m, q5_k_m, q6_k, q4_0)"); }
        catch (Exception e) when (e is not SharpTuneException) { throw new SharpTuneException($"llama.cpp's quantizer failed on {source} ({e.Message}; llama.cpp: {LogTail()})", e); }
        if (!ok) throw new SharpTuneException($"llama.cpp's quantizer failed on {source} (llama.cpp: {LogTail()})");
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
