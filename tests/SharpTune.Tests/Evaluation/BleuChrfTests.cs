using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

/// <summary>BLEU and chrF against worked examples from sacrebleu's definitions (tolerance 1e-9 on the formula;
/// the bar against sacrebleu itself is 0.01, checked by <see cref="SacrebleuFixtureTests"/>).</summary>
public class BleuChrfTests
{
    [Fact]
    public void Tokenizer13aSplitsPunctuationButKeepsNumbersAndApostrophes()
    {
        Assert.Equal("Hello , world ! It's 3.5 - 4 .", Bleu.Tokenize13a("Hello, world! It's 3.5-4."));
        Assert.Equal("a \" b & c < d", Bleu.Tokenize13a("a &quot;b &amp; c &lt;d"));
        Assert.Equal("1,000 people ( 50 % )", Bleu.Tokenize13a("1,000 people (50%)"));
        Assert.Equal("line one line two", Bleu.Tokenize13a("line one\nline two"));
    }

    [Fact]
    public void TokenizerZhSplitsEveryChineseCharacterAsSacrebleuDefinesThem()
    {
        Assert.Equal("我 爱 北 京 。", Bleu.TokenizeZh("我爱北京。"));
        Assert.Equal("GPU 很 快 , 3.5 倍", Bleu.TokenizeZh(" GPU很快, 3.5倍 "));
        // sacrebleu's "\u20000" bound reads as U+2000 followed by '0': U+2001..U+2A6D count as Chinese, Extension B does not
        Assert.True(Bleu.IsChineseChar(0x2014));
        Assert.Equal("a — b", Bleu.TokenizeZh("a—b"));
        Assert.False(Bleu.IsChineseChar(0x2000));
        Assert.False(Bleu.IsChineseChar(0x20000));
        Assert.True(Bleu.IsChineseChar(0x2A6D));
        Assert.False(Bleu.IsChineseChar(0x2A6E));
    }

    [Fact]
    public void CorpusBleuMatchesTheWorkedExample()
    {
        // the cat is on the mat / the cat sat on the mat: 6 tokens each, BP 1;
        // matches 5/6, 3/5, 1/4 ("on the mat"), 0/3 → exp smoothing 1/(2·3)
        var s = Bleu.Corpus(["the cat is on the mat"], ["the cat sat on the mat"]);
        double expected = Math.Exp((Math.Log(500.0 / 6) + Math.Log(60) + Math.Log(25) + Math.Log(100.0 / 6)) / 4);
        Assert.Equal(expected, s.Score, 9);
        Assert.Equal(1, s.BrevityPenalty);
    }

    [Fact]
    public void CorpusBleuSumsStatisticsAndAppliesTheBrevityPenalty()
    {
        // two segments: (a b c d | a b c d e) and (x y | x y): hyp 6 tokens, ref 7 → BP = e^(1 - 7/6)
        // matches: 1-grams 6/6, 2-grams 4/4, 3-grams 2/2, 4-grams 1/1 → precisions all 100
        var s = Bleu.Corpus(["a b c d", "x y"], ["a b c d e", "x y"]);
        Assert.Equal(100 * Math.Exp(1 - 7.0 / 6), s.Score, 9);
        // the second zero-match order gets 1/(4·total): here orders 3 and 4 both have no match
        var t = Bleu.Corpus(["a b c x y"], ["a b q x y"]);
        // 1-grams 4/5, 2-grams 2/4, 3-grams 0/3 → 100/(2·3), 4-grams 0/2 → 100/(4·2)
        Assert.Equal(Math.Exp((Math.Log(80) + Math.Log(50) + Math.Log(100.0 / 6) + Math.Log(100.0 / 8)) / 4), t.Score, 9);
    }

    [Fact]
    public void BleuIsZeroWithoutAnyMatchOrForAnEmptyHypothesis()
    {
        Assert.Equal(0, Bleu.Corpus(["q r s"], ["a b c"]).Score);
        Assert.Equal(0, Bleu.Corpus([""], ["a b c"]).Score);
        // a 2-token corpus has no 3-grams: total 0 stops the loop, log(0) sends the score to 0 (sacrebleu's behaviour)
        Assert.Equal(0, Bleu.Corpus(["a b"], ["a b"]).Score, 9);
    }

    [Fact]
    public void BleuMatchesSacrebleusOwnTestValues()
    {
        // sacrebleu test/test_bleu.py: test_case_statistics and test_case_scoring
        var s = Bleu.Corpus(["am I am a character sequence"], ["I am a symbol string sequence a a"]);
        Assert.Equal([4L, 2, 1, 0], s.Correct);
        Assert.Equal([6L, 5, 4, 3], s.Total);
        Assert.Equal(83.75922397, Bleu.Score([9, 7, 5, 3], [10, 8, 6, 4], 11, 11).Score, 6);
    }

    [Theory]
    // sacrebleu test/test_chrf.py, test_cases_effective_order (computed with beta 3; these do not depend on beta)
    [InlineData(new[] { "a" }, new[] { "a" }, 100.0)]
    [InlineData(new[] { "" }, new[] { "reference" }, 0.0)]
    [InlineData(new[] { "a b c" }, new[] { "a b c" }, 100.0)]
    [InlineData(new[] { "a b c" }, new[] { "abc" }, 100.0)]
    [InlineData(new[] { "a", "b" }, new[] { "a", "c" }, 50.0)]
    [InlineData(new[] { "aa" }, new[] { "ab" }, 25.0)]
    public void ChrfMatchesSacrebleusOwnTestValues(string[] hypotheses, string[] references, double expected) =>
        Assert.Equal(expected, Chrf.Corpus(hypotheses, references), 4);

    [Fact]
    public void ChrfMatchesTheWorkedExamples()
    {
        // ab / abc: 1-grams 2 matched of 2 (hyp) and 3 (ref); 2-grams 1 of 1 and 2; higher orders absent on the hyp side.
        // avgP = 1, avgR = (2/3 + 1/2)/2 = 7/12, F2 = 5·P·R/(4P + R) = 35/55
        Assert.Equal(100 * 35.0 / 55, Chrf.Corpus(["ab"], ["abc"]), 9);
        // whitespace is removed before counting
        Assert.Equal(100 * 35.0 / 55, Chrf.Corpus(["a b"], [" a\tbc"]), 9);
        // statistics are summed over the corpus: adding x / y gives 1-grams 2/3 (P) 2/4 (R), 2-grams 1/1 and 1/2
        // (a reference without bigrams adds no hypothesis bigrams): avgP = 5/6, avgR = 1/2, F2 = 25/46
        Assert.Equal(100 * 25.0 / 46, Chrf.Corpus(["ab", "x"], ["abc", "y"]), 9);
        // an emoji is one character (a code point), not two UTF-16 units
        Assert.Equal(100, Chrf.Corpus(["😀a"], ["😀a"]), 9);
        Assert.Equal(0, Chrf.Corpus([""], ["abc"]));
    }
}
