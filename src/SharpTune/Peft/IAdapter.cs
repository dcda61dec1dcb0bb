using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Peft;

/// <summary>What training and loading need of a parameter-efficient adapter: <see cref="LoraAdapter"/> (LoRA, DoRA)
/// or <see cref="PromptTuning"/>. Trainable values live in one flat fp32 buffer, their gradients in another.</summary>
public interface IAdapter : IDisposable
{
    Tensor Values { get; }
    Tensor Gradients { get; }
    long TrainableParameterCount { get; }
    /// <summary>Dropout is active only while training.</summary>
    bool Training { get; set; }
    /// <summary>Whether the adapter takes part in the model's forward (off: the base model's outputs).</summary>
    bool Enabled { get; set; }
    /// <summary>The trainable tensors a decoder layer uses (what activation checkpointing routes gradients to).</summary>
    IReadOnlyList<Tensor> TrainableOf(DecoderLayer layer);
    /// <summary>The trainable tensors of one projection, in the order <see cref="TrainableOf(DecoderLayer)"/> lists them.</summary>
    IReadOnlyList<Tensor> TrainableOf(Linear projection);
    /// <summary>Writes the adapter in PEFT's format (adapter_config.json + adapter_model.safetensors) into <paramref name="dir"/>.</summary>
    void Save(string dir, string? baseModel = null);
    /// <summary>Copies the trainable values from a saved adapter file (resuming a run).</summary>
    void Restore(SafetensorsFile weights);

    /// <summary>The forward and backward passes of one training step begin, with activations of
    /// <paramref name="computeType"/>; <see cref="Values"/> stay unchanged until <see cref="EndStep"/>.</summary>
    void BeginStep(ScalarType computeType) { }
    /// <summary>A backward pass is done: its gradients are in <see cref="Gradients"/> afterwards.</summary>
    void CollectGradients() { }
    /// <summary>The step's passes are done (the optimizer may change <see cref="Values"/> next).</summary>
    void EndStep() { }
}

/// <summary>Loads a PEFT adapter folder of any supported kind, by its adapter_config.json's peft_type.</summary>
public static class Adapters
{
    public static IAdapter Load(string dir, CausalLM model)
    {
        string configPath = Path.Combine(dir, "adapter_config.json");
        if (!File.Exists(configPath)) throw new SharpTuneException($"{configPath}: not found; an adapter folder needs adapter_config.json and adapter_model.safetensors");
        return JsonFile.ReadObject(configPath)["peft_type"]?.GetValue<string>() == "PROMPT_TUNING"
            ? PromptTuning.Load(dir, model)
            : LoraAdapter.Load(dir, model);
    }
}
