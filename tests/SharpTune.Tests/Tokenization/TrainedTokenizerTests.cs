using System.Text.Json;
using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

/// <summary>Tokenizers trained by <see cref="BpeTrainer"/>: training is deterministic (the committed fixtures are what
/// training produces), and Hugging Face tokenizers loading the saved files gives the same ids on the whole corpus.</summary>
public class TrainedTokenizerTests
{
    private static readonly string[] Specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"];

    private const string ChatTemplate =
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

    /// <summary>The exact calls that produced Fixtures/tokenizer/trained/ (and the fixtures HF was run on).</summary>
    private static Tokenizer TrainFixture(string name) => name == "tiny"
        ? BpeTrainer.Train(Corpus.Take(800), 2000, Specials,
            new BpeTrainerOptions(EosToken: "<|im_end|>", PadToken: "<|endoftext|>"))
        : BpeTrainer.Train(Corpus.Take(800), 1000, Specials, new BpeTrainerOptions(BosToken: "<|endoftext|>",
            EosToken: "<|im_end|>", PadToken: "<|endoftext|>", AddBosToken: true, ChatTemplate: ChatTemplate));

    public static TheoryData<string> Names => new() { "tiny", "tiny_bos" };

    [Theory]
    [MemberData(nameof(Names))]
    public void Training_IsDeterministic_AndSavesTheCommittedFiles(string name)
    {
        var trained = TrainFixture(name);
        string dir = Directory.CreateTempSubdirectory("sharptune-tok-").FullName;
        try
        {
            trained.Save(dir);
            foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" })
            {
                Assert.Equal(File.ReadAllText(FixturePath(Path.Combine("trained", name, file))),
                    File.ReadAllText(Path.Combine(dir, file)));
            }
            Assert.False(File.Exists(Path.Combine(dir, "tokenizer.json.tmp")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void SavedTokenizer_MatchesHuggingFaceOnWholeCorpus(string name)
    {
        var tokenizer = Tokenizer.Load(FixturePath(Path.Combine("trained", name)));
        var reference = Reference("tiny").GetProperty("trained").GetProperty(name);
        var plain = IdLists(reference.GetProperty("ids"));
        var summary = reference.GetProperty("special");
        var corpus = Corpus;
        int mismatches = 0;
        string? first = null;
        for (int i = 0; i < corpus.Length; i++)
        {
            int[] actual = tokenizer.Encode(corpus[i], addSpecialTokens: false);
            int[] withSpecial = tokenizer.Encode(corpus[i]);
            if (!actual.AsSpan().SequenceEqual(plain[i]) || !withSpecial.AsSpan().SequenceEqual(WithSpecial(summary, i, plain[i])))
            {
                mismatches++;
                first ??= DescribeMismatch(tokenizer, corpus[i], plain[i], actual);
            }
        }
        Assert.True(mismatches == 0, $"{mismatches} mismatches; first: {first}");
        Assert.Equal(name == "tiny_bos", tokenizer.AddBosToken);
    }

    [Fact]
    public void TrainedTokenizer_HasTheRequestedVocabularyAndRoles()
    {
        var tokenizer = TrainFixture("tiny_bos");
        Assert.Equal(1000, tokenizer.VocabSize);
        Assert.Equal(995, tokenizer.BosTokenId);
        Assert.Equal(997, tokenizer.EosTokenId);
        Assert.Equal(995, tokenizer.PadTokenId);
        Assert.True(tokenizer.IsSpecial(998));
        Assert.Equal(ChatTemplate, tokenizer.ChatTemplateSource);
        Assert.Equal([995], tokenizer.Encode(""));
        string text = "Hello 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 <think>why</think> 123";
        Assert.Equal("Hello 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 why 123", tokenizer.Decode(tokenizer.Encode(text), skipSpecialTokens: true));
        Assert.Equal("<|endoftext|>" + text, tokenizer.Decode(tokenizer.Encode(text)));
        var reference = Reference("tiny").GetProperty("trained").GetProperty("tiny_bos");
        Assert.Equal(ChatTemplate.Length > 0, reference.GetProperty("transformers_chat").ValueKind == JsonValueKind.String);
        Assert.Equal(0, reference.GetProperty("transformers_mismatches").GetInt32());
    }

    [Fact]
    public void Training_RejectsAVocabularyTooSmallForTheBytes()
    {
        var error = Assert.Throws<SharpTuneException>(() => BpeTrainer.Train(["abc"], 100, Specials));
        Assert.Contains("vocabSize 100", error.Message);
    }
}
