using SharpTune.Generation;
using SharpTune.Tokenization;

namespace SharpTune.Serving;

/// <summary>One request, whatever protocol brought it: a conversation (rendered with the chat template, reasoning
/// split from the answer) or a raw prompt. Unset sampling settings follow the model's generation_config.json.</summary>
public sealed record CompletionRequest
{
    /// <summary>The base model's name or an adapter's; null: the base model.</summary>
    public string? Model { get; init; }
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public string? Prompt { get; init; }
    /// <summary>Null: up to the default, within the context.</summary>
    public int? MaxTokens { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public double MinP { get; init; }
    public double RepetitionPenalty { get; init; } = 1;
    /// <summary>Choice i samples with seed + i.</summary>
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public int N { get; init; } = 1;
    public bool Logprobs { get; init; }
    /// <summary>Keep generating past EOS, to max_tokens (load tests).</summary>
    public bool IgnoreEos { get; init; }
}

/// <summary>A request the server refuses, with the HTTP status and OpenAI's error code.</summary>
public sealed class ServingException(int status, string code, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public string? Param { get; } = param;

    public static ServingException BadRequest(string message, string? param = null) => new(400, "invalid_request_error", message, param);
}

/// <summary>A request's result, all choices collected.</summary>
public sealed record CompletionResult(string Model, int PromptTokens, IReadOnlyList<ChoiceResult> Choices)
{
    public int CompletionTokens => Choices.Sum(c => c.Tokens);
}

public sealed record ChoiceResult(int Index, string Content, string Reasoning, FinishReason FinishReason, int Tokens, IReadOnlyList<TokenLogprob>? Logprobs);
