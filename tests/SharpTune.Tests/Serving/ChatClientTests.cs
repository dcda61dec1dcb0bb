using System.Text;
using Microsoft.Extensions.AI;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Serving;

namespace SharpTune.Tests.Serving;

/// <summary>The library's IChatClient (no HTTP): answers, reasoning, options, adapters and cancellation.</summary>
public class ChatClientTests
{
    [Fact]
    public async Task ReasoningAndAnswerComeApartStreamingOrNot()
    {
        using var s = new ServingSetup(reasoning: true);
        var expected = s.Reference("Weight 70 kg", 24);
        using IChatClient chat = new SharpTuneChatClient(s.Served);
        var options = new ChatOptions { MaxOutputTokens = 24, Temperature = 0 };

        var response = await chat.GetResponseAsync("Weight 70 kg", options);
        Assert.Equal(expected.Reasoning, string.Concat(response.Messages[0].Contents.OfType<TextReasoningContent>().Select(r => r.Text)));
        Assert.Equal(expected.Content, response.Text);
        Assert.Equal(expected.Tokens, (int)response.Usage!.OutputTokenCount!);

        var reasoning = new StringBuilder();
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.GetStreamingResponseAsync("Weight 70 kg", options))
        {
            foreach (var r in update.Contents.OfType<TextReasoningContent>()) reasoning.Append(r.Text);
            text.Append(update.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(expected.Reasoning, reasoning.ToString());
        Assert.Equal(expected.Content, text.ToString());
        Assert.Equal(expected.Finish == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop, finish);
    }

    [Fact]
    public async Task ModelIdPicksTheAdapterAndStopSequencesCut()
    {
        using var s = new ServingSetup();
        using IChatClient chat = new SharpTuneChatClient(s.Served);
        var expected = s.Reference("BMI", 20, "b");
        var response = await chat.GetResponseAsync("BMI", new ChatOptions { ModelId = "b", MaxOutputTokens = 20, Temperature = 0 });
        Assert.Equal(expected.Content, response.Text);
        Assert.Equal("b", response.ModelId);

        string stop = expected.Content.Substring(5, 2);
        var cut = await chat.GetResponseAsync("BMI", new ChatOptions { ModelId = "b", MaxOutputTokens = 20, Temperature = 0, StopSequences = [stop] });
        Assert.Equal(expected.Content[..expected.Content.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
    }

    [Fact]
    public async Task CancellingTheCallTakesItsSequenceOutOfTheBatch()
    {
        using var s = new ServingSetup();
        using IChatClient chat = new SharpTuneChatClient(s.Served);
        var finished = new TaskCompletionSource<FinishedSequence>(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Engine.SequenceFinished += f => finished.TrySetResult(f);
        using var gate = new EngineGate(s.Engine, active => active.Any(a => a.Generated == 3));
        using var cts = new CancellationTokenSource();
        var call = chat.GetResponseAsync("Weight 70 kg", new ChatOptions { MaxOutputTokens = 1000, Temperature = 0 }, cts.Token);
        await gate.Held;
        cts.Cancel();
        gate.Release();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        var f = await finished.Task.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal((FinishReason.Cancelled, 3), (f.Reason, f.GeneratedTokens));
    }

    [Fact]
    public async Task ReadmeChatClientExampleRuns()
    {
        string path = ServingSetup.Models.Reasoning, adapter = ServingSetup.Models.AdapterA;
        // --- as in README.md (a fine-tuned model as an IChatClient), with the paths and device changed
        using var model = PretrainedModel.Load(path, device: "cpu", adapterDir: adapter);
        using IChatClient chat = model.AsChatClient();
        Console.WriteLine(await chat.GetResponseAsync("What is 17 × 23?"));
        // ---
        var again = await chat.GetResponseAsync("What is 17 × 23?", new ChatOptions { MaxOutputTokens = 16 });
        // the model's defaults (greedy for the tiny model) and the library's TextGenerator agree
        string rendered = model.RenderChat([new("user", "What is 17 × 23?")]);
        var alone = new TextGenerator(model.CausalLM, model.Tokenizer).Generate([model.EncodeChat([new("user", "What is 17 × 23?")])],
            new GenerationOptions(16, null, model.EosTokenIds, SkipSpecialTokens: false))[0];
        var (reasoning, content) = ServingSetup.Split(rendered, alone.Text);
        Assert.Equal(reasoning, string.Concat(again.Messages[0].Contents.OfType<TextReasoningContent>().Select(r => r.Text)));
        Assert.Equal(content, again.Text);
    }
}
