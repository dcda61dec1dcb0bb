using System.Reflection;
using System.Text.Json.Serialization;
using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>A piece of an example's text; the loss is taken on the tokens of trained pieces.</summary>
public sealed record TextSegment(string Text, bool Trained);

/// <summary>An example as text: untrained prompt pieces and trained response pieces, in order.</summary>
public sealed record FormattedExample(string Location, IReadOnlyList<TextSegment> Segments)
{
    public string Text => string.Concat(Segments.Select(s => s.Text));
}

/// <summary>Renders a conversation with a model's chat template (the caller supplies it, e.g. from the
/// tokenizer's Jinja template). <c>addGenerationPrompt</c> appends the text that opens the assistant's turn.</summary>
public delegate string ChatTemplateRenderer(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

[JsonConverter(typeof(JsonStringEnumConverter<PromptStyle>))]
public enum PromptStyle
{
    /// <summary>Preamble, instruction, "### Question:", "### Response:", then &lt;think&gt;reasoning&lt;/think&gt; and the answer.</summary>
    [JsonStringEnumMemberName("r1-reasoning")] R1Reasoning,
    /// <summary>Preamble, "### Instruction:", optional "### Input:", "### Response:", then the answer.</summary>
    [JsonStringEnumMemberName("alpaca")] Alpaca,
    /// <summary>The model's own chat template through a <see cref="ChatTemplateRenderer"/>.</summary>
    [JsonStringEnumMemberName("chat-template")] ChatTemplate,
}

/// <summary>The names of <see cref="PromptStyle"/>s in recipes, flags and JSON.</summary>
public static class PromptStyles
{
    public static IReadOnlyList<string> Names { get; } = Enum.GetValues<PromptStyle>().Select(NameOf).ToList();

    /// <summary>The name of a style as recipes, flags and JSON write it: r1-reasoning, alpaca, chat-template.</summary>
    public static string NameOf(PromptStyle style) =>
        typeof(PromptStyle).GetField(style.ToString())!.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()!.Name;

    /// <summary>The style of a name (r1-reasoning, alpaca, chat-template; any case).</summary>
    public static PromptStyle Parse(string name) =>
        TryParse(name) ?? throw new SharpTuneException($"unknown prompt format '{name}'; known formats: {string.Join(", ", Names)}");

    public static PromptStyle? TryParse(string name)
    {
        foreach (var style in Enum.GetValues<PromptStyle>())
        {
            if (string.Equals(NameOf(style), name, StringComparison.OrdinalIgnoreCase))
                return style;
        }
        return null;
    }
}

/// <summary>
/// How an <see cref="Example"/> becomes prompt and response text. The named formats are <c>r1-reasoning</c>
/// (the layout of the well-known DeepSeek-R1 distill medical fine-tunes), <c>alpaca</c> and <c>chat-template</c>.
/// The texts are settings with defaults written for this project.
/// </summary>
public sealed record PromptFormat(string Name, PromptStyle Style)
{
    public const string DefaultPreamble =
        "The task below comes with a question that gives its details. Write a reply that completes the task. " +
        "Work through the problem step by step before answering, so that the reasoning is sound and the answer is accurate.";

    public const string DefaultInstruction =
        "You are a medical expert skilled in clinical reasoning, diagnosis and treatment planning. " +
        "Answer the medical question below.";

    public const string DefaultAlpacaPreamble =
        "The instruction below describes a task, sometimes with an input that gives more context. " +
        "Write a reply that completes the task.";

    /// <summary>The opening paragraph of r1-reasoning and alpaca prompts.</summary>
    public string Preamble { get; init; } = Style == PromptStyle.Alpaca ? DefaultAlpacaPreamble : DefaultPreamble;

    /// <summary>The "### Instruction:" text of r1-reasoning prompts (the example's question goes under "### Question:").</summary>
    public string Instruction { get; init; } = DefaultInstruction;

    /// <summary>The renderer for chat-template; required for that style.</summary>
    public ChatTemplateRenderer? ChatTemplate { get; init; }

    /// <summary>Identifies the chat template in token cache keys (e.g. a hash of its text), since a renderer
    /// delegate cannot be hashed.</summary>
    public string TemplateIdentity { get; init; } = "";

    /// <summary>Everything that decides the text of a formatted example, for cache keys.</summary>
    public string Fingerprint => string.Join("\n", Name, Style, Preamble, Instruction, TemplateIdentity);

    public static PromptFormat R1Reasoning { get; } = new("r1-reasoning", PromptStyle.R1Reasoning);
    public static PromptFormat Alpaca { get; } = new("alpaca", PromptStyle.Alpaca);

    /// <summary>The named format; chat-template needs <paramref name="chatTemplate"/>.</summary>
    public static PromptFormat Get(string name, ChatTemplateRenderer? chatTemplate = null) => Get(PromptStyles.Parse(name), chatTemplate);

    /// <summary>The format of a style; chat-template needs <paramref name="chatTemplate"/>.</summary>
    public static PromptFormat Get(PromptStyle style, ChatTemplateRenderer? chatTemplate = null) => style switch
    {
        PromptStyle.R1Reasoning => R1Reasoning,
        PromptStyle.Alpaca => Alpaca,
        _ => ForChatTemplate(chatTemplate
            ?? throw new SharpTuneException("the chat-template prompt format needs the model's chat template (a ChatTemplateRenderer)")),
    };

    public static PromptFormat ForChatTemplate(ChatTemplateRenderer render, string templateIdentity = "") =>
        new("chat-template", PromptStyle.ChatTemplate) { ChatTemplate = render, TemplateIdentity = templateIdentity };

    /// <summary>The example as untrained prompt text and trained response text (for conversations, one pair per
    /// assistant turn). No BOS or EOS: the tokenizer step adds them.</summary>
    public FormattedExample Format(Example example) => Style switch
    {
        PromptStyle.ChatTemplate => FormatChat(example),
        _ => FormatQuestion(example.AsQuestion()),
    };

    /// <summary>The prompt text that a model trained with this format expects at inference, for a question
    /// (the text before the response; the model continues from it).</summary>
    public string Prompt(string question, string context = "") => Style switch
    {
        PromptStyle.ChatTemplate => Render([new ChatMessage("user", context.Length > 0 ? $"{question}\n\n{context}" : question)], true),
        _ => PromptText(new Example("prompt") { Question = question, Context = context }),
    };

    private FormattedExample FormatQuestion(Example e) =>
        new(e.Location, [new TextSegment(PromptText(e), false), new TextSegment(ResponseText(e), true)]);

    private string PromptText(Example e)
    {
        if (Style == PromptStyle.R1Reasoning)
        {
            string question = e.Context.Length > 0 ? $"{e.Question}\n\n{e.Context}" : e.Question;
            string instruction = e.System.Length > 0 ? e.System : Instruction;
            return $"{Preamble}\n\n### Instruction:\n{instruction}\n\n### Question:\n{question}\n\n### Response:\n";
        }
        string input = e.Context.Length > 0 ? $"### Input:\n{e.Context}\n\n" : "";
        return $"{Preamble}\n\n### Instruction:\n{e.Question}\n\n{input}### Response:\n";
    }

    private string ResponseText(Example e)
    {
        if (Style == PromptStyle.R1Reasoning)
            return $"<think>\n{e.Reasoning}\n</think>\n{e.Answer}";
        return e.Reasoning.Length > 0 ? $"<think>\n{e.Reasoning}\n</think>\n{e.Answer}" : e.Answer;
    }

    /// <summary>Renders the conversation turn by turn: the text the template adds to open each assistant turn is
    /// prompt, the assistant's own text is trained. Needs a template under which each rendering extends the
    /// previous one; a template that rewrites earlier turns (e.g. drops their reasoning) gets an error naming the turn.</summary>
    private FormattedExample FormatChat(Example example)
    {
        var messages = example.AsMessages();
        var segments = new List<TextSegment>();
        string done = "";
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant")
                continue;
            var before = messages.Take(i).ToList();
            string prompt = Render(before, true);
            string full = Render([.. before, messages[i]], false);
            if (!prompt.StartsWith(done, StringComparison.Ordinal) || !full.StartsWith(prompt, StringComparison.Ordinal))
            {
                throw new BadRowException(
                    $"{example.Location}: the chat template does not render this conversation as growing text at message {i} " +
                    "(it changes earlier turns), so prompt and response cannot be told apart");
            }
            segments.Add(new TextSegment(prompt[done.Length..], false));
            segments.Add(new TextSegment(full[prompt.Length..], true));
            done = full;
        }
        if (segments.Count == 0)
            throw new BadRowException($"{example.Location}: the conversation has no assistant message");
        return new FormattedExample(example.Location, segments);
    }

    private string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        (ChatTemplate ?? throw new SharpTuneException($"prompt format '{Name}' has no chat template renderer"))(messages, addGenerationPrompt);
}
