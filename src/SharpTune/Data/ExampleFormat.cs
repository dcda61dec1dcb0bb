using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// How the columns of a dataset make an <see cref="Example"/>: which column holds the question, the context,
/// the reasoning, the answer, or the conversation. The built-in formats are a table of column names; a
/// column mapping (<c>question=Question</c>) changes single entries.
/// </summary>
public sealed record ExampleFormat(string Name)
{
    public string? QuestionColumn { get; init; }
    public string? ContextColumn { get; init; }
    public string? ReasoningColumn { get; init; }
    public string? AnswerColumn { get; init; }
    public string? SystemColumn { get; init; }

    /// <summary>A list of {role, content} objects (or ShareGPT's {from, value}).</summary>
    public string? MessagesColumn { get; init; }

    /// <summary>medical-o1-reasoning-SFT: Question, Complex_CoT, Response.</summary>
    public static ExampleFormat MedicalO1 { get; } = new("medical-o1")
    {
        QuestionColumn = "Question", ReasoningColumn = "Complex_CoT", AnswerColumn = "Response",
    };

    /// <summary>Alpaca: instruction, input (optional), output.</summary>
    public static ExampleFormat Alpaca { get; } = new("alpaca")
    {
        QuestionColumn = "instruction", ContextColumn = "input", AnswerColumn = "output",
    };

    /// <summary>Chat: a <c>messages</c> column with the conversation.</summary>
    public static ExampleFormat Chat { get; } = new("chat") { MessagesColumn = "messages" };

    /// <summary>ShareGPT-style chat: a <c>conversations</c> column of {from, value}.</summary>
    public static ExampleFormat Conversations { get; } = new("conversations") { MessagesColumn = "conversations" };

    /// <summary>Prompt/completion pairs: prompt, completion.</summary>
    public static ExampleFormat PromptCompletion { get; } = new("prompt-completion")
    {
        QuestionColumn = "prompt", AnswerColumn = "completion",
    };

    /// <summary>Question/answer pairs: question, answer.</summary>
    public static ExampleFormat QuestionAnswer { get; } = new("question-answer")
    {
        QuestionColumn = "question", AnswerColumn = "answer",
    };

    /// <summary>The built-in formats, in the order auto-detection tries them.</summary>
    public static IReadOnlyList<ExampleFormat> BuiltIn { get; } =
        [MedicalO1, Alpaca, Chat, Conversations, PromptCompletion, QuestionAnswer];

    public static IReadOnlyList<string> Names { get; } = BuiltIn.Select(f => f.Name).ToList();

    /// <summary>The field names a column mapping may use.</summary>
    public static IReadOnlyList<string> Fields { get; } = ["question", "context", "reasoning", "answer", "system", "messages"];

    public static ExampleFormat Get(string name) =>
        BuiltIn.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new SharpTuneException($"unknown example format '{ErrorText.OneLine(name)}'; known formats: {string.Join(", ", Names)}");

    /// <summary>The format for a dataset: the named one (or the one whose columns the row has, when
    /// <paramref name="name"/> is null or "auto"), with the column mapping applied.</summary>
    public static ExampleFormat Resolve(string? name, IReadOnlyDictionary<string, string>? columns, DatasetRow firstRow)
    {
        ExampleFormat format;
        if (name is not null && !name.Equals("auto", StringComparison.OrdinalIgnoreCase))
            format = Get(name);
        else
            format = Detect(firstRow, columns) ?? new ExampleFormat("custom");
        format = format.WithColumns(columns);
        if (format.MessagesColumn is null && (format.QuestionColumn is null || format.AnswerColumn is null))
        {
            throw new SharpTuneException(
                $"{firstRow.Location}: cannot tell the dataset's format from its columns ({firstRow.ColumnList}); " +
                $"name a format ({string.Join(", ", Names)}) or map columns, e.g. question=COLUMN,answer=COLUMN");
        }
        return format;
    }

    /// <summary>The first built-in format whose required columns the row has (after the mapping).</summary>
    public static ExampleFormat? Detect(DatasetRow row, IReadOnlyDictionary<string, string>? columns = null) =>
        BuiltIn.FirstOrDefault(f => f.WithColumns(columns).RequiredColumns().All(row.HasColumn));

    /// <summary>This format with some columns replaced: field → column, fields as in <see cref="Fields"/>.</summary>
    public ExampleFormat WithColumns(IReadOnlyDictionary<string, string>? columns)
    {
        if (columns is null || columns.Count == 0)
            return this;
        var format = this;
        foreach (var (field, column) in columns)
        {
            format = field.ToLowerInvariant() switch
            {
                "question" or "instruction" or "prompt" => format with { QuestionColumn = column },
                "context" or "input" => format with { ContextColumn = column },
                "reasoning" or "cot" => format with { ReasoningColumn = column },
                "answer" or "response" or "output" or "completion" => format with { AnswerColumn = column },
                "system" => format with { SystemColumn = column },
                "messages" or "conversations" => format with { MessagesColumn = column },
                _ => throw new SharpTuneException(
                    $"column mapping '{field}={column}': unknown field '{field}'; fields are {string.Join(", ", Fields)}"),
            };
        }
        return format;
    }

