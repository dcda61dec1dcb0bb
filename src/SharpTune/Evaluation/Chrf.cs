namespace SharpTune.Evaluation;

/// <summary>
/// Corpus chrF exactly as sacrebleu 2.x computes it by default: character n-grams of order 1–6 (code points,
/// whitespace removed), beta = 2, statistics summed over the corpus, precision and recall averaged over the
/// orders that occur on both sides (sacrebleu's default, not eps smoothing). 0–100.
/// </summary>
public static class Chrf
{
    public const int Order = 6;
    public const double Beta = 2;

    public static double Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references)
    {
        var stats = new long[Order, 3];   // per order: hypothesis n-grams, reference n-grams, matches
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = PyText.CodePoints(string.Concat(PyText.Split(hypotheses[s])));
            var refChars = PyText.CodePoints(string.Concat(PyText.Split(references[s])));
            for (int n = 1; n <= Order; n++)
            {
                var refGrams = NGrams(refChars, n);
                long hypCount = 0, matches = 0;
                foreach (var (gram, count) in NGrams(hyp, n))
                {
                    hypCount += count;
                    matches += Math.Min(count, refGrams.GetValueOrDefault(gram));
                }
                // sacrebleu counts no hypothesis n-grams of an order the reference lacks
                stats[n - 1, 0] += refGrams.Count > 0 ? hypCount : 0;
                stats[n - 1, 1] += refGrams.Values.Sum();
                stats[n - 1, 2] += matches;
            }
        }
        return FScore(stats);
    }

    static double FScore(long[,] stats)
    {
        double factor = Beta * Beta, avgPrecision = 0, avgRecall = 0;
        int effectiveOrder = 0;
        for (int n = 0; n < Order; n++)
        {
            long hyp = stats[n, 0], reference = stats[n, 1], match = stats[n, 2];
            if (hyp > 0 && reference > 0)
            {
                avgPrecision += (double)match / hyp;
                avgRecall += (double)match / reference;
                effectiveOrder++;
            }
        }
        if (effectiveOrder == 0) return 0;
        avgPrecision /= effectiveOrder;
        avgRecall /= effectiveOrder;
        if (avgPrecision + avgRecall == 0) return 0;
        return 100 * (1 + factor) * avgPrecision * avgRecall / (factor * avgPrecision + avgRecall);
    }

    static Dictionary<string, long> NGrams(string[] chars, int n)
    {
        var grams = new Dictionary<string, long>();
        for (int i = 0; i + n <= chars.Length; i++)
        {
            string g = string.Concat(chars.AsSpan(i, n).ToArray());
            grams[g] = grams.GetValueOrDefault(g) + 1;
        }
        return grams;
    }
}
