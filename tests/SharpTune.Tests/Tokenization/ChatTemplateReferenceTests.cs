using System.Text;
using System.Text.Json;
using SharpTune.Jinja;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Tokenization;

/// <summary>Reads the reference renderings written by scripts/fixtures/chat_template_reference.py.</summary>
internal static class ChatTemplateFixtures
{
    public static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat_templates");

    public static JsonDocument Load(string fileName) => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, fileName)));

    /// <summary>A JSON object as template variables; values stay JsonElements, which the engine accepts directly.</summary>
    public static Dictionary<string, object?> Variables(JsonElement obj)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var property in obj.EnumerateObject())
        {
            variables[property.Name] = property.Value;
        }

        return variables;
    }

    /// <summary>The expected outcome of one case: its text, or an error (phase "parse" or "render", jinja2's type and message).</summary>
    public sealed record Expectation(string? Text, string? ErrorType, string? ErrorMessage, string? ErrorPhase)
    {
        public static Expectation From(JsonElement testCase)
        {
            var error = testCase.GetProperty("error");
            if (error.ValueKind == JsonValueKind.Null)
            {
                return new Expectation(testCase.GetProperty("expected").GetString(), null, null, null);
            }

            return new Expectation(
                null, error.GetProperty("type").GetString(), error.GetProperty("message").GetString(), error.GetProperty("phase").GetString());
        }
    }

    /// <summary>Renders with <paramref name="render"/> and returns a description of how the result differs, or null if it matches.</summary>
    public static string? Compare<T>(Expectation expected, Func<T> parse, Func<T, string> render)
    {
        T template;
        try
        {
            template = parse();
        }
        catch (Exception e) when (e is SharpTuneException or JinjaException)
        {
            return expected.ErrorPhase == "parse" ? null : $"unexpected parse error: {e.Message}";
        }

        if (expected.ErrorPhase == "parse")
        {
            return $"parsed, but jinja2 refuses the template: {expected.ErrorType}: {expected.ErrorMessage}";
        }

        string actual;
        try
        {
            actual = render(template);
        }
        catch (Exception e) when (e is SharpTuneException or JinjaException)
        {
            if (expected.ErrorType is null)
            {
                return $"unexpected render error: {e.Message}";
            }

            // raise_exception('...') must surface with exactly the template's message.
            return expected.ErrorType == "TemplateError" && e.Message != expected.ErrorMessage
                ? $"raise_exception message {Quote(e.Message)}, expected {Quote(expected.ErrorMessage!)}"
                : null;
        }

        if (expected.ErrorType is not null)
        {
            return $"rendered {Quote(actual)}, but jinja2 raises {expected.ErrorType}: {expected.ErrorMessage}";
        }

        return actual == expected.Text ? null : Diff(expected.Text!, actual);
    }

    private static string Diff(string expected, string actual)
    {
        var at = 0;
        while (at < expected.Length && at < actual.Length && expected[at] == actual[at])
        {
            at++;
        }

        var from = Math.Max(0, at - 40);
        return $"differs at char {at}: expected ...{Quote(Slice(expected, from, at + 40))}, got ...{Quote(Slice(actual, from, at + 40))}";
    }

    private static string Slice(string s, int from, int to) => from >= s.Length ? "" : s[from..Math.Min(s.Length, to)];

    private static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            sb.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' => "\\\"",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }
}

/// <summary>
/// Every real template (Qwen3, Qwen2.5, Llama 3/3.1/3.2, DeepSeek-V3, DeepSeek-R1 distills, ...) over every
/// conversation, against the renderings of transformers' apply_chat_template: zero differences allowed.
/// </summary>
public sealed class ChatTemplateReferenceTests
{
    private sealed record Case(string Id, string Template, JsonElement Conversation, bool AddGenerationPrompt, JsonElement Extra,
        ChatTemplateFixtures.Expectation Expected);

