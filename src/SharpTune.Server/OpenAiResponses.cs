using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Generation;
using SharpTune.Serving;

namespace SharpTune.Server;

/// <summary>OpenAI's response bodies for one job: a whole completion, or its stream of chunks.</summary>
sealed class OpenAiResponses(bool chat, CompletionJob job, ResponseShape shape)
{
    readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
    readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    int _completionTokens;

    string Object => chat ? "chat.completion" : "text_completion";

    public JsonObject Complete(CompletionResult result) => new()
    {
        ["id"] = _id,
        ["object"] = Object,
        ["created"] = _created,
        ["model"] = result.Model,
        ["choices"] = new JsonArray(result.Choices.Select(c => (JsonNode)(chat
            ? new JsonObject
            {
                ["index"] = c.Index,
                ["message"] = Message(c.Content, c.Reasoning, role: true),
                ["logprobs"] = shape.Logprobs ? ChatLogprobs(c.Logprobs ?? []) : null,
                ["finish_reason"] = Finish(c.FinishReason),
            }
            : new JsonObject
            {
                ["index"] = c.Index,
                ["text"] = c.Content,
                ["logprobs"] = shape.Logprobs ? CompletionLogprobs(c.Logprobs ?? []) : null,
                ["finish_reason"] = Finish(c.FinishReason),
            })).ToArray()),
        ["usage"] = Usage(result.PromptTokens, result.CompletionTokens),
    };

    /// <summary>The first chunk of each chat choice: its role.</summary>
    public JsonObject Opening() => Chunk(new JsonArray(Enumerable.Range(0, job.Choices).Select(i => (JsonNode)new JsonObject
    {
        ["index"] = i,
        ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" },
        ["logprobs"] = null,
        ["finish_reason"] = null,
    }).ToArray()));

    public JsonObject? Chunk(ChoiceUpdate u)
    {
        if (u.FinishReason is not null) _completionTokens += u.GeneratedTokens;
        if (u.Content.Length == 0 && u.Reasoning.Length == 0 && u.FinishReason is null && !(shape.Logprobs && u.Logprob is not null)) return null;
        var lps = shape.Logprobs && u.Logprob is { } lp ? new[] { lp } : [];
        JsonObject choice = chat
            ? new JsonObject
            {
                ["index"] = u.Index,
                ["delta"] = Message(u.Content, u.Reasoning, role: false),
                ["logprobs"] = shape.Logprobs && lps.Length > 0 ? ChatLogprobs(lps) : null,
                ["finish_reason"] = u.FinishReason is { } f ? Finish(f) : null,
            }
            : new JsonObject
            {
                ["index"] = u.Index,
                ["text"] = u.Content,
                ["logprobs"] = shape.Logprobs && lps.Length > 0 ? CompletionLogprobs(lps) : null,
                ["finish_reason"] = u.FinishReason is { } g ? Finish(g) : null,
            };
        return Chunk(new JsonArray(choice));
    }

    public JsonObject UsageChunk()
    {
        var chunk = Chunk([]);
        chunk["usage"] = Usage(job.PromptTokens, _completionTokens);
        return chunk;
    }

    JsonObject Chunk(JsonArray choices)
    {
        var chunk = new JsonObject
        {
            ["id"] = _id,
            ["object"] = chat ? "chat.completion.chunk" : "text_completion",
            ["created"] = _created,
            ["model"] = job.Model,
            ["choices"] = choices,
        };
        if (shape.IncludeUsage) chunk["usage"] = null;
        return chunk;
    }

    /// <summary>OpenAI's finish_reason: "length" when max_tokens ended the answer, "stop" otherwise (EOS or a stop string).</summary>
    static string Finish(FinishReason reason) => reason == FinishReason.Length ? "length" : "stop";

    static JsonObject Message(string content, string reasoning, bool role)
    {
        var m = new JsonObject();
        if (role) m["role"] = "assistant";
        if (role || content.Length > 0) m["content"] = content;
        if (reasoning.Length > 0) m["reasoning_content"] = reasoning;
        return m;
    }

    static JsonObject ChatLogprobs(IReadOnlyList<TokenLogprob> tokens) => new()
    {
        ["content"] = new JsonArray(tokens.Select(t => (JsonNode)new JsonObject
        {
            ["token"] = t.Text,
            ["logprob"] = t.Logprob,
            ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(t.Text).Select(b => (JsonNode)(int)b).ToArray()),
            ["top_logprobs"] = new JsonArray(),
        }).ToArray()),
    };

    static JsonObject CompletionLogprobs(IReadOnlyList<TokenLogprob> tokens) => new()
    {
        ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t.Text).ToArray()),
        ["token_logprobs"] = new JsonArray(tokens.Select(t => (JsonNode)t.Logprob).ToArray()),
        ["top_logprobs"] = null,
        ["text_offset"] = null,
    };

    static JsonObject Usage(int prompt, int completion) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
    };
}
