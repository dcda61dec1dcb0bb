using SharpTune.Demo;
using SharpTune.Export;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Export;

/// <summary>The llama.cpp pre-tokenizer name chosen from tokenizer.json's split regexes (real tokenizers from
/// ./scripts/fetch-test-data.sh), and the refusal when none matches.</summary>
public sealed class GgufVocabTests
{
    static string Real(string name) => SharpTune.Tests.Tokenization.TokenizerTestData.RealTokenizerDir(name);

    [Theory]
    [InlineData("qwen3", "qwen2", false)]
    [InlineData("llama3", "llama-bpe", false)]   // this tokenizer.json has no BOS template; HF adds none either
    [InlineData("deepseek_v3", "deepseek-v3", true)]
    public void RealTokenizersGetLlamaCppsPreTokenizerName(string tokenizer, string expected, bool addBos)
    {
        string dir = Real(tokenizer);
        var tok = Tokenizer.Load(dir);
        var vocab = GgufVocab.Load(dir, tok, tok.VocabSize + 5, null);
        Assert.Equal(expected, vocab.PreTokenizer);
        Assert.Equal(addBos, vocab.AddBos);
        Assert.Equal(tok.VocabSize + 5, vocab.Tokens.Count);
        Assert.Equal("[PAD" + (tok.VocabSize + 4) + "]", vocab.Tokens[^1]);
        Assert.Equal(GgufVocab.Unused, vocab.TokenTypes[^1]);
        Assert.Equal(GgufVocab.Control, vocab.TokenTypes[tok.EosTokenId!.Value]);
    }

    [Fact]
    public void TinyModelsTokenizerIsQwen2sSplitAndDeepSeekNamed()
    {
        _ = TestPaths.Cpu;
        string dir = TestPaths.NewTinyModel();
        var tok = Tokenizer.Load(dir);
        var vocab = GgufVocab.Load(dir, tok, tok.VocabSize, null);
        Assert.Equal("deepseek-r1-qwen", vocab.PreTokenizer);   // the Qwen2 regex; llama.cpp treats both names alike
    }

    [Fact]
    public void AnUnknownSplitPatternIsRefused()
    {
        _ = TestPaths.Cpu;
        string dir = TestPaths.NewTinyModel();
        string path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace(@"\\p{N}|", @"\\p{N}{1,2}|"));
        var tok = Tokenizer.Load(dir);
        var e = Assert.Throws<SharpTuneException>(() => GgufVocab.Load(dir, tok, tok.VocabSize, null));
        Assert.Contains("match none of llama.cpp's pre-tokenizers", e.Message);
    }
}
