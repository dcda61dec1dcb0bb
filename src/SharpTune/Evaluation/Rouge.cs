using System.Text;

namespace SharpTune.Evaluation;

/// <summary>Precision, recall and F-measure of one prediction against one reference.</summary>
public readonly record struct PrfScore(double Precision, double Recall, double F)
{
    public static readonly PrfScore Zero = new(0, 0, 0);

    /// <summary>The harmonic mean, 0 when both are 0 (rouge-score's <c>fmeasure</c>).</summary>
    public static PrfScore Of(double precision, double recall) =>
        new(precision, recall, precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0);
}

/// <summary>
/// ROUGE as Google's <c>rouge-score</c> computes it (ROUGE-N, ROUGE-L, ROUGE-Lsum), plus ROUGE-W, ROUGE-S and
/// ROUGE-SU as Lin (2004) defines them, on the same tokens.
/// </summary>
public sealed class Rouge(bool stem = false)
{
    /// <summary>The most token pairs that ROUGE-L, -Lsum, -W, -S and -SU may compare for one prediction and its
    /// reference (8,192 tokens each): their work grows with the product of the lengths, and a 1 MB text against
    /// itself would take 10^10 steps (it ran out of memory instead). A longer pair is an error naming the metric.</summary>
    public const long MaxPairs = 64L * 1024 * 1024;

    static void CheckPairs(long pairs, string metric, long referenceTokens, long predictionTokens)
    {
        if (pairs > MaxPairs)
            throw new SharpTuneException($"{metric} compares every token of a prediction with every token of its reference, and a pair of " +
                $"{predictionTokens} and {referenceTokens} tokens is over the limit of {MaxPairs:N0} comparisons; leave {metric} out for texts this long (--metrics)");
    }

    /// <summary>rouge-score's tokenizer: lowercase, every run of characters other than a-z and 0-9 becomes a
    /// separator, tokens longer than 3 characters are Porter-stemmed when stemming is on.</summary>
    public string[] Tokenize(string text)
    {
        string lower = PyText.Lower(text);
        var tokens = new List<string>();
        var current = new StringBuilder();
        foreach (char c in lower)
        {
            if (c is >= 'a' and <= 'z' or >= '0' and <= '9') current.Append(c);
            else Flush();
        }
        Flush();
        return tokens.ToArray();

        void Flush()
        {
            if (current.Length == 0) return;
            string token = current.ToString();
            current.Clear();
            // a stemmed token is still [a-z0-9]+ (the stemmer only drops or adds lowercase letters)
            tokens.Add(stem && token.Length > 3 ? PorterStemmer.Stem(token) : token);
        }
    }

    public PrfScore RougeN(string reference, string prediction, int n) => NGrams(Tokenize(reference), Tokenize(prediction), n);

    public PrfScore RougeL(string reference, string prediction) => Lcs(Tokenize(reference), Tokenize(prediction));

    /// <summary>Summary-level LCS over newline-separated sentences, with rouge-score's guard against counting a
    /// token more often than it occurs.</summary>
    public PrfScore RougeLsum(string reference, string prediction)
    {
        var refSents = Sentences(reference).Select(Tokenize).ToList();
        var predSents = Sentences(prediction).Select(Tokenize).ToList();
        if (refSents.Count == 0 || predSents.Count == 0) return PrfScore.Zero;
        int m = refSents.Sum(s => s.Length), n = predSents.Sum(s => s.Length);
        if (m == 0 || n == 0) return PrfScore.Zero;
        CheckPairs((long)m * n, "rougeLsum", m, n);   // the sentence tables together: at most m × n cells
        var refCounts = Count(refSents.SelectMany(s => s));
        var predCounts = Count(predSents.SelectMany(s => s));
        int hits = 0;
        foreach (var r in refSents)
        {
            var union = new SortedSet<int>();
            foreach (var p in predSents) union.UnionWith(LcsIndices(r, p));
            foreach (int i in union)
            {
                string t = r[i];
                if (predCounts.GetValueOrDefault(t) > 0 && refCounts.GetValueOrDefault(t) > 0)
                {
                    hits++;
                    predCounts[t]--;
                    refCounts[t]--;
                }
            }
        }
        return PrfScore.Of((double)hits / n, (double)hits / m);
    }

    /// <summary>Weighted LCS with f(k) = k^weight (Lin 2004, section 3.3): consecutive matches count more.</summary>
    public PrfScore RougeW(string reference, string prediction, double weight = 1.2)
    {
        string[] x = Tokenize(reference), y = Tokenize(prediction);
        if (x.Length == 0 || y.Length == 0) return PrfScore.Zero;
        CheckPairs((long)x.Length * y.Length, "rougeW", x.Length, y.Length);
        // the table row by row: row i needs only row i - 1
        var c = new double[y.Length + 1];
        var w = new int[y.Length + 1];
        var cPrev = new double[y.Length + 1];
        var wPrev = new int[y.Length + 1];
        for (int i = 1; i <= x.Length; i++)
        {
            (c, cPrev) = (cPrev, c);
            (w, wPrev) = (wPrev, w);
            for (int j = 1; j <= y.Length; j++)
            {
                if (x[i - 1] == y[j - 1])
                {
                    int k = wPrev[j - 1];
                    c[j] = cPrev[j - 1] + Math.Pow(k + 1, weight) - Math.Pow(k, weight);
                    w[j] = k + 1;
                }
                else
                {
                    c[j] = Math.Max(cPrev[j], c[j - 1]);
                    w[j] = 0;
                }
            }
        }
        double wlcs = c[y.Length];
        double Inverse(double v) => Math.Pow(v, 1 / weight);
        return PrfScore.Of(Inverse(wlcs / Math.Pow(y.Length, weight)), Inverse(wlcs / Math.Pow(x.Length, weight)));
    }

