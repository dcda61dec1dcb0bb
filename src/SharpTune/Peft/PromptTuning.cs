using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace SharpTune.Peft;

/// <summary>
/// Prompt tuning (Lester et al. 2021; PEFT's PROMPT_TUNING for causal LMs): N trainable virtual token embeddings
/// [N, H] placed before every sequence's input embeddings; the model is otherwise untouched. Saved as PEFT does:
/// adapter_config.json (peft_type PROMPT_TUNING, num_virtual_tokens, token_dim) and a single tensor
/// "prompt_embeddings" in adapter_model.safetensors.
/// </summary>
public sealed class PromptTuning : IAdapter
{
    const string TensorName = "prompt_embeddings";
    readonly CausalLM _model;
    readonly Tensor _values, _gradients;
    public Parameter Embeddings { get; }
    public int VirtualTokenCount => (int)Embeddings.shape[0];
    public Tensor Values => _values;
    public Tensor Gradients => _gradients;
    public long TrainableParameterCount => Embeddings.numel();
    public bool Training { get; set; }
    public bool Enabled
    {
        get => ReferenceEquals(_model.VirtualTokens, Embeddings);
        set => _model.VirtualTokens = value ? Embeddings : null;
    }

    PromptTuning(CausalLM model, Tensor initial)
    {
        if (model.VirtualTokens is not null) throw new SharpTuneException("the model already has virtual tokens");
        _model = model;
        _values = initial.to(float32, model.Device).reshape(-1).contiguous().DetachFromDisposeScope();
        _gradients = zeros_like(_values).DetachFromDisposeScope();
        Embeddings = new Parameter(_values.view(initial.shape));
        Embeddings.DetachFromDisposeScope();
        Embeddings.grad = _gradients.view(initial.shape);
        model.VirtualTokens = Embeddings;
    }

    /// <summary>Fresh virtual tokens, initialized as PEFT's RANDOM init does (nn.Embedding: N(0, 1)).</summary>
    public static PromptTuning Attach(CausalLM model, int virtualTokens, long seed = 0)
    {
        if (virtualTokens < 1) throw new SharpTuneException($"num_virtual_tokens must be at least 1, got {virtualTokens}");
        using var gen = new Generator((ulong)seed);
        using var init = randn([virtualTokens, model.Config.HiddenSize], float32, generator: gen);
        return new PromptTuning(model, init);
    }

    public static PromptTuning Load(string dir, CausalLM model)
    {
        string configPath = Path.Combine(dir, "adapter_config.json"), weightsPath = Path.Combine(dir, "adapter_model.safetensors");
        var config = JsonFile.ReadObject(configPath);
        if (config["task_type"]?.GetValue<string>() is { } task && task != "CAUSAL_LM")
            throw new SharpTuneException($"{configPath}: task_type {task} is not supported (only CAUSAL_LM)");
        int n = config["num_virtual_tokens"]?.GetValue<int>() ?? throw new SharpTuneException($"{configPath}: missing num_virtual_tokens");
        if ((config["num_transformer_submodules"]?.GetValue<int>() ?? 1) != 1)
            throw new SharpTuneException($"{configPath}: num_transformer_submodules must be 1 for a causal LM");
        using var file = SafetensorsFile.Open(weightsPath);
        if (!file.Entries.TryGetValue(TensorName, out var e))
            throw new SharpTuneException($"{weightsPath}: no '{TensorName}' tensor; is this a prompt-tuning adapter?");
        if (!e.Shape.SequenceEqual(new long[] { n, model.Config.HiddenSize }))
            throw new SharpTuneException($"{weightsPath}: '{TensorName}' is [{string.Join(", ", e.Shape)}], the model needs [{n}, {model.Config.HiddenSize}]");
        using var t = file.Read(TensorName);
        return new PromptTuning(model, t);
    }

    public IReadOnlyList<Tensor> TrainableOf(Linear projection) => [];
    public IReadOnlyList<Tensor> TrainableOf(DecoderLayer layer) => [];   // the embeddings reach the layers through their input

    public void Save(string dir, string? baseModel = null)
    {
        Directory.CreateDirectory(dir);
        SafetensorsFile.Write(Path.Combine(dir, "adapter_model.safetensors"), [(TensorName, (Tensor)Embeddings)], new Dictionary<string, string> { ["format"] = "pt" });
        var config = new JsonObject
        {
            ["peft_type"] = "PROMPT_TUNING",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["num_virtual_tokens"] = VirtualTokenCount,
            ["token_dim"] = _model.Config.HiddenSize,
            ["num_transformer_submodules"] = 1,
            ["num_attention_heads"] = _model.Config.NumHeads,
            ["num_layers"] = _model.Config.NumLayers,
            ["prompt_tuning_init"] = "RANDOM",
            ["inference_mode"] = true,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    public void Restore(SafetensorsFile weights)
    {
        using var noGrad = no_grad();
        using var t = weights.Read(TensorName);
        Embeddings.copy_(t);
    }

    public void Dispose()
    {
        if (ReferenceEquals(_model.VirtualTokens, Embeddings)) _model.VirtualTokens = null;
        Embeddings.Dispose();
        _values.Dispose();
        _gradients.Dispose();
    }
}