    /// <summary>Parses a column mapping written as <c>question=Question,answer=Response</c>.</summary>
    public static IReadOnlyDictionary<string, string> ParseColumnMap(string text)
    {
        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0 || eq == pair.Length - 1)
                throw new SharpTuneException($"column mapping '{pair}': expected field=column, e.g. question=Question");
            map[pair[..eq].Trim()] = pair[(eq + 1)..].Trim();
        }
        return map;
    }

    /// <summary>The example of a row. Missing columns, empty question or answer, and malformed conversations
    /// are bad rows; the optional context, reasoning and system columns may be missing or empty.</summary>
    public Example ToExample(DatasetRow row)
    {
        if (MessagesColumn is not null)
            return new Example(row.Location) { Messages = ReadMessages(row, MessagesColumn) };
        return new Example(row.Location)
        {
            Question = RequiredText(row, QuestionColumn!),
            Answer = RequiredText(row, AnswerColumn!),
            Context = OptionalText(row, ContextColumn),
            Reasoning = OptionalText(row, ReasoningColumn),
            System = OptionalText(row, SystemColumn),
        };
    }

    private IEnumerable<string> RequiredColumns() =>
        MessagesColumn is not null ? [MessagesColumn] : new[] { QuestionColumn, AnswerColumn }.OfType<string>();

    private string RequiredText(DatasetRow row, string column)
    {
        if (!row.TryGetValue(column, out object? value))
            throw new BadRowException($"{row.Location}: missing column '{column}' (format {Name}; columns: {row.ColumnList})");
        string text = Text(row, column, value);
        if (text.Trim().Length == 0)
            throw new BadRowException($"{row.Location}: column '{column}' is empty");
        return text;
    }

    private static string OptionalText(DatasetRow row, string? column) =>
        column is not null && row.TryGetValue(column, out object? value) ? Text(row, column, value) : "";

    private static string Text(DatasetRow row, string column, object? value) =>
        RowValues.TryGetText(value, out string? text)
            ? text ?? ""
            : throw new BadRowException($"{row.Location}: column '{column}' holds {Describe(value)}, expected text");

    private static IReadOnlyList<ChatMessage> ReadMessages(DatasetRow row, string column)
    {
        if (!row.TryGetValue(column, out object? value))
            throw new BadRowException($"{row.Location}: missing column '{column}' (columns: {row.ColumnList})");
        if (value is not IReadOnlyList<object?> items)
            throw new BadRowException($"{row.Location}: column '{column}' holds {Describe(value)}, expected a list of messages");

        var messages = new List<ChatMessage>();
        for (int i = 0; i < items.Count; i++)
        {
            string where = $"{row.Location}: {column}[{i}]";
            if (items[i] is not IReadOnlyDictionary<string, object?> item)
                throw new BadRowException($"{where} is {Describe(items[i])}, expected an object with role and content");
            object? role = item.GetValueOrDefault("role") ?? item.GetValueOrDefault("from");
            object? content = item.TryGetValue("content", out var c) ? c : item.GetValueOrDefault("value");
            if (role is not string roleName || roleName.Length == 0)
                throw new BadRowException($"{where} has no role (keys: {ErrorText.List(item.Keys)})");
            messages.Add(new ChatMessage(NormalizeRole(roleName, where), ContentText(content, where)));
        }
        if (!messages.Any(m => m.Role == "assistant" && m.Content.Trim().Length > 0))
            throw new BadRowException($"{row.Location}: column '{column}' has no non-empty assistant message");
        return messages;
    }

    private static string NormalizeRole(string role, string where) => role.ToLowerInvariant() switch
    {
        "system" => "system",
        "user" or "human" => "user",
        "assistant" or "gpt" or "model" => "assistant",
        "tool" or "function" => "tool",
        _ => throw new BadRowException($"{where} has role '{ErrorText.OneLine(role)}', expected system, user or assistant"),
    };

    /// <summary>Message content as text: a string, or a list of parts whose text parts are joined.</summary>
    private static string ContentText(object? content, string where) => content switch
    {
        null => "",
        string s => s,
        IReadOnlyList<object?> parts => string.Concat(parts.Select(p => p switch
        {
            string s => s,
            IReadOnlyDictionary<string, object?> part when part.GetValueOrDefault("text") is string t => t,
            _ => throw new BadRowException($"{where} has a content part that is not text"),
        })),
        _ => throw new BadRowException($"{where}: content is {Describe(content)}, expected text"),
    };

    private static string Describe(object? value) => value switch
    {
        null => "null",
        string => "text",
        IReadOnlyDictionary<string, object?> => "an object",
        IReadOnlyList<object?> => "a list",
        _ => $"a {value.GetType().Name.ToLowerInvariant()}",
    };
}