    private static (Dictionary<string, (ChatTemplate? Parsed, string Source, string? Bos, string? Eos)> Templates, List<Case> Cases) Load()
    {
        using var templatesDocument = ChatTemplateFixtures.Load("templates.json");
        var templates = new Dictionary<string, (ChatTemplate?, string, string?, string?)>();
        foreach (var template in templatesDocument.RootElement.GetProperty("templates").EnumerateObject())
        {
            var source = template.Value.GetProperty("chat_template").GetString()!;
            templates[template.Name] = (null, source, template.Value.GetProperty("bos_token").GetString(),
                template.Value.GetProperty("eos_token").GetString());
        }

        var casesDocument = ChatTemplateFixtures.Load("chat_template_cases.json");
        var conversations = casesDocument.RootElement.GetProperty("conversations");
        var cases = casesDocument.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("id").GetString()!,
            c.GetProperty("template").GetString()!,
            conversations.GetProperty(c.GetProperty("conversation").GetString()!),
            c.GetProperty("add_generation_prompt").GetBoolean(),
            c.GetProperty("extra"),
            ChatTemplateFixtures.Expectation.From(c))).ToList();
        return (templates, cases);
    }

    /// <summary>The variables transformers' apply_chat_template passes (the script builds the same set).</summary>
    private static Dictionary<string, object?> Variables(Case c, string? bos, string? eos)
    {
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = c.Conversation.GetProperty("messages"),
            ["tools"] = c.Conversation.TryGetProperty("tools", out var tools) ? tools : null,
            ["documents"] = null,
            ["add_generation_prompt"] = c.AddGenerationPrompt,
        };
        if (bos is not null)
        {
            variables["bos_token"] = bos;
        }

        if (eos is not null)
        {
            variables["eos_token"] = eos;
        }

        foreach (var (name, value) in ChatTemplateFixtures.Variables(c.Extra))
        {
            variables[name] = value;
        }

        return variables;
    }

    [Fact]
    public void RealTemplatesRenderExactlyLikeTransformers()
    {
        var (templates, cases) = Load();
        Assert.True(cases.Count >= 500, $"only {cases.Count} reference cases");
        Assert.Contains(cases, c => c.Expected.ErrorType is null && c.Conversation.TryGetProperty("tools", out _));
        var mismatches = new List<string>();
        foreach (var c in cases)
        {
            var (_, source, bos, eos) = templates[c.Template];
            var problem = ChatTemplateFixtures.Compare(c.Expected, () => ChatTemplate.Parse(source), t => t.Render(Variables(c, bos, eos)));
            if (problem is not null)
            {
                mismatches.Add($"{c.Id}: {problem}");
            }
        }

        Assert.True(mismatches.Count == 0,
            $"{mismatches.Count} of {cases.Count} cases differ:\n" + string.Join("\n", mismatches.Take(25)));
    }

    /// <summary>RenderChat (ChatMessage records, no JSON) must give the same text for conversations it can express.</summary>
    [Fact]
    public void RenderChatMatchesTransformersForPlainConversations()
    {
        var (templates, cases) = Load();
        var checkedCases = 0;
        var mismatches = new List<string>();
        foreach (var c in cases.Where(c => c.Expected.ErrorType is null && IsPlain(c.Conversation)))
        {
            var (_, source, bos, eos) = templates[c.Template];
            var messages = c.Conversation.GetProperty("messages").EnumerateArray().Select(m => new ChatMessage(
                m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)
            {
                ReasoningContent = m.TryGetProperty("reasoning_content", out var reasoning) ? reasoning.GetString() : null,
            }).ToList();
            var actual = ChatTemplate.Parse(source).RenderChat(messages, c.AddGenerationPrompt, bos, eos, ChatTemplateFixtures.Variables(c.Extra));
            checkedCases++;
            if (actual != c.Expected.Text)
            {
                mismatches.Add(c.Id);
            }
        }

        Assert.True(checkedCases >= 200, $"only {checkedCases} plain cases");
        Assert.True(mismatches.Count == 0, $"RenderChat differs for: {string.Join(", ", mismatches.Take(25))}");
    }

    private static bool IsPlain(JsonElement conversation) =>
        !conversation.TryGetProperty("tools", out _)
        && conversation.GetProperty("messages").EnumerateArray().All(m => m.EnumerateObject().All(p =>
            p.Name is "role" or "content" or "reasoning_content" && p.Value.ValueKind == JsonValueKind.String));
}
