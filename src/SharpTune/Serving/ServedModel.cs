using System.Threading.Channels;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Serving;

/// <summary>A LoRA adapter folder served under a model name.</summary>
public sealed record NamedAdapter(string Name, string Directory);

/// <summary>Serving settings.</summary>
/// <param name="ModelName">Name of the base model in requests and /v1/models (default: its folder's name).</param>
/// <param name="MaxModelLength">Most tokens (prompt + answer) of one request; default: the model's context.</param>
/// <param name="DefaultMaxTokens">Answer length when a request sets none (within the context).</param>
public sealed record ServeOptions(EngineOptions? Engine = null, string? ModelName = null, int? MaxModelLength = null, int DefaultMaxTokens = 4096, int MaxChoices = 8);

/// <summary>
/// A model ready for requests: the base model, any number of adapters chosen by name, and the batching engine
/// they share. Requests are checked (model name, context, queue) and turned into sequences for the engine.
/// </summary>
public sealed class ServedModel : IDisposable
{
    readonly PretrainedModel _model;
    readonly bool _ownsModel;
    readonly Dictionary<string, int> _adapterIndex;

    public BatchEngine Engine { get; }
    public ServeOptions Options { get; }
    public string Name { get; }
    /// <summary>The base model's name, then the adapters'.</summary>
    public IReadOnlyList<string> ModelNames { get; }
    /// <summary>Most tokens (prompt + answer) one request may use.</summary>
    public int ContextLength { get; }
    public PretrainedModel Model => _model;

