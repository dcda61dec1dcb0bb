using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

/// <summary>ROUGE against worked examples computed by hand from rouge-score's code and Lin (2004); tolerance 1e-6
/// (the computations are a few exact divisions; any slip in the algorithm moves them by far more).</summary>
public class RougeTests
{
    const double Tol = 1e-6;

    [Fact]
    public void TokenizerLowercasesAndSplitsOnEveryNonAlphanumericRun()
    {
        var rouge = new Rouge();
        Assert.Equal(["the", "quick", "brown", "fox", "jumped", "42", "times"], rouge.Tokenize("The quick-brown fox, jumped!! 42 times."));
        // a-z and 0-9 only (after lowercasing): accented letters separate, CJK disappears
        Assert.Equal(["caf", "na", "ve"], rouge.Tokenize("Café naïve 北京"));
        // Python's full lowercase of İ is i + combining dot, which then separates
        Assert.Equal(["i", "x"], rouge.Tokenize("İx"));
        Assert.Empty(rouge.Tokenize(" \n--!"));
    }

    /// <summary>The metrics whose work grows with the product of the lengths refuse a pair over
    /// <see cref="Rouge.MaxPairs"/> comparisons by name (a 1 MB text scored against itself ran out of memory); the
    /// linear ones still score it, and a pair just under the limit is scored (the row-by-row LCS tables).</summary>
    [Fact]
    public void QuadraticMetricsRefusePairsOverTheLimit()
    {
        var rouge = new Rouge();
        string huge = string.Join(' ', Enumerable.Range(0, 9000).Select(i => $"w{i % 50}"));
        foreach (var (metric, score) in new (string, Func<PrfScore>)[]
                 {
                     ("rougeL", () => rouge.RougeL(huge, huge)), ("rougeLsum", () => rouge.RougeLsum(huge, huge)),
                     ("rougeW", () => rouge.RougeW(huge, huge)), ("rougeS", () => rouge.RougeS(huge, huge)),
                     ("rougeSU", () => rouge.RougeS(huge, huge, withUnigrams: true)),
                 })
        {
            var e = Assert.Throws<SharpTuneException>(() => score());
            Assert.Contains($"leave {metric} out", e.Message);
            Assert.Contains("tokens is over the limit", e.Message);
        }
        Assert.Equal(1.0, rouge.RougeN(huge, huge, 2).F, Tol);
        string large = string.Join(' ', Enumerable.Range(0, 2000).Select(i => $"w{i % 50}"));
        Assert.Equal(1.0, rouge.RougeL(large, large).F, Tol);
        Assert.Equal(1.0, rouge.RougeW(large, large).F, Tol);
    }

    [Theory]
    [InlineData("caresses", "caress")] [InlineData("ponies", "poni")] [InlineData("ties", "tie")] [InlineData("cats", "cat")]
    [InlineData("agreed", "agre")] [InlineData("running", "run")] [InlineData("happy", "happi")] [InlineData("relational", "relat")]
    [InlineData("hopeful", "hope")] [InlineData("dying", "die")] [InlineData("skies", "sky")] [InlineData("generalization", "gener")]
    [InlineData("controlling", "control")] [InlineData("flies", "fli")] [InlineData("spied", "spi")] [InlineData("geology", "geolog")]
    [InlineData("enjoy", "enjoy")] [InlineData("hopping", "hop")] [InlineData("filing", "file")] [InlineData("falling", "fall")]
    public void PorterStemmerFollowsNltksDefaultMode(string word, string stem) => Assert.Equal(stem, PorterStemmer.Stem(word));

    [Fact]
    public void StemmingAppliesOnlyToTokensLongerThanThreeCharacters()
    {
        // "dies" (4) stems to "die"; "ties" too; "cats" (4) → "cat"; "was" (3) is left alone (it would become "wa")
        Assert.Equal(["die", "cat", "was"], new Rouge(stem: true).Tokenize("Dies cats was"));
    }

    [Fact]
    public void RougeNAndLOnTheCatExample()
    {
        var rouge = new Rouge();
        string reference = "the cat sat on the mat", prediction = "the cat is on the mat";
        // unigrams: the×2, cat, on, mat match = 5 of 6 on both sides
        Assert.Equal(5.0 / 6, rouge.RougeN(reference, prediction, 1).F, Tol);
        // bigrams: "the cat", "on the", "the mat" = 3 of 5
        Assert.Equal(0.6, rouge.RougeN(reference, prediction, 2).F, Tol);
        // LCS "the cat on the mat" = 5
        Assert.Equal(5.0 / 6, rouge.RougeL(reference, prediction).F, Tol);
        // different lengths: P = 2/2, R = 2/6 → F = 0.5
        Assert.Equal(0.5, rouge.RougeN("a b c d e f", "a b", 1).F, Tol);
        Assert.Equal(0, rouge.RougeL("", "a b").F);
    }

