using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using SharpTune.Generation;
using SharpTune.Models;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = SharpTune.Tokenization.ChatMessage;

namespace SharpTune.Serving;

/// <summary>
/// A loaded model as Microsoft.Extensions.AI's <see cref="IChatClient"/>: calls share the batching engine (so
/// concurrent calls are decoded together), <see cref="ChatOptions.ModelId"/> picks an adapter, and the model's
/// &lt;think&gt; reasoning comes back as <see cref="TextReasoningContent"/> apart from the answer.
/// </summary>
public sealed class SharpTuneChatClient(ServedModel served, bool ownsServedModel = false) : IChatClient
{
    /// <summary>Extra <see cref="ChatOptions.AdditionalProperties"/> keys understood here (vLLM's names).</summary>
    public const string MinPKey = "min_p", RepetitionPenaltyKey = "repetition_penalty";

    public ServedModel Served => served;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var job = Submit(messages, options, cancellationToken);
        var result = await job.CollectAsync(cancellationToken);
        var choice = result.Choices[0];
        var contents = new List<AIContent>();
        if (choice.Reasoning.Length > 0) contents.Add(new TextReasoningContent(choice.Reasoning));
        contents.Add(new TextContent(choice.Content));
        return new ChatResponse(new AIChatMessage(ChatRole.Assistant, contents))
        {
            ModelId = result.Model,
            FinishReason = Finish(choice.FinishReason),
            Usage = new UsageDetails { InputTokenCount = result.PromptTokens, OutputTokenCount = result.CompletionTokens, TotalTokenCount = result.PromptTokens + result.CompletionTokens },
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var job = Submit(messages, options, cancellationToken);
        string id = $"chatcmpl-{Guid.NewGuid():N}";
        await foreach (var u in job.ReadAsync(cancellationToken))
        {
            var contents = new List<AIContent>();
            if (u.Reasoning.Length > 0) contents.Add(new TextReasoningContent(u.Reasoning));
            if (u.Content.Length > 0) contents.Add(new TextContent(u.Content));
            if (u.FinishReason is not null)
                contents.Add(new UsageContent(new UsageDetails { InputTokenCount = job.PromptTokens, OutputTokenCount = u.GeneratedTokens, TotalTokenCount = job.PromptTokens + u.GeneratedTokens }));
            if (contents.Count == 0) continue;
            yield return new ChatResponseUpdate(ChatRole.Assistant, contents)
            {
                ResponseId = id,
                ModelId = job.Model,
                FinishReason = u.FinishReason is { } f ? Finish(f) : null,
            };
        }
    }

    CompletionJob Submit(IEnumerable<AIChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken)
    {
        var history = messages.Select(m => new TemplateMessage(m.Role.Value, m.Text)
        {
            ReasoningContent = m.Contents.OfType<TextReasoningContent>().Select(r => r.Text).DefaultIfEmpty().Aggregate((a, b) => a + b),
        }).ToList();
        var extra = options?.AdditionalProperties;
        return served.Submit(new CompletionRequest
        {
            Model = options?.ModelId,
            Messages = history,
            MaxTokens = options?.MaxOutputTokens,
            Temperature = options?.Temperature,
            TopP = options?.TopP,
            TopK = options?.TopK,
            MinP = extra?.TryGetValue(MinPKey, out double minP) == true ? minP : 0,
            RepetitionPenalty = extra?.TryGetValue(RepetitionPenaltyKey, out double penalty) == true ? penalty : 1,
            Seed = options?.Seed,
            Stop = options?.StopSequences?.ToList() ?? [],
        }, cancellationToken);
    }

    static ChatFinishReason Finish(FinishReason reason) => reason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? new ChatClientMetadata("sharptune", null, served.Name)
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(served) ? served
        : null;

    public void Dispose()
    {
        if (ownsServedModel) served.Dispose();
    }
}

public static class ChatClientExtensions
{
    /// <summary>The model as an <see cref="IChatClient"/> with its own batching engine (disposing the client stops
    /// the engine; the model stays yours).</summary>
    public static IChatClient AsChatClient(this PretrainedModel model, ServeOptions? options = null) =>
        new SharpTuneChatClient(new ServedModel(model, null, options), ownsServedModel: true);
}
