using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Serving;
using SharpTune.Tokenization;

namespace SharpTune.Server;

/// <summary>What a request asks about its response, beyond the generation itself.</summary>
sealed record ResponseShape(bool Stream, bool IncludeUsage, bool Logprobs);

/// <summary>Reads OpenAI request bodies into <see cref="CompletionRequest"/>s. Fields the server cannot honour
/// (tools, non-zero penalties, top-k alternatives) are refused rather than ignored; unknown fields are ignored,
/// as OpenAI's own server does.</summary>
static class OpenAiRequests
{
    public static (CompletionRequest Request, ResponseShape Shape) Chat(JsonObject body)
    {
        var messagesNode = body["messages"] as JsonArray ?? throw ServingException.BadRequest("messages is required and must be an array", "messages");
        var messages = new List<ChatMessage>();
        for (int i = 0; i < messagesNode.Count; i++)
        {
            string param = $"messages[{i}]";
            if (messagesNode[i] is not JsonObject m) throw ServingException.BadRequest($"{param} must be an object", param);
            string role = String(m, "role", param + ".role") ?? throw ServingException.BadRequest($"{param}.role is required", param + ".role");
            if (role == "developer") role = "system";
            if (role is not ("system" or "user" or "assistant"))
                throw ServingException.BadRequest($"{param}.role must be system, developer, user or assistant, got '{role}'", param + ".role");
            messages.Add(new ChatMessage(role, Content(m["content"], param + ".content")) { ReasoningContent = String(m, "reasoning_content", param + ".reasoning_content") });
        }
        if (body["tools"] is JsonArray { Count: > 0 }) throw ServingException.BadRequest("tools are not supported by this server", "tools");
        int topLogprobs = Int(body, "top_logprobs") ?? 0;
        if (topLogprobs != 0) throw ServingException.BadRequest("top_logprobs is not supported (only the chosen token's logprob)", "top_logprobs");
        bool logprobs = Bool(body, "logprobs") ?? false;
        var request = Common(body) with
        {
            Messages = messages,
            MaxTokens = Int(body, "max_completion_tokens") ?? Int(body, "max_tokens"),
            Logprobs = logprobs,
        };
        return (request, Shape(body, logprobs));
    }

    public static (CompletionRequest Request, ResponseShape Shape) Completion(JsonObject body)
    {
        string prompt = body["prompt"] switch
        {
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonArray { Count: 1 } a when a[0] is JsonValue v && v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonArray => throw ServingException.BadRequest("prompt must be one string (one prompt per request)", "prompt"),
            null => throw ServingException.BadRequest("prompt is required", "prompt"),
            _ => throw ServingException.BadRequest("prompt must be a string", "prompt"),
        };
        if (body["echo"] is JsonValue e && e.GetValueKind() == JsonValueKind.True) throw ServingException.BadRequest("echo is not supported", "echo");
        if (body["suffix"] is JsonValue s && s.GetValueKind() == JsonValueKind.String) throw ServingException.BadRequest("suffix is not supported", "suffix");
        int? logprobs = Int(body, "logprobs");
        if (logprobs is < 0) throw ServingException.BadRequest("logprobs must be >= 0", "logprobs");
        var request = Common(body) with { Prompt = prompt, MaxTokens = Int(body, "max_tokens") ?? 16, Logprobs = logprobs is not null };
        return (request, Shape(body, logprobs is not null));
    }

    static CompletionRequest Common(JsonObject body)
    {
        foreach (var penalty in new[] { "frequency_penalty", "presence_penalty" })
            if (Number(body, penalty) is { } p && p != 0)
                throw ServingException.BadRequest($"{penalty} is not supported; use repetition_penalty", penalty);
        var stop = body["stop"] switch
        {
            null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.Null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
            JsonArray a when a.All(x => x is JsonValue xv && xv.GetValueKind() == JsonValueKind.String) => a.Select(x => x!.GetValue<string>()).ToList(),
            _ => throw ServingException.BadRequest("stop must be a string or an array of strings", "stop"),
        };
        if (stop.Count > 16) throw ServingException.BadRequest($"at most 16 stop strings, got {stop.Count}", "stop");
        if (stop.Any(x => x.Length == 0)) throw ServingException.BadRequest("stop strings must not be empty", "stop");
        return new CompletionRequest
        {
            Model = String(body, "model", "model"),
            Temperature = Number(body, "temperature"),
            TopP = Number(body, "top_p"),
            TopK = Int(body, "top_k") is { } k && k >= 0 ? k : Int(body, "top_k") is null ? null : 0,   // vLLM: -1 means off
            MinP = Number(body, "min_p") ?? 0,
            RepetitionPenalty = Number(body, "repetition_penalty") ?? 1,
            Seed = Long(body, "seed"),
            Stop = stop,
            N = Int(body, "n") ?? 1,
            IgnoreEos = Bool(body, "ignore_eos") ?? false,
        };
    }

    static ResponseShape Shape(JsonObject body, bool logprobs)
    {
        bool stream = Bool(body, "stream") ?? false;
        bool usage = body["stream_options"] is JsonObject o && (Bool(o, "include_usage") ?? false);
        return new ResponseShape(stream, usage, logprobs);
    }

    /// <summary>A message's content: a string, or an array of text parts (other part types are refused).</summary>
    static string Content(JsonNode? node, string param) => node switch
    {
        null => "",
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => "",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select((p, i) => p is JsonObject o && String(o, "type", $"{param}[{i}].type") == "text"
            ? String(o, "text", $"{param}[{i}].text") ?? ""
            : throw ServingException.BadRequest($"{param}[{i}]: only text parts are supported", $"{param}[{i}]"))),
        _ => throw ServingException.BadRequest($"{param} must be a string or an array of text parts", param),
    };

    static JsonValue? Value(JsonObject o, string key) =>
        o[key] is JsonValue v && v.GetValueKind() != JsonValueKind.Null ? v
        : o[key] is null or JsonValue ? null
        : throw ServingException.BadRequest($"{key} must be a single value", key);

    static string? String(JsonObject o, string key, string param) =>
        Value(o, key) is not { } v ? null
        : v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
        : throw ServingException.BadRequest($"{param} must be a string", param);

    static double? Number(JsonObject o, string key) =>
        Value(o, key) is not { } v ? null
        : v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>()
        : throw ServingException.BadRequest($"{key} must be a number", key);

    static long? Long(JsonObject o, string key) =>
        Number(o, key) is not { } d ? null
        : d == Math.Floor(d) && Math.Abs(d) < 9e15 ? (long)d
        : throw ServingException.BadRequest($"{key} must be an integer", key);

    static int? Int(JsonObject o, string key) =>
        Long(o, key) is not { } n ? null
        : n is >= int.MinValue and <= int.MaxValue ? (int)n
        : throw ServingException.BadRequest($"{key} is out of range", key);

    static bool? Bool(JsonObject o, string key) =>
        Value(o, key) is not { } v ? null
        : v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>()
        : throw ServingException.BadRequest($"{key} must be true or false", key);
}
