using SharpTune.Jinja;
using SharpTune.Tests.Tokenization;

namespace SharpTune.Tests.Jinja;

/// <summary>
/// A chat template comes with a downloaded model, so it is untrusted input: every way to make a rendering take
/// unbounded time or memory must stop quickly with a clear error, and the limits must leave room for real
/// conversations.
/// </summary>
public sealed class JinjaLimitsTests
{
    public static TheoryData<string, string> Runaways => new()
    {
        // one operation building something huge
        { """{{ "a" * 1000000000 }}""", "exceeds the limit" },
        { """{{ [1] * 1000000000 }}""", "exceeds the limit" },
        { """{{ range(1000000000) }}""", "MAX_RANGE" },
        { """{{ "%1000000000s" % "a" }}""", "width 1000000000 exceeds the limit" },
        { """{{ "%99999999999999999999s" % "a" }}""", "exceeds the limit" },
        { """{{ "a".ljust(1000000000) }}""", "exceeds the limit" },
        { """{% set s = "a" * 5000 %}{{ s.replace("", s) }}""", "a string of length" },
        // join, repr and tojson of many references to one big value
        { """{% set s = "a" * 16000000 %}{% set l = [s] * 16000000 %}{{ l | join }}""", "" },
        { """{% set s = "a" * 16000000 %}{{ [s, s] | join(",") }}""", "a string of length" },
        { """{% set s = "a" * 16000000 %}{{ "-".join([s, s]) }}""", "a string of length" },
        { """{% set b = ["x" * 4000] * 4000 %}{% set c = [b] * 4000 %}{{ c | string | length }}""", "a string of length" },
        { """{% set b = ["x" * 4000] * 4000 %}{% set c = [b] * 4000 %}{{ c | tojson | length }}""", "a JSON text of length" },
        // many operations: loops, growing values, repeated scans
        { """{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}""", "more work" },
        { """{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}""", "more work" },
        { """{% set s = "a" * 16000000 %}{% for i in range(100000) %}{% set t = s ~ "b" %}{% endfor %}""", "more work" },
        { """{% set l = range(100000) | list %}{% for i in range(100000) %}{% if -1 in l %}{% endif %}{% endfor %}""", "more work" },
        { """{% set ns = namespace(s="") %}{% for i in range(100000) %}{% set ns.s = ns.s + "a" * 1000 %}{% endfor %}""", "" },
        { """{% macro f(n) %}{% for i in range(100000) %}{{ n }}{% endfor %}{% endmacro %}{% for i in range(100000) %}{{ f(i) | length }}{% endfor %}""", "more work" },
        // values nested deeper than Python's recursion limit allows
        { """{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}""", "nested" },
        { """{% set ns = namespace(x=[]) %}{% for i in range(50000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | tojson }}""", "nested" },
        { """{% set ns = namespace(x=[]) %}{% for i in range(50000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x == ns.x }}""", "nested" },
        { """{% set ns = namespace(x=[]) %}{% for i in range(50000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ [ns.x] < [ns.x] }}""", "nested" },
        { """{% set ns = namespace(x=()) %}{% for i in range(50000) %}{% set ns.x = (ns.x,) %}{% endfor %}{{ {ns.x: 1} }}""", "nested" },
    };

    /// <summary>Each runaway ends in a one-line render error, having allocated less than 2 GB in all, garbage
    /// included (before these limits, the same templates held 4 to 8 GB at once, ran out of memory or ran for
    /// minutes).</summary>
    [Theory]
    [MemberData(nameof(Runaways))]
    public void RunawayTemplatesStopWithAnError(string source, string expected)
    {
        var template = JinjaTemplate.Parse(source);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<JinjaException>(() => template.Render(new Dictionary<string, object?>()));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(JinjaErrorKind.Render, error.Kind);
        Assert.Contains(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.True(allocated < 2L << 30, $"allocated {allocated / (1 << 20)} MB");
    }

    /// <summary>The work limit leaves room for real use: every reference template renders a 2,000-message
    /// conversation of 400-character messages (about 800k characters, far beyond any context) without reaching it.</summary>
    [Fact]
    public void ReferenceTemplatesRenderLongConversations()
    {
        using var document = ChatTemplateFixtures.Load("templates.json");
        var content = string.Concat(Enumerable.Repeat("Lorem ipsum dolor sit amet, consectetur. ", 10));
        var messages = Enumerable.Range(0, 2000)
            .Select(i => (object?)new Dictionary<string, object?> { ["role"] = i % 2 == 0 ? "user" : "assistant", ["content"] = $"{i} {content}" })
            .ToList();
        var rendered = 0;
        foreach (var entry in document.RootElement.GetProperty("templates").EnumerateObject())
        {
            var template = JinjaTemplate.Parse(entry.Value.GetProperty("chat_template").GetString()!);
            var variables = new Dictionary<string, object?>
            {
                ["messages"] = messages,
                ["add_generation_prompt"] = true,
                ["bos_token"] = "<s>",
                ["eos_token"] = "</s>",
            };
            try
            {
                var text = template.Render(variables);
                Assert.Contains("1999 Lorem", text);
                rendered++;
            }
            catch (JinjaException e) when (e.Kind == JinjaErrorKind.Raised)
            {
                // a template that refuses this conversation shape by its own rule (raise_exception) is not at a limit
            }
        }

        Assert.True(rendered >= 15, $"only {rendered} templates rendered");
    }
}
