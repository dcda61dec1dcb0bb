using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

public class SplitPatternTests
{
    private const string Qwen2 =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Llama3 =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The hand-written scanner and the general code-point regex engine agree on every document.</summary>
    [Theory]
    [InlineData(Qwen2)]
    [InlineData(Llama3)]
    public void Scanner_EqualsGeneralRegex(string pattern)
    {
        var scanner = SplitPatterns.ForRegex(pattern, "test");
        Assert.IsType<WordPieceScanner>(scanner);
        var general = SplitPatterns.GeneralRegex(pattern);
        var fast = new List<(int, int)>();
        var slow = new List<(int, int)>();
        foreach (string text in Corpus)
        {
            fast.Clear();
            slow.Clear();
            scanner.FindMatches(text, fast);
            general.FindMatches(text, slow);
            Assert.Equal(slow, fast);
        }
    }

    [Theory]
    [InlineData("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 x", new[] { "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", " x" })]
    [InlineData("a𝟘𝟙b", new[] { "a", "𝟘", "𝟙", "b" })]
    [InlineData("😀abc", new[] { "😀abc" })]
    [InlineData("it'S 'ſ", new[] { "it", "'S", " '", "ſ" })]
    [InlineData("x  \n\n y", new[] { "x", "  \n\n", " y" })]
    [InlineData("a   b", new[] { "a", "  ", " b" })]
    public void Scanner_MatchesCodePointsNotUtf16Units(string text, string[] expected)
    {
        var pieces = new List<(int Start, int End)>();
        SplitPatterns.ForRegex(Qwen2, "test").FindMatches(text, pieces);
        Assert.Equal(expected, pieces.Select(p => text[p.Start..p.End]));
    }

    [Theory]
    [InlineData(@"(?<=a)b", "lookbehind")]
    [InlineData(@"\p{Greek}", @"\p{Greek}")]
    [InlineData(@"a++", "possessive")]
    [InlineData(@"[a&&b]", "intersection")]
    public void GeneralRegex_RejectsUnsupportedFeatures(string pattern, string feature)
    {
        var error = Assert.Throws<SharpTuneException>(() => SplitPatterns.ForRegex(pattern, "file.json: pre_tokenizer"));
        Assert.Contains("file.json: pre_tokenizer", error.Message);
        Assert.Contains(feature, error.Message);
    }
}
