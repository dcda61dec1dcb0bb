using System.CommandLine;

namespace SharpTune.Cli.Commands;

/// <summary>Options shared by the commands that load a model.</summary>
static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer.json) or Hub id org/name[@revision]", Required = true };
    public static Option<string> Device() => new("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
    public static Option<string> DType() => new("--dtype") { Description = "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16", DefaultValueFactory = _ => "auto" };
    public static Option<string?> Adapter() => new("--adapter") { Description = "LoRA adapter folder (PEFT format: adapter_config.json, adapter_model.safetensors)" };
    public static Option<string?> PromptFormat() => new("--prompt-format") { Description = "Wrap each prompt in a training prompt format (r1-reasoning, alpaca) instead of the chat template, as a model fine-tuned with that format expects" };
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object, for scripts" };
}
