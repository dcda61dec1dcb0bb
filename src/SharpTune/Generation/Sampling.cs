using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>How the next token is chosen. Temperature 0 is greedy (argmax). Filters apply in HF's order:
/// repetition penalty, temperature, top-k, top-p, min-p; 0 (or 1 for top-p and the penalty) turns one off.</summary>
public sealed record SamplingOptions(
    double Temperature = 0,
    int TopK = 0,
    double TopP = 1,
    double MinP = 0,
    double RepetitionPenalty = 1,
    long? Seed = null)
{
    public bool Greedy => Temperature <= 0;

    public void Validate()
    {
        // Written as "not in range" so that NaN fails every check.
        if (!(Temperature >= 0 && double.IsFinite(Temperature))) throw new SharpTuneException($"--temperature must be a finite number >= 0, got {Temperature}");
        if (TopK < 0) throw new SharpTuneException($"--top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new SharpTuneException($"--top-p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new SharpTuneException($"--min-p must be in [0, 1], got {MinP}");
        if (!(RepetitionPenalty > 0 && double.IsFinite(RepetitionPenalty))) throw new SharpTuneException($"--repetition-penalty must be a finite number > 0, got {RepetitionPenalty}");
    }
}

/// <summary>Turns the last position's logits into next tokens, on the model's device.</summary>
internal sealed class Sampler(SamplingOptions options) : IDisposable
{
    readonly Generator? _rng = options.Seed is { } seed ? new Generator((ulong)seed) : null;

    /// <summary>logits [B, V] fp32; seen [B, V] bool marks ids already in each row (for the repetition penalty).
    /// Returns the chosen ids [B] (int64): on the logits' device for greedy decoding, else on the CPU.</summary>
    public Tensor Next(Tensor logits, Tensor? seen)
    {
        using var scope = NewDisposeScope();
        if (options.RepetitionPenalty != 1 && seen is not null)
        {
            // Penalize ids already present: divide positive logits, multiply negative ones.
            var penalized = where(logits < 0, logits * options.RepetitionPenalty, logits / options.RepetitionPenalty);
            logits = where(seen, penalized, logits);
        }
        if (options.Greedy) return logits.argmax(-1).MoveToOuterDisposeScope();

        logits = logits / options.Temperature;
        if (options.TopK > 0 && options.TopK < logits.shape[^1])
        {
            var kth = logits.topk(options.TopK).values.narrow(-1, options.TopK - 1, 1);
            logits = logits.masked_fill(logits < kth, double.NegativeInfinity);
        }
        if (options.TopP < 1)
        {
            // Drop the least likely tokens whose total probability is at most 1 - top_p; the top token always stays.
            var (sorted, order) = logits.sort(-1, descending: false);
            var cumulative = sorted.softmax(-1).cumsum(-1);
            var dropSorted = cumulative <= (1 - options.TopP);
            dropSorted.narrow(-1, dropSorted.shape[^1] - 1, 1).fill_(false);
            var drop = dropSorted.scatter(-1, order, dropSorted);
            logits = logits.masked_fill(drop, double.NegativeInfinity);
        }
        if (options.MinP > 0)
        {
            var probs = logits.softmax(-1);
            var threshold = probs.amax([-1], keepdim: true) * options.MinP;
            logits = logits.masked_fill(probs < threshold, double.NegativeInfinity);
        }
        // Sampling happens on the CPU: TorchSharp's seeded generators are CPU-only, and the ids go to the host anyway.
        var p = logits.softmax(-1).cpu();
        return multinomial(p, 1, generator: _rng).squeeze(-1).MoveToOuterDisposeScope();
    }

    public void Dispose() => _rng?.Dispose();
}
