using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Evaluation;

/// <summary>SQuAD's answer metrics: exact match and token F1 after its normalisation (lowercase, drop ASCII
/// punctuation, drop the articles a/an/the, collapse whitespace). An empty answer scores 1 against an empty
/// reference and 0 otherwise (SQuAD 2.0's rule).</summary>
public static class Squad
{
    const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    static readonly Regex Articles = new(@"\b(a|an|the)\b", RegexOptions.CultureInvariant);

    public static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in PyText.Lower(text))
            if (!Punctuation.Contains(c)) sb.Append(c);
        return string.Join(' ', PyText.Split(Articles.Replace(sb.ToString(), " ")));
    }

    public static double ExactMatch(string prediction, string reference) => Normalize(prediction) == Normalize(reference) ? 1 : 0;

    public static double TokenF1(string prediction, string reference)
    {
        var pred = PyText.Split(Normalize(prediction));
        var gold = PyText.Split(Normalize(reference));
        if (pred.Count == 0 || gold.Count == 0) return pred.Count == gold.Count ? 1 : 0;
        var goldCounts = gold.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        int same = pred.GroupBy(t => t).Sum(g => Math.Min(g.Count(), goldCounts.GetValueOrDefault(g.Key)));
        if (same == 0) return 0;
        double precision = (double)same / pred.Count, recall = (double)same / gold.Count;
        return 2 * precision * recall / (precision + recall);
    }
}
