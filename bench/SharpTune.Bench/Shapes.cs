using SharpTune.Models;

namespace SharpTune.Bench;

/// <summary>Real model shapes with random weights, for speed and memory measurements.</summary>
static class Shapes
{
    public static ModelConfig Get(string name) => name switch
    {
        "qwen1.5b" => Config("Qwen2ForCausalLM", 1536, 8960, 28, 12, 2, 151936, 1e-6, 10000, null),
        "llama8b" => Config("LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 1e-5, 500000, new RopeScaling("llama3", 8, 1, 4, 8192)),
        "tiny" => Config("Qwen2ForCausalLM", 128, 352, 4, 4, 2, 1024, 1e-6, 10000, null),
        _ => throw new ArgumentException($"unknown shape {name}"),
    };

    static ModelConfig Config(string arch, int h, int i, int l, int nh, int nkv, int v, double eps, double theta, RopeScaling? rope) =>
        new(arch, h, i, l, nh, nkv, h / nh, v, eps, theta, rope, 131072, false, arch == "Qwen2ForCausalLM", false, false, "bfloat16", 1, [2]);
}
