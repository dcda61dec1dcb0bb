using System.CommandLine;

namespace SharpTune.Cli.Commands;

/// <summary>Options several commands share.</summary>
static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer.json) or Hub id org/name[@revision]", Required = true };
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object, for scripts" };
}
