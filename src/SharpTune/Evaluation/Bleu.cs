using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Evaluation;

/// <summary>A corpus BLEU score (0–100) with its sufficient statistics, as sacrebleu reports them.</summary>
public sealed record BleuScore(double Score, double BrevityPenalty, double[] Precisions, long[] Correct, long[] Total, long HypothesisLength, long ReferenceLength);

/// <summary>
/// Corpus BLEU exactly as sacrebleu 2.x computes it by default: one reference per segment, 4-grams, the 13a
/// tokenizer (or zh, or none), exponential smoothing (mteval's: the k-th zero-match order gets 1 / (2^k · total)),
/// no lowercasing. Segments are right-stripped before tokenizing, as sacrebleu does.
/// </summary>
public static class Bleu
{
    public const int MaxOrder = 4;
    public static readonly IReadOnlyList<string> Tokenizers = ["13a", "zh", "none"];

    public static BleuScore Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, string tokenizer = "13a")
    {
        Func<string, string> tokenize = tokenizer switch
        {
            "13a" => Tokenize13a,
            "zh" => TokenizeZh,
            "none" => s => s,
            _ => throw new SharpTuneException($"unknown BLEU tokenizer '{tokenizer}' (expected {string.Join(", ", Tokenizers)})"),
        };
        long hypLen = 0, refLen = 0;
        var correct = new long[MaxOrder];
        var total = new long[MaxOrder];
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = PyText.Split(tokenize(PyText.RStrip(hypotheses[s])));
            var refTokens = PyText.Split(tokenize(PyText.RStrip(references[s])));
            hypLen += hyp.Count;
            refLen += refTokens.Count;
            for (int n = 1; n <= MaxOrder; n++)
            {
                var refGrams = NGrams(refTokens, n);
                foreach (var (gram, count) in NGrams(hyp, n))
                {
                    total[n - 1] += count;
                    correct[n - 1] += Math.Min(count, refGrams.GetValueOrDefault(gram));
                }
            }
        }
        return Score(correct, total, hypLen, refLen);
    }

    /// <summary>sacrebleu's compute_bleu with smooth_method='exp' and effective_order off.</summary>
    internal static BleuScore Score(long[] correct, long[] total, long hypLen, long refLen)
    {
        double bp = hypLen < refLen ? hypLen > 0 ? Math.Exp(1 - (double)refLen / hypLen) : 0 : 1;
        var precisions = new double[MaxOrder];
        if (correct.All(c => c == 0)) return new BleuScore(0, bp, precisions, correct, total, hypLen, refLen);
        double smooth = 1;
        for (int n = 0; n < MaxOrder; n++)
        {
            if (total[n] == 0) break;
            if (correct[n] == 0)
            {
                smooth *= 2;
                precisions[n] = 100.0 / (smooth * total[n]);
            }
            else precisions[n] = 100.0 * correct[n] / total[n];
        }
        // sacrebleu's my_log: log(0) is -9999999999, which sends the score to 0
        double logSum = precisions.Sum(p => p == 0 ? -9999999999.0 : Math.Log(p));
        return new BleuScore(bp * Math.Exp(logSum / MaxOrder), bp, precisions, correct, total, hypLen, refLen);
    }

    static Dictionary<string, long> NGrams(List<string> tokens, int n)
    {
        var grams = new Dictionary<string, long>();
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            string g = string.Join(' ', tokens.GetRange(i, n));   // tokens hold no spaces
            grams[g] = grams.GetValueOrDefault(g) + 1;
        }
        return grams;
    }

    static readonly (Regex Pattern, string Replacement)[] MtevalRules =
    [
        (new Regex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])", RegexOptions.CultureInvariant), " $1 "),
        // period and comma unless preceded by a digit
        (new Regex(@"([^0-9])([\.,])", RegexOptions.CultureInvariant), "$1 $2 "),
        // period and comma unless followed by a digit
        (new Regex(@"([\.,])([^0-9])", RegexOptions.CultureInvariant), " $1 $2"),
        // dash when preceded by a digit
        (new Regex(@"([0-9])(-)", RegexOptions.CultureInvariant), "$1 $2 "),
    ];

    /// <summary>sacrebleu's TokenizerRegexp: mteval-v13a's language-dependent rules, then single spaces.</summary>
    static string Mteval(string line)
    {
        foreach (var (pattern, replacement) in MtevalRules) line = pattern.Replace(line, replacement);
        return string.Join(' ', PyText.Split(line));
    }

    /// <summary>sacrebleu's 13a tokenizer (mteval-v13a.pl).</summary>
    public static string Tokenize13a(string line)
    {
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&'))
            line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        return Mteval($" {line} ");
    }

    /// <summary>sacrebleu's zh tokenizer: every character of its "Chinese" ranges becomes a token, the rest goes
    /// through the mteval rules.</summary>
    public static string TokenizeZh(string line)
    {
        var sb = new StringBuilder();
        foreach (var rune in PyText.Strip(line).EnumerateRunes())
        {
            if (IsChineseChar(rune.Value)) sb.Append(' ').Append(rune.ToString()).Append(' ');
            else sb.Append(rune.ToString());
        }
        return Mteval(sb.ToString());
    }

    /// <summary>sacrebleu's _UCODE_RANGES, compared as Python compares one character with a range bound. Two bounds
    /// were written as 5-hex-digit escapes ("\u20000"), which Python reads as two characters: that range really
    /// spans U+2001..U+2A6D (general punctuation, arrows, math symbols and more) and the other U+2F81..U+2FA1, while
    /// Extension B itself (U+20000..) is not covered. Kept as sacrebleu has it, so scores match.</summary>
    static readonly (int[] Start, int[] End)[] ChineseRanges =
    [
        ([0x3400], [0x4db5]), ([0x4e00], [0x9fa5]), ([0x9fa6], [0x9fbb]), ([0xf900], [0xfa2d]), ([0xfa30], [0xfa6a]),
        ([0xfa70], [0xfad9]), ([0x2000, '0'], [0x2a6d, '6']), ([0x2f80, '0'], [0x2fa1, 'd']), ([0xff00], [0xffef]),
        ([0x2e80], [0x2eff]), ([0x3000], [0x303f]), ([0x31c0], [0x31ef]), ([0x2f00], [0x2fdf]), ([0x2ff0], [0x2fff]),
        ([0x3100], [0x312f]), ([0x31a0], [0x31bf]), ([0xfe10], [0xfe1f]), ([0xfe30], [0xfe4f]), ([0x2600], [0x26ff]),
        ([0x2700], [0x27bf]), ([0x3200], [0x32ff]), ([0x3300], [0x33ff]),
    ];

    internal static bool IsChineseChar(int c) =>
        ChineseRanges.Any(r => ComparePython(c, r.Start) >= 0 && ComparePython(c, r.End) <= 0);

    /// <summary>Python's comparison of a one-character string with <paramref name="bound"/> (code points).</summary>
    static int ComparePython(int c, int[] bound) =>
        c != bound[0] ? c.CompareTo(bound[0]) : bound.Length > 1 ? -1 : 0;
}
