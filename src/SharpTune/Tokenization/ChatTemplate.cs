using SharpTune.Jinja;

namespace SharpTune.Tokenization;

/// <summary>One chat turn. <see cref="ReasoningContent"/> is passed to templates that read <c>message.reasoning_content</c>.</summary>
public sealed record ChatMessage(string Role, string Content)
{
    public string? ReasoningContent { get; init; }

    internal Dictionary<string, object?> ToVariables()
    {
        var variables = new Dictionary<string, object?> { ["role"] = Role, ["content"] = Content };
        if (ReasoningContent is not null)
        {
            variables["reasoning_content"] = ReasoningContent;
        }

        return variables;
    }
}

/// <summary>
/// A model's chat template (the <c>chat_template</c> of tokenizer_config.json), rendered byte for byte like
/// transformers' <c>apply_chat_template</c>: jinja2 with trim_blocks, lstrip_blocks, the sandbox's attribute rules,
/// <c>raise_exception</c>, <c>strftime_now</c> and a <c>tojson</c> that keeps non-ASCII text.
/// </summary>
public sealed class ChatTemplate
{
    private readonly JinjaTemplate _template;

    private ChatTemplate(JinjaTemplate template) => _template = template;

    public string Source => _template.Source;

    /// <summary>Parses a template. A syntax error becomes a <see cref="SharpTuneException"/> naming the line and column.</summary>
    public static ChatTemplate Parse(string source)
    {
        try
        {
            return new ChatTemplate(JinjaTemplate.Parse(source));
        }
        catch (JinjaException e)
        {
            throw new SharpTuneException(e.Describe("Chat template"), e);
        }
    }

    /// <summary>
    /// Renders with the given variables: strings, booleans, integers, floats, null, lists, dictionaries with string
    /// keys, <see cref="ChatMessage"/>s, or System.Text.Json nodes and elements. <c>raise_exception('x')</c> in the
    /// template throws a <see cref="SharpTuneException"/> with message "x"; other template errors name the template line.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        try
        {
            return _template.Render(variables.ToDictionary(v => v.Key, v => WithMessagesAsVariables(v.Value), StringComparer.Ordinal));
        }
        catch (JinjaException e)
        {
            throw new SharpTuneException(e.Describe("Chat template"), e);
        }
    }

    /// <summary>ChatMessages (alone or in a list) as the dictionaries templates read.</summary>
    private static object? WithMessagesAsVariables(object? value) => value switch
    {
        ChatMessage message => message.ToVariables(),
        IEnumerable<ChatMessage> messages => messages.Select(m => m.ToVariables()).ToList(),
        _ => value,
    };

    /// <summary>
    /// Renders a conversation the way <c>tokenizer.apply_chat_template(messages, tokenize=False, ...)</c> does:
    /// <c>messages</c>, <c>add_generation_prompt</c>, the special tokens that are set, <c>tools</c> and
    /// <c>documents</c> (None unless given in <paramref name="extra"/>), plus every entry of <paramref name="extra"/>
    /// (for example <c>enable_thinking</c>, <c>tools</c>, <c>date_string</c>).
    /// </summary>
    public string RenderChat(
        IReadOnlyList<ChatMessage> messages,
        bool addGenerationPrompt,
        string? bosToken,
        string? eosToken,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => m.ToVariables()).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (bosToken is not null)
        {
            variables["bos_token"] = bosToken;
        }

        if (eosToken is not null)
        {
            variables["eos_token"] = eosToken;
        }

        foreach (var (name, value) in extra ?? new Dictionary<string, object?>())
        {
            variables[name] = value;
        }

        return Render(variables);
    }
}
