using SharpTune.Tokenization;

namespace SharpTune.Data;

/// <summary>
/// A training example before prompt formatting: either a question with its answer (and optional context and
/// reasoning), or a conversation (<see cref="Messages"/> set).
/// </summary>
/// <param name="Location">Where the example came from (file and row), for messages.</param>
public sealed record Example(string Location)
{
    /// <summary>The request: medical-o1's Question, Alpaca's instruction.</summary>
    public string Question { get; init; } = "";

    /// <summary>Extra input for the question (Alpaca's input); empty when there is none.</summary>
    public string Context { get; init; } = "";

    /// <summary>The chain of thought (medical-o1's Complex_CoT); empty when there is none.</summary>
    public string Reasoning { get; init; } = "";

    /// <summary>The final answer: medical-o1's Response, Alpaca's output.</summary>
    public string Answer { get; init; } = "";

    /// <summary>An optional system message for the question (from a <c>system</c> column).</summary>
    public string System { get; init; } = "";

    /// <summary>The conversation, for chat datasets; null for question/answer examples.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    public bool IsChat => Messages is not null;

    /// <summary>The example as a conversation: a chat example as it is; a question as system (if any), user
    /// (question, then context) and assistant (reasoning in &lt;think&gt; tags when there is one, then the answer).</summary>
    public IReadOnlyList<ChatMessage> AsMessages()
    {
        if (Messages is not null)
            return Messages;
        var messages = new List<ChatMessage>();
        if (System.Length > 0)
            messages.Add(new ChatMessage("system", System));
        messages.Add(new ChatMessage("user", Context.Length > 0 ? $"{Question}\n\n{Context}" : Question));
        messages.Add(new ChatMessage("assistant", Reasoning.Length > 0 ? $"<think>\n{Reasoning}\n</think>\n{Answer}" : Answer));
        return messages;
    }

    /// <summary>The example as a single question: a question example as it is; a conversation of one user turn
    /// and one assistant turn (after an optional system message) split into question and answer, with a leading
    /// &lt;think&gt;…&lt;/think&gt; block of the answer taken as the reasoning.</summary>
    public Example AsQuestion()
    {
        if (Messages is null)
            return this;
        var turns = Messages.Where(m => m.Role != "system").ToList();
        if (turns.Count != 2 || turns[0].Role != "user" || turns[1].Role != "assistant")
        {
            throw new BadRowException(
                $"{Location}: this prompt format takes one user message and one assistant reply, the conversation has " +
                $"{ErrorText.List(Messages.Select(m => m.Role))} (use the chat-template format for conversations)");
        }
        var (reasoning, answer) = SplitThink(turns[1].Content);
        return new Example(Location)
        {
            System = string.Join("\n\n", Messages.Where(m => m.Role == "system").Select(m => m.Content)),
            Question = turns[0].Content,
            Reasoning = reasoning,
            Answer = answer,
        };
    }

    private static (string Reasoning, string Answer) SplitThink(string content)
    {
        string text = content.TrimStart();
        if (!text.StartsWith("<think>", StringComparison.Ordinal))
            return ("", content);
        int close = text.IndexOf("</think>", StringComparison.Ordinal);
        if (close < 0)
            return ("", content);
        return (text["<think>".Length..close].Trim('\n'), text[(close + "</think>".Length)..].TrimStart('\n'));
    }
}
