using System.Runtime.CompilerServices;
using System.Threading.Channels;
using SharpTune.Generation;

namespace SharpTune.Serving;

/// <summary>A submitted request: its choices' updates as they come. Cancelling the token given at submission
/// (or the one given to <see cref="ReadAsync"/>) takes its sequences out of the batch.</summary>
public sealed class CompletionJob(string model, int promptTokens, int choices, ChannelReader<ChoiceUpdate> updates, CancellationTokenSource cancel) : IDisposable
{
    public string Model { get; } = model;
    public int PromptTokens { get; } = promptTokens;
    public int Choices { get; } = choices;

    /// <summary>Every update until each choice has finished (its last update carries the finish reason).</summary>
    public async IAsyncEnumerable<ChoiceUpdate> ReadAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        using var link = ct.Register(cancel.Cancel);
        int finished = 0;
        while (finished < Choices)
        {
            var update = await updates.ReadAsync(ct);
            if (update.FinishReason is not null) finished++;
            yield return update;
        }
    }

    public async Task<CompletionResult> CollectAsync(CancellationToken ct = default)
    {
        var content = Enumerable.Range(0, Choices).Select(_ => new System.Text.StringBuilder()).ToArray();
        var reasoning = Enumerable.Range(0, Choices).Select(_ => new System.Text.StringBuilder()).ToArray();
        var logprobs = Enumerable.Range(0, Choices).Select(_ => new List<TokenLogprob>()).ToArray();
        var finish = new FinishReason[Choices];
        var tokens = new int[Choices];
        await foreach (var u in ReadAsync(ct))
        {
            content[u.Index].Append(u.Content);
            reasoning[u.Index].Append(u.Reasoning);
            if (u.Logprob is { } lp) logprobs[u.Index].Add(lp);
            if (u.FinishReason is { } f) { finish[u.Index] = f; tokens[u.Index] = u.GeneratedTokens; }
        }
        return new CompletionResult(Model, PromptTokens, Enumerable.Range(0, Choices).Select(i =>
            new ChoiceResult(i, content[i].ToString(), reasoning[i].ToString(), finish[i], tokens[i], logprobs[i].Count > 0 ? logprobs[i] : null)).ToList());
    }

    public void Dispose()
    {
        cancel.Cancel();
        cancel.Dispose();
    }
}
