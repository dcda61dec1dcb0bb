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

public sealed record GenerationTimings(double PrefillSeconds, double DecodeSeconds, int PromptTokens, int GeneratedTokens)
{
    public double DecodeTokensPerSecond => DecodeSeconds > 0 ? GeneratedTokens / DecodeSeconds : 0;
}

/// <summary>
/// Autoregressive generation with a KV cache: one prefill pass over the (left-padded) prompts, then one
/// token per step, one host sync per step (the chosen ids).
/// </summary>
public sealed class TokenGenerator(CausalLM model)
{
    public GenerationTimings? LastTimings { get; private set; }

    /// <summary>Token-level generation. <paramref name="onToken"/>(row, id) is called for every new id of an
    /// unfinished row and returns false to finish that row. EOS ids end a row (and are kept in its output).</summary>
    public IReadOnlyList<(int[] Ids, FinishReason FinishReason)> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options, Func<int, int, bool>? onToken = null)
    {
        if (prompts.Count == 0) return [];
        if (prompts.Any(p => p.Length == 0)) throw new SharpTuneException("a prompt is empty: generation needs at least one token");
        var sampling = options.Sampling ?? new SamplingOptions();
        sampling.Validate();
        if (options.MaxNewTokens <= 0) throw new SharpTuneException($"max new tokens must be positive, got {options.MaxNewTokens}");
        int context = model.Config.MaxPositionEmbeddings;
        // Prompt tuning's virtual tokens sit in the cache before the prompt (and take positions of the context).
        long virtualTokens = model.VirtualTokens?.shape[0] ?? 0;
        // A prompt beyond the context has no positions left to generate into (and prefill cost grows with its square).
        if (prompts.Max(p => p.Length) is var longest && longest + virtualTokens >= context)
            throw new SharpTuneException($"the prompt is {longest} tokens; the model's context is {context} (max_position_embeddings in config.json), "
                + "which must also leave room for the answer: shorten the prompt");
        int vocab = model.Config.VocabSize;
        foreach (var prompt in prompts)
            foreach (int id in prompt)
                if ((uint)id >= (uint)vocab)
                    throw new SharpTuneException($"the prompt holds token id {id}, outside the model's vocabulary of {vocab} (vocab_size in config.json): is the tokenizer from another model?");
        var eos = (options.EosTokenIds ?? []).ToHashSet();
        int B = prompts.Count, P = prompts.Max(p => p.Length);
        var device = model.Device;
        long capacity = virtualTokens + P + options.MaxNewTokens;
        if (capacity > model.Config.MaxPositionEmbeddings)
            capacity = Math.Max(virtualTokens + P + 1, Math.Min(capacity, model.Config.MaxPositionEmbeddings));

        var outputs = Enumerable.Range(0, B).Select(_ => new List<int>()).ToArray();
        var finish = new FinishReason?[B];
        var clock = Stopwatch.StartNew();
        double prefillSeconds = 0;

        using var noGrad = torch.no_grad();
        using var cache = new KvCache(model.Config, B, capacity, model.DType, device);
        using var sampler = new Sampler(sampling);
        using var scope = NewDisposeScope();

        // Left-pad so that every row's next token is at the last column; pads are masked out.
        var padded = new long[B * P];
        var valid = new bool[B * P];
        for (int b = 0; b < B; b++)
        {
            // Pads repeat the row's first token: masked out of attention, and harmless in the repetition-penalty
            // scatter (a pad id of 0 would fight over the slot of a real token 0).
            Array.Fill(padded, prompts[b][0], b * P, P - prompts[b].Length);
            for (int t = 0; t < prompts[b].Length; t++)
            {
                padded[b * P + P - prompts[b].Length + t] = prompts[b][t];
                valid[b * P + P - prompts[b].Length + t] = true;
            }
        }
        bool anyPadding = prompts.Any(p => p.Length < P);
        var keyValid = tensor(valid, [B, P], device: device);                                  // [B, S]
        var positions = (keyValid.to(int64).cumsum(1) - 1).clamp_min(0);                        // [B, P]
        var seen = sampling.RepetitionPenalty != 1 ? zeros([B, model.Config.VocabSize], ScalarType.Bool, device) : null;
        var input = tensor(padded, [B, P], device: device);
        seen?.scatter_(1, input, ones([B, P], ScalarType.Bool, device));

        Tensor? mask = anyPadding ? PrefillMask(keyValid, P) : null;
        var hidden = model.Hidden(input, positions, cache, mask);
        var nextPositions = positions.narrow(1, P - 1, 1) + 1;

        long steps = Math.Min(options.MaxNewTokens, capacity - virtualTokens - P);
        for (long step = 0; step < steps; step++)
        {
            using var stepScope = NewDisposeScope();
            var logits = F.linear(hidden.narrow(1, hidden.shape[1] - 1, 1).squeeze(1), model.LmHead).to(float32);   // [B, V]
            var next = sampler.Next(logits, seen);                                               // [B] on the CPU: the one sync per step
            if (step == 0) prefillSeconds = clock.Elapsed.TotalSeconds;
            var chosen = next.data<long>().ToArray();
            for (int b = 0; b < B; b++)
            {
                if (finish[b] is not null) continue;
                int id = (int)chosen[b];
                outputs[b].Add(id);
                bool keepGoing = onToken?.Invoke(b, id) ?? true;
                if (eos.Contains(id)) finish[b] = FinishReason.Eos;
                else if (!keepGoing) finish[b] = FinishReason.Stop;
            }
            if (finish.All(f => f is not null) || step == steps - 1) break;

            var nextIds = next.to(device).view(B, 1);
            seen?.scatter_(1, nextIds, ones([B, 1], ScalarType.Bool, device));
            Tensor? stepMask = null;
            if (anyPadding)
            {
                var grown = cat([keyValid, ones([B, 1], ScalarType.Bool, device)], 1);
                keyValid.Dispose();
                keyValid = grown.DetachFromDisposeScope();
                stepMask = keyValid.view(B, 1, 1, -1);
            }
            var h = model.Hidden(nextIds, nextPositions, cache, stepMask);
            hidden.Dispose();
            hidden = h.DetachFromDisposeScope();
            nextPositions.add_(1);
        }
        hidden.Dispose();
        keyValid.Dispose();

        double total = clock.Elapsed.TotalSeconds;
        LastTimings = new GenerationTimings(prefillSeconds, total - prefillSeconds, prompts.Sum(p => p.Length), outputs.Sum(o => o.Count));
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
