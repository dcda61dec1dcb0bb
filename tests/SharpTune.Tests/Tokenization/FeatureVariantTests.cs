using System.Text.Json;
using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

/// <summary>tokenizer.json variants built from the trained tokenizer by scripts/fixtures/tokenizer_reference.py, each
/// exercising a feature the real files do not use (Digits, split behaviors, invert, lookahead and lazy regexes,
/// ByteLevel's own regex and prefix space, offset trimming, TemplateProcessing, added-token flags, ignore_merges),
/// compared with Hugging Face tokenizers' ids and offsets.</summary>
public class FeatureVariantTests
{
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var variant in Reference("tiny").GetProperty("variants").EnumerateObject())
        {
            data.Add(variant.Name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Variant_MatchesHuggingFace(string name)
    {
        var reference = Reference("tiny").GetProperty("variants").GetProperty(name);
        string dir = Directory.CreateTempSubdirectory("sharptune-variant-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), reference.GetProperty("tokenizer_json").GetString());
            var tokenizer = Tokenizer.Load(dir);
            var plain = IdLists(reference.GetProperty("ids"));
            var summary = reference.GetProperty("special");
            var offsets = reference.GetProperty("offsets").EnumerateArray().ToArray();
            var corpus = Corpus;
            var failures = new List<string>();
            for (int i = 0; i < plain.Length; i++)
            {
                int[] actual = tokenizer.Encode(corpus[i], addSpecialTokens: false);
                if (!actual.AsSpan().SequenceEqual(plain[i]))
                {
                    failures.Add($"doc {i} ids: " + DescribeMismatch(tokenizer, corpus[i], plain[i], actual));
                    continue;
                }
                var encoding = tokenizer.EncodeWithOffsets(corpus[i]);
                Assert.Equal(WithSpecial(summary, i, plain[i]), encoding.Ids);
                if (i < offsets.Length)
                {
                    var expected = offsets[i].EnumerateArray().Select(o => (o[0].GetInt32(), o[1].GetInt32())).ToArray();
                    var got = ToCodePointOffsets(corpus[i], encoding.Offsets);
                    if (!expected.SequenceEqual(got))
                    {
                        int k = 0;
                        while (expected[k] == got[k])
                        {
                            k++;
                        }
                        failures.Add($"doc {i} offsets at token {k}: expected {expected[k]}, got {got[k]}");
                    }
                }
            }
            Assert.True(failures.Count == 0, $"{failures.Count} failures\n" + string.Join("\n", failures.Take(5)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
