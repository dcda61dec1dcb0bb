using System.Globalization;
using System.Text.Json.Nodes;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

public sealed class ChatTemplateFeatureTests
{
    [Theory]
    [InlineData("{% if true %}x", 1, "endif")]
    [InlineData("line1\nline2 {{ ok }}\nline3 {% if %}\n", 3, "Expected an expression")]
    [InlineData("a\n\n  {{ 1 + }}", 3, "unexpected")]
    [InlineData("{{ 'abc }}", 1, "unexpected char")]
    [InlineData("{% foo %}", 1, "unknown tag 'foo'")]
    [InlineData("{{ x|nope }}", 1, "No filter named 'nope'")]
    public void SyntaxErrorsNameTheLineAndColumn(string source, int line, string fragment)
    {
        var error = Assert.Throws<SharpTuneException>(() => ChatTemplate.Parse(source));
        Assert.Contains($"line {line}, column ", error.Message);
        Assert.Contains(fragment, error.Message);
    }

    [Fact]
    public void SyntaxErrorColumnPointsAtTheOffendingToken()
    {
        var error = Assert.Throws<SharpTuneException>(() => ChatTemplate.Parse("ab\ncd {{ 1 + }}"));
        Assert.Contains("line 2, column 11", error.Message);
    }

    [Fact]
    public void RaiseExceptionBecomesSharpTuneExceptionWithTheTemplatesMessage()
    {
        var template = ChatTemplate.Parse("{% if messages|length == 0 %}{{ raise_exception('No messages given!') }}{% endif %}ok");
        var error = Assert.Throws<SharpTuneException>(() => template.RenderChat([], false, null, null));
        Assert.Equal("No messages given!", error.Message);
        Assert.Equal("ok", template.RenderChat([new ChatMessage("user", "hi")], false, null, null));
    }

    [Fact]
    public void RuntimeErrorsNameTheTemplateLine()
    {
        var template = ChatTemplate.Parse("first\n{{ 'a' + 1 }}");
        var error = Assert.Throws<SharpTuneException>(() => template.Render(new Dictionary<string, object?>()));
        Assert.Equal("Chat template error at line 2: can only concatenate str (not \"int\") to str", error.Message);
    }

    [Fact]
    public void AttributeOfUndefinedRaisesLikeJinja2()
    {
        var template = ChatTemplate.Parse("{{ messages[0].content.strip() }}");
        var error = Assert.Throws<SharpTuneException>(() => template.RenderChat([], false, null, null));
        Assert.Equal("Chat template error at line 1: list object has no element 0", error.Message);
    }

    [Fact]
    public void RenderChatPassesMessagesTokensAndExtras()
    {
        var template = ChatTemplate.Parse(
            "{{ bos_token }}{% for m in messages %}[{{ m.role }}|{{ m.content }}|{{ m.reasoning_content }}]{% endfor %}"
            + "{{ add_generation_prompt }}|{{ tools }}|{{ eos_token is defined }}|{{ enable_thinking }}");
        var text = template.RenderChat(
            [new ChatMessage("user", "q"), new ChatMessage("assistant", "a") { ReasoningContent = "r" }],
            addGenerationPrompt: true, bosToken: "<s>", eosToken: null,
            new Dictionary<string, object?> { ["enable_thinking"] = false });
        Assert.Equal("<s>[user|q|][assistant|a|r]True|None|False|False", text);
    }

    [Fact]
    public void AcceptsJsonNodesAndClrCollections()
    {
        var messages = JsonNode.Parse("""
            [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1, "y": 2.0, "z": [true, null]}}}]}]
            """);
        var template = ChatTemplate.Parse(
            "{% for m in messages %}{{ m.content is none }} {{ m.tool_calls[0].function.arguments|tojson }}{% endfor %} "
            + "{{ ids }} {{ table.k }} {{ ratio }} {{ count is integer }}");
        var text = template.Render(new Dictionary<string, object?>
        {
            ["messages"] = messages,
            ["ids"] = new[] { 1, 2 },
            ["table"] = new Dictionary<string, string> { ["k"] = "v" },
            ["ratio"] = 0.5f,
            ["count"] = 3,
        });
        Assert.Equal("True {\"x\": 1, \"y\": 2.0, \"z\": [true, null]} [1, 2] v 0.5 True", text);
    }

    [Fact]
    public void UnsupportedValueTypesAreRejectedWithTheirPath()
    {
        var template = ChatTemplate.Parse("{{ x }}");
        var error = Assert.Throws<SharpTuneException>(() => template.Render(new Dictionary<string, object?>
        {
            ["x"] = new Dictionary<string, object?> { ["when"] = DateTime.UnixEpoch },
        }));
        Assert.Contains("'x.when'", error.Message);
        Assert.Contains("DateTime", error.Message);
    }

    [Fact]
    public void StrftimeNowFormatsTheCurrentLocalDate()
    {
        var template = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}");
        var before = DateTime.Now;
        var text = template.Render(new Dictionary<string, object?>());
        var after = DateTime.Now;
        var expected = new[] { before, after }.Select(t =>
            t.ToString("dd MMM yyyy", CultureInfo.InvariantCulture) + "|" + t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Assert.Contains(text, expected);
    }

    [Fact]
    public void TemplateValuesAreNotChangedByRendering()
    {
        var template = ChatTemplate.Parse("{% set messages = messages[1:] %}{{ messages|length }}");
        var variables = new Dictionary<string, object?> { ["messages"] = new List<object?> { "a", "b" } };
        Assert.Equal("1", template.Render(variables));
        Assert.Equal("1", template.Render(variables));
    }
}
