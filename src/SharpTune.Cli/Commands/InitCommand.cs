using System.CommandLine;
using SharpTune.Demo;
using SharpTune.Runtime;

namespace SharpTune.Cli.Commands;

static class InitCommand
{
    public static Command Create(TextWriter stdout)
    {
        var tiny = new Option<string>("--tiny") { Description = "Folder to write a small random model with a tokenizer into", Required = true };
        var arch = new Option<string>("--arch") { Description = "qwen2, llama or qwen3", DefaultValueFactory = _ => "qwen2" };
        var seed = new Option<long>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 0 };
        var cmd = new Command("init", "Write a tiny random model in Hugging Face format, for demos and tests") { tiny, arch, seed };
        cmd.SetAction(p =>
        {
            string architecture = p.GetValue(arch)!.ToLowerInvariant() switch
            {
                "qwen2" => "Qwen2ForCausalLM",
                "llama" => "LlamaForCausalLM",
                "qwen3" => "Qwen3ForCausalLM",
                var other => throw new SharpTuneException($"--arch: expected qwen2, llama or qwen3, got '{other}'"),
            };
            string dir = p.GetValue(tiny)!;
            TorchRuntime.Initialize("cpu");
            TinyModel.Create(dir, new TinyModelOptions(Architecture: architecture, Seed: p.GetValue(seed)));
            stdout.WriteLine($"Wrote a tiny {architecture} to {dir}. Try: sharptune info --model {dir}");
        });
        return cmd;
    }
}
