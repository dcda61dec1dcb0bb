using System.CommandLine;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Quantization;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary>--model, --adapter, --prompt-format, --device, --dtype: what the commands that run a model share.</summary>
sealed class ModelFlags
{
    readonly Option<string> _model = CommonOptions.Model();
    readonly Option<string?> _adapter = new("--adapter") { Description = "LoRA adapter folder (PEFT format: adapter_config.json, adapter_model.safetensors)" };
    readonly Option<string?> _promptFormat = new("--prompt-format")
    {
        Description = "Wrap each prompt in a training prompt format (r1-reasoning, alpaca) instead of the chat template, as a model fine-tuned with that format expects",
    };
    readonly Option<string> _device = new("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
    readonly Option<string> _quantization = new("--quantization")
    {
        Description = "The frozen base's projections: none, nf4, fp4 (4 bits, blocks of 64, double-quantized absmax) or int8 (row-wise); a bitsandbytes 4-bit checkpoint loads as stored",
        DefaultValueFactory = _ => "none",
    };
    readonly Option<string> _dtype = new("--dtype") { Description = "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16", DefaultValueFactory = _ => "auto" };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _model, _adapter, _promptFormat, _device, _dtype, _quantization }) cmd.Options.Add(o);
    }

    public PretrainedModel Load(ParseResult p)
    {
        string dir = ModelLocator.Resolve(p.GetValue(_model)!);
        string quantization = p.GetValue(_quantization)!;
        var model = PretrainedModel.Load(dir, p.GetValue(_device)!, p.GetValue(_dtype)!, p.GetValue(_adapter), WeightQuantization.For(quantization, dir),
            WeightQuantization.HostEmbedding(quantization));
        var device = model.CausalLM.Device;
        if (quantization != "none" && device.type == DeviceType.CUDA && !QuantKernels.Available(device, m => Console.Error.WriteLine(m)))
            Console.Error.WriteLine($"notice: {QuantKernels.Describe(device)}");
        return model;
    }

    /// <summary>The flags' values, the model resolved to a local folder, for commands that load the model themselves.</summary>
    public (string ModelDir, string? Adapter, string? PromptFormat, string Device, string DType) Values(ParseResult p) =>
        (ModelLocator.Resolve(p.GetValue(_model)!), p.GetValue(_adapter), p.GetValue(_promptFormat), p.GetValue(_device)!, p.GetValue(_dtype)!);

    /// <summary>The training prompt format to wrap prompts in, or null for raw text / the chat template.</summary>
    public PromptFormat? TrainingPromptFormat(ParseResult p) => p.GetValue(_promptFormat) is { } name ? PromptFormat.Get(name) : null;
}
