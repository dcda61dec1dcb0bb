using SharpTune.Jinja;
using SharpTune.Tests.Tokenization;

namespace SharpTune.Tests.Jinja;

public sealed class JinjaTemplateTests
{
    /// <summary>One small template per engine feature (whitespace control, filters, tests, methods, scoping, errors),
    /// against jinja2 with Hugging Face's settings.</summary>
    [Fact]
    public void EngineFeaturesMatchJinja2()
    {
        using var document = ChatTemplateFixtures.Load("jinja_feature_cases.json");
        var variables = ChatTemplateFixtures.Variables(document.RootElement.GetProperty("variables"));
        var cases = document.RootElement.GetProperty("cases").EnumerateArray().ToList();
        Assert.True(cases.Count >= 140, $"only {cases.Count} feature cases");
        var mismatches = new List<string>();
        foreach (var c in cases)
        {
            var source = c.GetProperty("template").GetString()!;
            var problem = ChatTemplateFixtures.Compare(
                ChatTemplateFixtures.Expectation.From(c), () => JinjaTemplate.Parse(source), t => t.Render(variables));
            if (problem is not null)
            {
                mismatches.Add($"{c.GetProperty("id").GetString()}: {problem}");
            }
        }

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {cases.Count} differ:\n" + string.Join("\n", mismatches));
    }

    [Fact]
    public void ErrorsSayTheirKindAndWhere()
    {
        var syntax = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("ab\ncd {{ 1 + }}"));
        Assert.Equal((JinjaErrorKind.Syntax, 2, 11), (syntax.Kind, syntax.Line, syntax.Column));
        Assert.StartsWith("Template syntax error at line 2, column 11: ", syntax.Message);
        Assert.StartsWith("Chat template syntax error at line 2, column 11: ", syntax.Describe("Chat template"));

        var render = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("first\n{{ 'a' + 1 }}").Render(new Dictionary<string, object?>()));
        Assert.Equal((JinjaErrorKind.Render, 2), (render.Kind, render.Line));

        var raised = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("{{ raise_exception('No messages given!') }}").Render(new Dictionary<string, object?>()));
        Assert.Equal((JinjaErrorKind.Raised, "No messages given!"), (raised.Kind, raised.Message));

        var variable = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("{{ x }}").Render(new Dictionary<string, object?> { ["x"] = new object() }));
        Assert.Equal(JinjaErrorKind.Variable, variable.Kind);
        Assert.Contains("'x' has unsupported type Object", variable.Message);
    }
}
