using OpenAI.Chat;
#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental by the OpenAI package
using TorchSharp;

namespace SharpTune.Tests.Serving;

[CollectionDefinition(nameof(EngineMemoryTests), DisableParallelization = true)]
public class EngineMemoryCollection;

/// <summary>The engine's tensors stay flat from one batch to the next (live tensors are counted process-wide, so
/// this runs alone).</summary>
[Collection(nameof(EngineMemoryTests))]
public class EngineMemoryTests
{
    [Fact]
    public async Task LiveTensorsStayFlatAcrossBatches()
    {
        using var s = new ServingSetup();
        async Task Batch()
        {
            var requests = new (string Model, string Prompt, ChatCompletionOptions Options)[]
            {
                ("tiny", "Weight 70 kg", new() { MaxOutputTokenCount = 12, Temperature = 0 }),
                ("a", "BMI", new() { MaxOutputTokenCount = 9, Temperature = 0.7f, Seed = 3 }),
                ("b", "Age 40", new() { MaxOutputTokenCount = 14, Temperature = 0.9f }),
                ("a", "Dose 5 mg", new() { MaxOutputTokenCount = 7, Temperature = 0 }),
            };
            await Task.WhenAll(requests.Select(r => s.Client(r.Model).CompleteChatAsync([new UserChatMessage(r.Prompt)], r.Options)));
            while (s.Engine.Running > 0) await Task.Delay(5);   // the last step's scope is closed once the batch is empty
        }
        // Tensors that nobody disposed are counted until a finalizer runs: collect everyone's garbage first; after
        // that, a tensor the engine forgot to dispose shows up in the count (no collection at the end).
        await Batch();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long live = torch.Tensor.TotalCount;
        for (int i = 0; i < 3; i++) await Batch();
        Assert.Equal(live, torch.Tensor.TotalCount);
        Assert.Equal(s.Engine.Options.KvTokens - 1, s.Engine.FreeKvTokens);
    }
}
