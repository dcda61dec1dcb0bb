using System.Text.Json.Nodes;
using SharpTune.Tokenization;
using Xunit;
using static SharpTune.Tests.Tokenization.TokenizerTestData;

namespace SharpTune.Tests.Tokenization;

public class TokenizerErrorTests
{
    [Fact]
    public void Load_MissingFolder_NamesIt()
    {
        var error = Assert.Throws<SharpTuneException>(() => Tokenizer.Load("/nonexistent/tokenizer-folder"));
        Assert.Contains("/nonexistent/tokenizer-folder", error.Message);
    }

    [Fact]
    public void Load_MissingTokenizerJson_NamesTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("sharptune-tok-").FullName;
        try
        {
            var error = Assert.Throws<SharpTuneException>(() => Tokenizer.Load(dir));
            Assert.Contains(Path.Combine(dir, "tokenizer.json"), error.Message);
            Assert.Contains("not found", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("model.type", "WordPiece", "model type \"WordPiece\"")]
    [InlineData("normalizer", """{"type": "Lowercase"}""", "normalizer \"Lowercase\"")]
    [InlineData("pre_tokenizer", """{"type": "Metaspace", "replacement": "▁"}""", "pre-tokenizer \"Metaspace\"")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "(?<=x)y"}, "behavior": "Isolated", "invert": false}""", "lookbehind")]
    [InlineData("decoder", """{"type": "WordPiece", "prefix": "##"}""", "decoder \"WordPiece\"")]
    [InlineData("post_processor", """{"type": "BertProcessing", "sep": ["[SEP]", 1], "cls": ["[CLS]", 0]}""", "post-processor \"BertProcessing\"")]
    [InlineData("model.byte_fallback", "true", "byte fallback")]
    public void Load_UnsupportedFeature_NamesFileAndFeature(string field, string json, string feature)
    {
        var root = JsonNode.Parse(File.ReadAllText(FixturePath(Path.Combine("trained", "tiny", "tokenizer.json"))))!;
        var value = json.StartsWith('{') || json == "true" ? JsonNode.Parse(json) : JsonValue.Create(json);
        if (field.StartsWith("model.", StringComparison.Ordinal))
        {
            root["model"]![field["model.".Length..]] = value;
        }
        else
        {
            root[field] = value;
        }
        string dir = Directory.CreateTempSubdirectory("sharptune-tok-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
            var error = Assert.Throws<SharpTuneException>(() => Tokenizer.Load(dir));
            Assert.Contains(Path.Combine(dir, "tokenizer.json"), error.Message);
            Assert.Contains(feature, error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Load_InvalidJson_NamesTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("sharptune-tok-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ not json");
            var error = Assert.Throws<SharpTuneException>(() => Tokenizer.Load(dir));
            Assert.Contains("invalid JSON", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Encode_LoneSurrogatesAndNoncharacters_DoNotThrow()
    {
        var qwen = Real("qwen3");
        int[] ids = qwen.Encode("a\uD800b\uFFFE\u0301\uDC00");
        Assert.NotEmpty(ids);
        Assert.Equal("a\uFFFDb\uFFFE\u0301\uFFFD", qwen.Decode(ids));
    }
}
