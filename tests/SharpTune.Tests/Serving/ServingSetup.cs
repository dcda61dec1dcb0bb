using System.ClientModel;
using Microsoft.AspNetCore.Builder;
using OpenAI;
using OpenAI.Chat;
using SharpTune.Demo;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Server;
using SharpTune.Serving;
using TorchSharp;
using static TorchSharp.torch;
using ChatMessage = SharpTune.Tokenization.ChatMessage;

namespace SharpTune.Tests.Serving;

/// <summary>The tiny model (float64 on the CPU, so that batching cannot flip a greedy choice through rounding),
/// two LoRA adapters with random weights, and a running server on a free loopback port.</summary>
sealed class ServingSetup : IDisposable
{
    /// <summary>A chat template without reasoning (the answer is all content).</summary>
    const string PlainTemplate = "{% for m in messages %}{% if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
        + "{% elif m['role'] == 'assistant' %}{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}{% else %}{{ m['content'] }}{% endif %}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}";

    public sealed record Files(string Plain, string Reasoning, string AdapterA, string AdapterB);

    static readonly Lazy<Files> Made = new(() =>
    {
        _ = TestPaths.Cpu;
        string root = TestPaths.TempDir();
        var options = new TinyModelOptions(HiddenSize: 64, Layers: 2, IntermediateSize: 128, Seed: 11);
        string plain = Path.Combine(root, "plain"), reasoning = Path.Combine(root, "reasoning");
        TinyModel.Create(plain, options, chatTemplate: PlainTemplate);
        TinyModel.Create(reasoning, options);
        return new Files(plain, reasoning, MakeAdapter(plain, Path.Combine(root, "adapter-a"), 1), MakeAdapter(plain, Path.Combine(root, "adapter-b"), 2));
    });

    public static Files Models => Made.Value;

    static string MakeAdapter(string modelDir, string dir, int seed)
    {
        using var checkpoint = ModelFolder.Open(modelDir);
        using var model = checkpoint.LoadModel(TestPaths.Cpu, float32);
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8), seed);
        using (no_grad())
        using (var gen = new Generator((ulong)seed))
            adapter.Values.copy_(randn(adapter.Values.shape, generator: gen) * 0.5);
        adapter.Save(dir);
        return dir;
    }

    public PretrainedModel Model { get; }
    public ServedModel Served { get; }
    public WebApplication App { get; }
    public Uri BaseUri { get; }
    public string? ApiKey { get; }
    public BatchEngine Engine => Served.Engine;

    public ServingSetup(bool reasoning = false, EngineOptions? engine = null, string? apiKey = null, long maxBodyBytes = 1 << 20)
    {
        var files = Models;
        Model = PretrainedModel.Load(reasoning ? files.Reasoning : files.Plain, "cpu", "float64");
        Served = new ServedModel(Model, [new NamedAdapter("a", files.AdapterA), new NamedAdapter("b", files.AdapterB)],
            new ServeOptions(engine ?? new EngineOptions(KvTokens: 4096), ModelName: "tiny"));
        ApiKey = apiKey;
        App = OpenAiServer.Create(Served, new ServerOptions("127.0.0.1", 0, apiKey, maxBodyBytes));
        App.StartAsync().GetAwaiter().GetResult();
        BaseUri = new Uri(App.Urls.Single());
    }

    public ChatClient Client(string model = "tiny", string? key = null) =>
        new(model, new ApiKeyCredential(key ?? ApiKey ?? "unused"), new OpenAIClientOptions { Endpoint = new Uri(BaseUri, "/v1") });

    public HttpClient Http() => new() { BaseAddress = BaseUri };

    /// <summary>Greedy generation alone, by the library's TextGenerator on its own copy of the model
    /// (reasoning split as the server does), for <paramref name="adapter"/> "a", "b" or null (base).</summary>
    public (string Reasoning, string Content, int Tokens, string Finish) Reference(string user, int maxTokens, string? adapter = null, IReadOnlyList<string>? stops = null)
    {
        var files = Models;
        string dir = Model.Directory;
        using var m = PretrainedModel.Load(dir, "cpu", "float64", adapter switch { "a" => files.AdapterA, "b" => files.AdapterB, _ => null });
        string rendered = m.RenderChat([new ChatMessage("user", user)]);
        var ids = m.Tokenizer.Encode(rendered, addSpecialTokens: false);
        var result = new TextGenerator(m.CausalLM, m.Tokenizer).Generate([ids],
            new GenerationOptions(maxTokens, new SamplingOptions(), m.EosTokenIds, stops, SkipSpecialTokens: false))[0];
        var (reasoning, content) = Split(rendered, result.Text);
        return (reasoning, content, result.OutputIds.Length, result.FinishReason == FinishReason.Length ? "length" : "stop");
    }

    /// <summary>Generated text split into reasoning and answer, as the server does.</summary>
    public static (string Reasoning, string Content) Split(string renderedPrompt, string text)
    {
        var splitter = new ReasoningSplitter(ReasoningSplitter.PromptOpensReasoning(renderedPrompt));
        var segments = splitter.Push(text).ToList();
        if (splitter.Flush() is { } rest) segments.Add(rest);
        return (string.Concat(segments.Where(s => s.IsReasoning).Select(s => s.Text)), string.Concat(segments.Where(s => !s.IsReasoning).Select(s => s.Text)));
    }

    public void Dispose()
    {
        App.StopAsync().GetAwaiter().GetResult();
        ((IDisposable)App).Dispose();
        Served.Dispose();
        Model.Dispose();
    }
}

/// <summary>Holds the engine inside a decode step, for tests that need a state to last (a full queue, a
/// cancellation mid-answer) without depending on timing.</summary>
sealed class EngineGate : IDisposable
{
    readonly BatchEngine _engine;
    readonly Func<IReadOnlyList<ActiveSequence>, bool> _when;
    readonly ManualResetEventSlim _release = new(false);
    readonly TaskCompletionSource<IReadOnlyList<ActiveSequence>> _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    int _fired;

    /// <summary>The first step after which <paramref name="when"/> holds blocks the engine until <see cref="Release"/>.</summary>
    public EngineGate(BatchEngine engine, Func<IReadOnlyList<ActiveSequence>, bool> when)
    {
        _engine = engine; _when = when;
        engine.Stepped += OnStep;
    }

    /// <summary>The sequences in the batch when the engine stopped.</summary>
    public Task<IReadOnlyList<ActiveSequence>> Held => _held.Task;

    void OnStep(IReadOnlyList<ActiveSequence> active)
    {
        if (_fired == 1 || !_when(active)) return;
        _fired = 1;
        _held.SetResult(active);
        _release.Wait(TimeSpan.FromMinutes(2));   // a guard against a hung test, not a timing assumption
    }

    public void Release() => _release.Set();

    public void Dispose()
    {
        _release.Set();
        _engine.Stepped -= OnStep;
    }
}
