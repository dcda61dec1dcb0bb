using System.Diagnostics;
using System.Text.Json.Serialization;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Generation;

public sealed record GenerationOptions(
    int MaxNewTokens = 256,
    SamplingOptions? Sampling = null,
    IReadOnlyList<int>? EosTokenIds = null,
    IReadOnlyList<string>? StopStrings = null,
    bool SkipSpecialTokens = true);

/// <summary>Why a row stopped generating; written in JSON as eos, stop, length.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FinishReason>))]
public enum FinishReason
{
    /// <summary>An end-of-sequence token.</summary>
    [JsonStringEnumMemberName("eos")] Eos,
    /// <summary>A stop string (or the caller's callback) ended the row.</summary>
    [JsonStringEnumMemberName("stop")] Stop,
    /// <summary>MaxNewTokens was reached.</summary>
    [JsonStringEnumMemberName("length")] Length,
    /// <summary>The caller cancelled the generation.</summary>
    [JsonStringEnumMemberName("cancelled")] Cancelled,
}

/// <summary>One prompt's result.</summary>
public sealed record GenerationResult(int[] PromptIds, int[] OutputIds, string Text, FinishReason FinishReason);

/// <summary>Where a generation's time went. <paramref name="CaptureSeconds"/>: the part of the decode time spent warming up
/// and capturing the CUDA graph (0 on the eager path). <paramref name="DecodePath"/> says how steps ran: "cuda graph", or
/// "eager" with the reason where a graph was wanted but not available.</summary>
public sealed record GenerationTimings(double PrefillSeconds, double DecodeSeconds, int PromptTokens, int GeneratedTokens,
    double CaptureSeconds = 0, string DecodePath = "eager")
{
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? GeneratedTokens / DecodeSeconds : 0;
}

/// <summary>
/// Autoregressive generation with a KV cache: one prefill pass over the (left-padded) prompts, then one token per
/// step over a static cache (the same shapes every step, positions read from the device), replayed from a CUDA graph
/// on the GPU where one can be captured. The host sees one token id per row and step: the one sync per step.
/// </summary>
public sealed class TokenGenerator(CausalLM model)
{
    public GenerationTimings? LastTimings { get; private set; }

    /// <summary>Replay decode steps from a CUDA graph on a CUDA device (off: every step runs op by op).</summary>
    public bool CudaGraphs { get; init; } = true;

    /// <summary>Op-by-op steps in the graph's form (every step attends over the whole cache under a mask): lets the
    /// CPU tests check what a graph replays.</summary>
    internal bool WholeCacheSteps { get; init; }