    [Fact]
    public void RougeLsumTakesTheUnionLcsOverSentences()
    {
        // Lin 2004 §3.2: r = w1..w5, c1 = w1 w2 w6 w7 w8, c2 = w1 w3 w8 w9 w5: union LCS w1 w2 w3 w5 → 4 hits,
        // R = 4/5, P = 4/10, F = 2·0.8·0.4/1.2
        var s = new Rouge().RougeLsum("alpha bravo charlie delta echo", "alpha bravo foxtrot golf hotel\nalpha charlie hotel india echo");
        Assert.Equal(0.8, s.Recall, Tol);
        Assert.Equal(0.4, s.Precision, Tol);
        Assert.Equal(2 * 0.8 * 0.4 / 1.2, s.F, Tol);
        // the per-sentence union alone would count the single predicted "cat" twice; rouge-score's token counts stop
        // that: hits 1, P = 1/1, R = 1/3
        Assert.Equal(0.5, new Rouge().RougeLsum("cat dog\ncat", "cat").F, Tol);
        // empty lines are not sentences
        Assert.Equal(1, new Rouge().RougeLsum("a b\n\nc", "\na b\nc\n").F, Tol);
    }

    [Fact]
    public void RougeWRewardsConsecutiveMatches()
    {
        // Lin 2004 §3.3: X = A B C D E F G; Y1 = A B C D H I K (one run of 4), Y2 = A H B K C I D (4 single matches)
        var rouge = new Rouge();
        // Y1: WLCS = f(4) → R = f⁻¹(f(4)/f(7)) = 4/7, and P the same
        Assert.Equal(4.0 / 7, rouge.RougeW("a b c d e f g", "a b c d h i k").F, Tol);
        // Y2: WLCS = 4·f(1) = 4 → R = (4/7^1.2)^(1/1.2) = 4^(1/1.2)/7
        Assert.Equal(Math.Pow(4, 1 / 1.2) / 7, rouge.RougeW("a b c d e f g", "a h b k c i d").F, Tol);
    }

    [Fact]
    public void RougeSCountsSkipBigramsAndSuAddsUnigrams()
    {
        // Lin 2004 §5: S1 = police killed the gunman; C(4,2) = 6 skip-bigrams each
        var rouge = new Rouge();
        const string s1 = "police killed the gunman";
        Assert.Equal(3.0 / 6, rouge.RougeS(s1, "police kill the gunman").F, Tol);   // police-the, police-gunman, the-gunman
        Assert.Equal(1.0 / 6, rouge.RougeS(s1, "the gunman kill police").F, Tol);   // the-gunman
        Assert.Equal(2.0 / 6, rouge.RougeS(s1, "the gunman police killed").F, Tol); // the-gunman, police-killed
        // SU: a begin marker on both sides, C(5,2) = 10 pairs; 3 skip-bigrams + 3 shared words
        Assert.Equal(6.0 / 10, rouge.RougeS(s1, "police kill the gunman", withUnigrams: true).F, Tol);
        // S5 = gunman the killed police shares no skip-bigram with S1 but every word: ROUGE-S 0, ROUGE-SU 4/10
        Assert.Equal(0, rouge.RougeS(s1, "gunman the killed police").F, Tol);
        Assert.Equal(4.0 / 10, rouge.RougeS(s1, "gunman the killed police", withUnigrams: true).F, Tol);
    }
}

/// <summary>rouge-score's own test data and the ROUGE-1.5.5 values its tests assert (given to 5 places, so the
/// tolerance is 5e-6), with and without stemming: random words ending in -ing, -tion, -er, -ed that the stemmer cuts.</summary>
public class Rouge155Tests
{
    [Fact]
    public void MatchesRouge155OnRougeScoresTestData()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "eval", "rouge155.json")));
        int checkedValues = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var rouge = new Rouge(c.GetProperty("stem").GetBoolean());
            string target = c.GetProperty("target").GetString()!, prediction = c.GetProperty("prediction").GetString()!;
            foreach (var (name, score) in new[] { ("rouge1", rouge.RougeN(target, prediction, 1)), ("rouge2", rouge.RougeN(target, prediction, 2)), ("rougeL", rouge.RougeL(target, prediction)) })
            {
                if (!c.TryGetProperty(name, out var expected)) continue;
                var e = expected.EnumerateArray().Select(v => v.GetDouble()).ToArray();
                Assert.Equal(e[0], score.Precision, 5e-6);
                Assert.Equal(e[1], score.Recall, 5e-6);
                Assert.Equal(e[2], score.F, 5e-6);
                checkedValues++;
            }
        }
        Assert.Equal(10, checkedValues);
    }
}