    /// <summary>Skip-bigram co-occurrence with unlimited gap (Lin 2004, section 5): R = SKIP2 / C(m,2),
    /// P = SKIP2 / C(n,2), counts clipped. <paramref name="withUnigrams"/> (ROUGE-SU) adds a begin-of-sentence
    /// token to both sides, so single words count too.</summary>
    public PrfScore RougeS(string reference, string prediction, bool withUnigrams = false)
    {
        var x = Tokenize(reference).ToList();
        var y = Tokenize(prediction).ToList();
        if (withUnigrams)
        {
            // a token the tokenizer cannot produce
            x.Insert(0, "<s>");
            y.Insert(0, "<s>");
        }
        long pairsX = (long)x.Count * (x.Count - 1) / 2, pairsY = (long)y.Count * (y.Count - 1) / 2;
        if (pairsX == 0 || pairsY == 0) return PrfScore.Zero;
        CheckPairs(pairsX + pairsY, withUnigrams ? "rougeSU" : "rougeS", x.Count, y.Count);
        var ids = new Dictionary<string, int>();
        int Id(string t) => ids.TryGetValue(t, out int id) ? id : ids[t] = ids.Count;
        var refPairs = SkipBigrams(x.Select(Id).ToArray());
        var predPairs = SkipBigrams(y.Select(Id).ToArray());
        long common = 0;
        foreach (var (pair, count) in predPairs)
            if (refPairs.TryGetValue(pair, out long r)) common += Math.Min(count, r);
        return PrfScore.Of((double)common / pairsY, (double)common / pairsX);
    }

    /// <summary>Counts of the ordered token pairs (i &lt; j), keyed by the two ids packed in one long (quadratic in
    /// the length: a 2,000-word reasoning is 2 million pairs).</summary>
    static Dictionary<long, long> SkipBigrams(int[] tokens)
    {
        var pairs = new Dictionary<long, long>();
        for (int i = 0; i < tokens.Length; i++)
        for (int j = i + 1; j < tokens.Length; j++)
        {
            long key = (long)tokens[i] << 32 | (uint)tokens[j];
            pairs[key] = pairs.GetValueOrDefault(key) + 1;
        }
        return pairs;
    }

    static IEnumerable<string> Sentences(string text) => text.Split('\n').Where(s => s.Length > 0);

    static Dictionary<string, int> Count(IEnumerable<string> tokens)
    {
        var counts = new Dictionary<string, int>();
        foreach (var t in tokens) counts[t] = counts.GetValueOrDefault(t) + 1;
        return counts;
    }

    static PrfScore NGrams(string[] reference, string[] prediction, int n)
    {
        var refGrams = Count(Grams(reference, n));
        var predGrams = Count(Grams(prediction, n));
        int overlap = refGrams.Sum(g => Math.Min(g.Value, predGrams.GetValueOrDefault(g.Key)));
        int refTotal = refGrams.Values.Sum(), predTotal = predGrams.Values.Sum();
        return PrfScore.Of((double)overlap / Math.Max(predTotal, 1), (double)overlap / Math.Max(refTotal, 1));
    }

    static IEnumerable<string> Grams(string[] tokens, int n)
    {
        // tokens never contain a space, so joining by one keeps n-grams distinct
        for (int i = 0; i + n <= tokens.Length; i++) yield return string.Join(' ', tokens, i, n);
    }

    static PrfScore Lcs(string[] reference, string[] prediction)
    {
        if (reference.Length == 0 || prediction.Length == 0) return PrfScore.Zero;
        CheckPairs((long)reference.Length * prediction.Length, "rougeL", reference.Length, prediction.Length);
        // the LCS length row by row: row i needs only row i - 1
        var row = new int[prediction.Length + 1];
        var previous = new int[prediction.Length + 1];
        for (int i = 1; i <= reference.Length; i++)
        {
            (row, previous) = (previous, row);
            for (int j = 1; j <= prediction.Length; j++)
                row[j] = reference[i - 1] == prediction[j - 1] ? previous[j - 1] + 1 : Math.Max(previous[j], row[j - 1]);
        }
        int lcs = row[prediction.Length];
        return PrfScore.Of((double)lcs / prediction.Length, (double)lcs / reference.Length);
    }

    static int[,] LcsTable(string[] r, string[] c)
    {
        var t = new int[r.Length + 1, c.Length + 1];
        for (int i = 1; i <= r.Length; i++)
        for (int j = 1; j <= c.Length; j++)
            t[i, j] = r[i - 1] == c[j - 1] ? t[i - 1, j - 1] + 1 : Math.Max(t[i - 1, j], t[i, j - 1]);
        return t;
    }

    /// <summary>Indices into <paramref name="r"/> of one LCS, read back exactly as rouge-score's
    /// <c>_backtrack_norec</c> does (the tie-break decides which LCS, and so the Lsum union).</summary>
    static List<int> LcsIndices(string[] r, string[] c)
    {
        var t = LcsTable(r, c);
        var indices = new List<int>();
        int i = r.Length, j = c.Length;
        while (i > 0 && j > 0)
        {
            if (r[i - 1] == c[j - 1])
            {
                indices.Add(i - 1);
                i--;
                j--;
            }
            else if (t[i, j - 1] > t[i - 1, j]) j--;
            else i--;
        }
        return indices;
    }
}