    /// <summary>Serves <paramref name="model"/> (and, when given, adapters loaded onto it; the model must then have none attached).</summary>
    public ServedModel(PretrainedModel model, IReadOnlyList<NamedAdapter>? adapters = null, ServeOptions? options = null, bool ownsModel = false)
    {
        _model = model; _ownsModel = ownsModel;
        Options = options ?? new ServeOptions();
        if (Options.ModelName is { } given && (given.Length == 0 || given.Trim() != given || given.Any(char.IsControl)))
            throw new SharpTuneException($"--served-model-name must be a non-empty name without surrounding spaces, got {SharpTuneException.Quote(given)}");
        int context = model.Config.MaxPositionEmbeddings;
        // a limit of 0 would refuse every request, one over the context would promise positions the model lacks
        if (Options.MaxModelLength is { } limit && (limit < 2 || limit > context))
            throw new SharpTuneException($"--max-model-len must be from 2 to the model's context of {context} tokens (max_position_embeddings in config.json), got {limit}");
        Name = Options.ModelName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(model.Directory)));
        AdapterRouter? router = null;
        _adapterIndex = [];
        if (adapters is { Count: > 0 })
        {
            router = new AdapterRouter(model.CausalLM);
            try
            {
                foreach (var a in adapters)
                {
                    if (a.Name == Name || _adapterIndex.ContainsKey(a.Name))
                        throw new SharpTuneException($"--adapter {a.Name}={a.Directory}: the name {a.Name} is already taken; name adapters NAME=DIR");
                    _adapterIndex[a.Name] = router.Add(a.Name, a.Directory);
                }
            }
            catch { router.Dispose(); throw; }
        }
        ModelNames = [Name, .. _adapterIndex.Keys];
        try { Engine = new BatchEngine(model.CausalLM, model.Tokenizer, router, Options.Engine ?? new EngineOptions()); }
        catch { router?.Dispose(); throw; }
        ContextLength = Math.Min(Options.MaxModelLength ?? model.Config.MaxPositionEmbeddings, Math.Min(model.Config.MaxPositionEmbeddings, Engine.MaxSequenceTokens));
    }

    /// <summary>Loads a model folder and the adapters, and starts the engine.</summary>
    public static ServedModel Load(string modelDir, IReadOnlyList<NamedAdapter>? adapters = null, string device = "auto", string dtype = "auto", ServeOptions? options = null)
    {
        var model = PretrainedModel.Load(modelDir, device, dtype);
        try { return new ServedModel(model, adapters, options, ownsModel: true); }
        catch { model.Dispose(); throw; }
    }

    /// <summary>Checks a request and queues its choices; throws <see cref="ServingException"/> when refused.</summary>
    public CompletionJob Submit(CompletionRequest request, CancellationToken cancellation = default)
    {
        string model = string.IsNullOrEmpty(request.Model) ? Name : request.Model;
        int adapter = -1;
        if (model != Name && !_adapterIndex.TryGetValue(model, out adapter))
            throw new ServingException(404, "model_not_found", $"The model '{model}' does not exist; this server has {string.Join(", ", ModelNames)}", "model");
        if (request.N < 1 || request.N > Options.MaxChoices)
            throw ServingException.BadRequest($"n must be between 1 and {Options.MaxChoices}, got {request.N}", "n");
        if (request.MaxTokens is < 1)
            throw ServingException.BadRequest($"max_tokens must be at least 1, got {request.MaxTokens}", "max_tokens");

        int[] prompt;
        bool? startsInReasoning = null;
        if (request.Messages is { } messages)
        {
            if (messages.Count == 0) throw ServingException.BadRequest("messages must not be empty", "messages");
            if (_model.ChatTemplate is null) throw ServingException.BadRequest($"the model {Name} has no chat template; use /v1/completions", "messages");
            string rendered;
            try { rendered = _model.RenderChat(messages); }
            catch (SharpTuneException e) { throw ServingException.BadRequest($"the chat template failed on these messages: {e.Message}", "messages"); }
            prompt = _model.Tokenizer.Encode(rendered, addSpecialTokens: false);
            startsInReasoning = ReasoningSplitter.PromptOpensReasoning(rendered);
        }
        else
        {
            if (string.IsNullOrEmpty(request.Prompt)) throw ServingException.BadRequest("prompt must not be empty", "prompt");
            prompt = _model.EncodeText(request.Prompt);
        }
        int room = ContextLength - prompt.Length;
        int maxTokens = request.MaxTokens ?? Math.Min(Options.DefaultMaxTokens, room);
        if (maxTokens < 1 || prompt.Length + maxTokens > ContextLength)
            throw new ServingException(400, "context_length_exceeded",
                $"This model's maximum context length is {ContextLength} tokens. However, you requested {prompt.Length + Math.Max(1, maxTokens)} tokens "
                + $"({prompt.Length} in the messages, {Math.Max(1, maxTokens)} in the completion). Please reduce the length of the messages or completion.", request.Messages is null ? "prompt" : "messages");

        var sampling = Sampling(request);
        var eos = request.IgnoreEos ? new HashSet<int>() : _model.EosTokenIds.ToHashSet();
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var channel = Channel.CreateUnbounded<ChoiceUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequences = Enumerable.Range(0, request.N).Select(i => new EngineSequence
        {
            Prompt = prompt,
            ChoiceIndex = i,
            MaxTokens = maxTokens,
            AdapterIndex = adapter,
            Sampling = sampling with { Seed = sampling.Seed + i },
            EosIds = eos,
            Stops = request.Stop,
            Logprobs = request.Logprobs,
            SkipSpecialTokens = request.Messages is null,   // chat keeps <think> tags for the reasoning split
            StartsInReasoning = startsInReasoning,
            Output = channel.Writer,
            Cancellation = cancel.Token,
        }).ToList();
        if (!Engine.TryEnqueue(sequences))
        {
            cancel.Dispose();
            throw new ServingException(429, "rate_limit_exceeded", $"The server is busy ({Engine.Options.MaxQueue} sequences waiting); retry later.");
        }
        return new CompletionJob(model, prompt.Length, request.N, channel.Reader, cancel);
    }

    SamplingOptions Sampling(CompletionRequest r)
    {
        var d = _model.Defaults;
        bool sample = d.DoSample == true;
        var sampling = new SamplingOptions(
            Temperature: r.Temperature ?? (sample ? d.Temperature ?? 1.0 : 0),
            TopK: r.TopK ?? (sample ? d.TopK ?? 0 : 0),
            TopP: r.TopP ?? (sample ? d.TopP ?? 1 : 1),
            MinP: r.MinP,
            RepetitionPenalty: r.RepetitionPenalty,
            Seed: r.Seed);
        if (sampling.Temperature is < 0 or > 2) throw ServingException.BadRequest($"temperature must be in [0, 2], got {sampling.Temperature}", "temperature");
        if (sampling.TopP is <= 0 or > 1) throw ServingException.BadRequest($"top_p must be in (0, 1], got {sampling.TopP}", "top_p");
        if (sampling.TopK < 0) throw ServingException.BadRequest($"top_k must be >= 0, got {sampling.TopK}", "top_k");
        if (sampling.MinP is < 0 or > 1) throw ServingException.BadRequest($"min_p must be in [0, 1], got {sampling.MinP}", "min_p");
        if (sampling.RepetitionPenalty <= 0) throw ServingException.BadRequest($"repetition_penalty must be > 0, got {sampling.RepetitionPenalty}", "repetition_penalty");
        return sampling;
    }

    public void Dispose()
    {
        Engine.Dispose();
        if (_ownsModel) _model.Dispose();
    }
}
