using System.Text;
using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

/// <summary>Qwen3, Llama-3 and DeepSeek-V3 tokenizer.json files against Hugging Face tokenizers 0.23.2 on the
/// 2,400-document corpus (see scripts/fixtures/tokenizer_reference.py).</summary>
public class RealTokenizerTests
{
    public static TheoryData<string> Names => new() { "qwen3", "llama3", "deepseek_v3" };

    [Theory]
    [MemberData(nameof(Names))]
    public void Encode_WithoutSpecialTokens_MatchesHuggingFaceOnWholeCorpus(string name)
    {
        var tokenizer = Real(name);
        var expected = IdLists(Reference(name).GetProperty("ids"));
        var corpus = Corpus;
        Assert.Equal(corpus.Length, expected.Length);
        var failures = new List<string>();
        for (int i = 0; i < corpus.Length; i++)
        {
            int[] actual = tokenizer.Encode(corpus[i], addSpecialTokens: false);
            if (!actual.AsSpan().SequenceEqual(expected[i]))
            {
                failures.Add($"doc {i}: " + DescribeMismatch(tokenizer, corpus[i], expected[i], actual));
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatching documents\n" + string.Join("\n", failures.Take(5)));
    }

    /// <summary>With special tokens: tokenizers' post-processor for Qwen3 and Llama-3 (these files add nothing, and
    /// transformers 5.17 agrees); for DeepSeek-V3, tokenizer_config.json's add_bos_token puts BOS first, as
    /// transformers' LlamaTokenizerFast does.</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void Encode_WithSpecialTokens_AddsWhatHuggingFaceAdds(string name)
    {
        var tokenizer = Real(name);
        var reference = Reference(name);
        var plain = IdLists(reference.GetProperty("ids"));
        var summary = reference.GetProperty("special");
        Assert.Empty(summary.GetProperty("exceptions").EnumerateObject());
        int[] configPrefix = name == "deepseek_v3" ? [tokenizer.BosTokenId!.Value] : [];
        Assert.Equal(name == "deepseek_v3", tokenizer.AddBosToken);
        var corpus = Corpus;
        int mismatches = 0;
        for (int i = 0; i < corpus.Length; i++)
        {
            int[] expected = [.. configPrefix, .. WithSpecial(summary, i, plain[i])];
            if (!tokenizer.Encode(corpus[i]).AsSpan().SequenceEqual(expected))
            {
                mismatches++;
            }
        }
        Assert.Equal(0, mismatches);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void EncodeWithOffsets_MatchesHuggingFaceOffsets(string name)
    {
        var tokenizer = Real(name);
        var reference = Reference(name);
        var expectedOffsets = reference.GetProperty("offsets").EnumerateArray().ToArray();
        var expectedIds = IdLists(reference.GetProperty("ids"));
        var corpus = Corpus;
        var failures = new List<string>();
        for (int i = 0; i < expectedOffsets.Length; i++)
        {
            var encoding = tokenizer.EncodeWithOffsets(corpus[i], addSpecialTokens: false);
            Assert.Equal(expectedIds[i], encoding.Ids);
            var expected = expectedOffsets[i].EnumerateArray().Select(o => (o[0].GetInt32(), o[1].GetInt32())).ToArray();
            var actual = ToCodePointOffsets(corpus[i], encoding.Offsets);
            if (!expected.SequenceEqual(actual))
            {
                int k = 0;
                while (expected[k] == actual[k])
                {
                    k++;
                }
                failures.Add($"doc {i} token {k}: expected {expected[k]}, got {actual[k]}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} documents with wrong offsets\n" + string.Join("\n", failures.Take(5)));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Decode_MatchesHuggingFace_WithAndWithoutSpecialTokens(string name)
    {
        var tokenizer = Real(name);
        var reference = Reference(name);
        var ids = IdLists(reference.GetProperty("ids"));
        var decoded = reference.GetProperty("decode").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var decodedSkipping = reference.GetProperty("decode_skip_special").EnumerateArray().Select(e => e.GetString()!).ToArray();
        for (int i = 0; i < decoded.Length; i++)
        {
            Assert.Equal(decoded[i], tokenizer.Decode(ids[i]));
            Assert.Equal(decodedSkipping[i], tokenizer.Decode(ids[i], skipSpecialTokens: true));
        }
    }

    /// <summary>Byte-level BPE loses nothing: decoding gives back the text (NFC-normalized for Qwen3).</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void Decode_RoundTripsEveryDocument(string name)
    {
        var tokenizer = Real(name);
        foreach (string text in Corpus)
        {
            string expected = name == "qwen3" ? text.Normalize(NormalizationForm.FormC) : text;
            Assert.Equal(expected, tokenizer.Decode(tokenizer.Encode(text, addSpecialTokens: false)));
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void StreamingDecoder_OutputsConcatenateToDecode(string name)
    {
        var tokenizer = Real(name);
        foreach (string text in Corpus.Take(400))
        {
            var ids = tokenizer.Encode(text);
            foreach (bool skip in new[] { false, true })
            {
                var decoder = new StreamingDecoder(tokenizer, skip);
                var streamed = new StringBuilder();
                foreach (int id in ids)
                {
                    string piece = decoder.Push(id);
                    Assert.DoesNotContain('\uFFFD', piece);
                    streamed.Append(piece);
                }
                streamed.Append(decoder.Flush());
                Assert.Equal(tokenizer.Decode(ids, skip), streamed.ToString());
            }
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void EncodeBatch_EqualsEncodeInOrder(string name)
    {
        var tokenizer = Real(name);
        var texts = Corpus.Take(600).ToArray();
        var batch = tokenizer.EncodeBatch(texts);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(tokenizer.Encode(texts[i]), batch[i]);
        }
    }

    [Fact]
    public void Properties_MatchTheFiles()
    {
        var qwen = Real("qwen3");
        Assert.Equal(Reference("qwen3").GetProperty("vocab_size_with_added").GetInt32(), qwen.VocabSize);
        Assert.Null(qwen.BosToken);
        Assert.Null(qwen.BosTokenId);
        Assert.False(qwen.AddBosToken);
        Assert.Equal(("<|im_end|>", 151645), (qwen.EosToken, qwen.EosTokenId));
        Assert.Equal(151643, qwen.PadTokenId);
        Assert.Contains("<|im_start|>", qwen.ChatTemplateSource);
        Assert.Equal(151667, qwen.TokenToId("<think>"));
        Assert.Equal("<think>", qwen.IdToToken(151667));
        Assert.False(qwen.IsSpecial(151667));
        Assert.True(qwen.IsSpecial(151644));
        Assert.Equal(9707, qwen.TokenToId("Hello"));
        Assert.Null(qwen.TokenToId("no such token"));
        Assert.Null(qwen.IdToToken(-1));
        Assert.Null(qwen.IdToToken(qwen.VocabSize));

        var llama = Real("llama3");
        Assert.Equal(Reference("llama3").GetProperty("vocab_size_with_added").GetInt32(), llama.VocabSize);
        Assert.Equal(("<|begin_of_text|>", 128000), (llama.BosToken, llama.BosTokenId));
        Assert.Equal(128001, llama.EosTokenId);

        var deepseek = Real("deepseek_v3");
        Assert.Equal(Reference("deepseek_v3").GetProperty("vocab_size_with_added").GetInt32(), deepseek.VocabSize);
        Assert.Equal(("<｜begin▁of▁sentence｜>", 0), (deepseek.BosToken, deepseek.BosTokenId));
        Assert.Equal(1, deepseek.EosTokenId);
        Assert.Equal(1, deepseek.PadTokenId);
    }

    [Fact]
    public void SpecialTokens_AreSplitOutEvenWithoutAddingSpecialTokens()
    {
        var qwen = Real("qwen3");
        int[] ids = qwen.Encode("<|im_start|>user\nHi<|im_end|>", addSpecialTokens: false);
        Assert.Equal(151644, ids[0]);
        Assert.Equal(151645, ids[^1]);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>", qwen.Decode(ids));
        Assert.Equal("user\nHi", qwen.Decode(ids, skipSpecialTokens: true));
    }
}