    /// <summary>Token-level generation. <paramref name="onToken"/>(row, id) is called for every new id of an
    /// unfinished row and returns false to finish that row. EOS ids end a row (and are kept in its output).</summary>
    public IReadOnlyList<(int[] Ids, FinishReason FinishReason)> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options, Func<int, int, bool>? onToken = null) =>
        Run(prompts, options, onToken, forced: null, logitsOut: null);

    /// <summary>The most host memory <see cref="ForcedLogits"/> fills with logits (fp32).</summary>
    public const long MaxForcedLogitsBytes = 8L << 30;

    /// <summary>Teacher-forced decoding, for checking the decode path against a reference: each row's prompt is
    /// prefilled, then its <paramref name="continuations"/> are fed token by token through the same decode steps as
    /// <see cref="Generate"/> (static cache, left padding, CUDA graph where available) in place of chosen tokens.
    /// Returns the logits each step produced, before its token was fed: [B, steps, V] fp32 on the CPU.</summary>
    public Tensor ForcedLogits(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> continuations)
    {
        if (continuations.Count != prompts.Count)
            throw new SharpTuneException($"{prompts.Count} prompts but {continuations.Count} continuations: each row needs both");
        if (prompts.Count == 0) throw new SharpTuneException("no rows to decode");
        int steps = continuations[0].Length;
        if (steps == 0 || continuations.Any(c => c.Length != steps))
            throw new SharpTuneException($"every continuation must have the same number of tokens, at least 1 (lengths: {string.Join(", ", continuations.Select(c => c.Length).Distinct())})");
        int vocab = model.Config.VocabSize;
        foreach (var c in continuations)
            foreach (int id in c)
                if ((uint)id >= (uint)vocab)
                    throw new SharpTuneException($"a continuation holds token id {id}, outside the model's vocabulary of {vocab}");
        long bytes = 4L * prompts.Count * steps * vocab;
        if (bytes > MaxForcedLogitsBytes)
            throw new SharpTuneException($"{prompts.Count} rows × {steps} steps × {vocab} logits would take {bytes / (1 << 20):N0} MiB in memory (at most {MaxForcedLogitsBytes >> 20:N0}): feed fewer rows or steps per call");
        long room = model.Config.MaxPositionEmbeddings - (model.VirtualTokens?.shape[0] ?? 0) - prompts.Max(p => p.Length);
        if (room < steps)
            throw new SharpTuneException($"the model's context ({model.Config.MaxPositionEmbeddings}, max_position_embeddings in config.json) leaves room for {Math.Max(room, 0)} of the {steps} continuation tokens after the longest prompt");
        var logits = zeros([prompts.Count, steps, vocab], float32);
        try
        {
            using var forced = tensor(continuations.SelectMany(c => c.Select(id => (long)id)).ToArray(), [prompts.Count, steps], device: model.Device);
            Run(prompts, new GenerationOptions(MaxNewTokens: steps), onToken: null, forced, logits);
            return logits;
        }
        catch { logits.Dispose(); throw; }
    }

    /// <summary>Generation; with <paramref name="forced"/> [B, steps] (int64 on the device) step s feeds column s
    /// instead of a chosen token, and <paramref name="logitsOut"/> [B, steps, V] receives every step's logits.</summary>
    IReadOnlyList<(int[] Ids, FinishReason FinishReason)> Run(IReadOnlyList<int[]> prompts, GenerationOptions options, Func<int, int, bool>? onToken,
        Tensor? forced, Tensor? logitsOut)
    {
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Length == 0)) throw new SharpTuneException("a prompt is empty: generation needs at least one token");
        var sampling = options.Sampling ?? new SamplingOptions();
        sampling.Validate();
        if (options.MaxNewTokens <= 0) throw new SharpTuneException($"max new tokens must be positive, got {options.MaxNewTokens}");
        int context = model.Config.MaxPositionEmbeddings;
        // Prompt tuning's virtual tokens take the first positions. A prompt beyond the context has no positions left to
        // generate into (and prefill cost grows with its square).
        long virtualCount = model.VirtualTokens?.shape[0] ?? 0;
        if (prompts.Max(p => p.Length) is var longest && virtualCount + longest >= context)
            throw new SharpTuneException($"the prompt is {longest} tokens{(virtualCount > 0 ? $" after the adapter's {virtualCount} virtual tokens" : "")}; "
                + $"the model's context is {context} (max_position_embeddings in config.json), which must also leave room for the answer: shorten the prompt");
        int vocab = model.Config.VocabSize;
        foreach (var prompt in prompts)
            foreach (int id in prompt)
                if ((uint)id >= (uint)vocab)
                    throw new SharpTuneException($"the prompt holds token id {id}, outside the model's vocabulary of {vocab} (vocab_size in config.json): is the tokenizer from another model?");
        var eos = (options.EosTokenIds ?? []).ToHashSet();
        int B = prompts.Count, P = prompts.Max(p => p.Length);
        var device = model.Device;
        long steps = Math.Min(options.MaxNewTokens, context - virtualCount - P);
        // Cache columns: prompt tuning's virtual tokens, the left-padded prompts, then one per step; rounded up to a
        // multiple of 16 (aligned rows for the attention kernels; unwritten columns are masked out).
        long columns = (virtualCount + P + steps + 15) / 16 * 16;

        var outputs = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var finish = new FinishReason?[B];
        var clock = Stopwatch.StartNew();
        double prefillSeconds = 0;

        using var noGrad = torch.no_grad();
        using var cache = new KvCache(model.Config, B, columns, model.DType, device);
        using var sampler = new Sampler(sampling);
        using var scope = NewDisposeScope();

        // Left-pad so that every row's next token is at the last column; pads are masked out.
        var padded = new long[B * P];
        var filled = new bool[B * columns];   // which cache columns hold a real key, per row
        for (int b = 0; b < B; b++)
        {
            // Pads repeat the row's first token: masked out of attention, and harmless in the repetition-penalty
            // scatter (a pad id of 0 would fight over the slot of a real token 0).
            Array.Fill(padded, prompts[b][0], b * P, P - prompts[b].Length);
            Array.Fill(filled, true, (int)(b * columns), (int)virtualCount);
            for (int t = 0; t < prompts[b].Length; t++)
            {
                padded[b * P + P - prompts[b].Length + t] = prompts[b][t];
                filled[b * columns + virtualCount + P - prompts[b].Length + t] = true;
            }
        }
        bool anyPadding = prompts.Any(p => p.Length < P);
        var keyValid = tensor(filled, [B, columns], device: device);                               // [B, columns]
        var promptValid = keyValid.narrow(1, virtualCount, P);                                      // [B, P]
        var positions = (promptValid.to(int64).cumsum(1) - 1).clamp_min(0);                        // [B, P]
        var seen = sampling.RepetitionPenalty != 1 ? zeros([B, model.Config.VocabSize], ScalarType.Bool, device) : null;
        var input = tensor(padded, [B, P], device: device);
        seen?.scatter_(1, input, ones([B, P], ScalarType.Bool, device));

        Tensor? mask = anyPadding ? PrefillMask(promptValid, P) : null;
        var hidden = model.Hidden(input, positions, cache, mask);
        var logits = F.linear(hidden.narrow(1, P - 1, 1).squeeze(1), model.LmHead).to(float32);   // [B, V]

        // The static inputs of a decode step, advanced in place before each step: the token, its position, its cache column.
        var stepIds = zeros([B, 1], int64, device);
        var stepPositions = positions.narrow(1, P - 1, 1).clone();                                  // [B, 1]
        var column = tensor(new[] { virtualCount + P - 1 }, device: device);                        // [1]
        long written = virtualCount + P - 1;                                                        // the column's value, on the host
        cache.StepColumn = column;
        bool needsMask = anyPadding || virtualCount > 0;
        using var step = new DecodeStep(wholeCache =>
        {
            // A graph's steps write at the column on the device and attend over every column (the same shapes each
            // step); op by op they attend over the written columns only, as the reference does (same sums, same order).
            keyValid.index_fill_(1, column, true);
            long width = wholeCache ? columns : written + 1;
            cache.StepWidth = wholeCache ? null : width;
            var stepMask = wholeCache || needsMask    // Hidden prepends the virtual tokens' columns to a mask itself
                ? keyValid.narrow(1, virtualCount, width - virtualCount).view(B, 1, 1, -1)
                : null;
            var h = model.Hidden(stepIds, stepPositions, cache, stepMask);
            return F.linear(h.squeeze(1), model.LmHead).to(float32);                                // [B, V]
        }, device, CudaGraphs, WholeCacheSteps);

        for (long s = 0; s < steps; s++)
        {
            using var stepScope = NewDisposeScope();
            if (s > 0) logits = step.Run();
            logitsOut?.select(1, s).copy_(logits);
            var next = forced?.select(1, s) ?? sampler.Next(logits, seen);                           // [B] int64
            var chosen = next.cpu().data<long>().ToArray();                                          // the one sync per step
            if (s == 0) prefillSeconds = clock.Elapsed.TotalSeconds;
            for (int b = 0; b < B; b++)
            {
                if (finish[b] is not null) continue;
                int id = (int)chosen[b];
                outputs[b].Add(id);
                bool keepGoing = onToken?.Invoke(b, id) ?? true;
                if (eos.Contains(id)) finish[b] = FinishReason.Eos;
                else if (!keepGoing) finish[b] = FinishReason.Stop;
            }
            if (finish.All(f => f is not null) || s == steps - 1) break;

            var nextIds = next.to(device).view(B, 1);
            seen?.scatter_(1, nextIds, ones([B, 1], ScalarType.Bool, device));
            stepIds.copy_(nextIds);
            stepPositions.add_(1);
            column.add_(1);
            written++;
        }

        double total = clock.Elapsed.TotalSeconds;
        LastTimings = new GenerationTimings(prefillSeconds, total - prefillSeconds, prompts.Sum(p => p.Length), outputs.Sum(o => o.Count),
            step.CaptureSeconds, device.type == DeviceType.CUDA ? $"{step.Path}; {InferenceKernels.Describe()}" : step.Path);
        return outputs.Select((o, b) => (o.ToArray(), finish[b] ?? FinishReason.Length)).ToList();
    }

    /// <summary>[B, 1, P, P] bool: causal, only real (non-pad) keys, and each position sees itself so that
    /// no row of the softmax is empty (an all-masked row would give NaN and poison later layers).</summary>
    static Tensor PrefillMask(Tensor keyValid, long P)
    {
        var causal = ones([P, P], ScalarType.Bool, keyValid.device).tril();
        var eye = torch.eye(P, dtype: ScalarType.Bool, device: keyValid.device);
        return (causal.unsqueeze(0) & keyValid.unsqueeze(1) | eye.unsqueeze(0)).unsqueeze(1);
    }
}
