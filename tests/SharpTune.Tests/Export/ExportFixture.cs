using SharpTune.Demo;
using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Export;

/// <summary>Tiny models of the three architectures, each with a LoRA adapter whose B is random (a fresh adapter's
/// B is zero and would change nothing), made once per test class.</summary>
public sealed class ExportFixture : IDisposable
{
    public string Root { get; } = TestPaths.TempDir();
    readonly Dictionary<string, (string Model, string Adapter)> _models = [];
    readonly object _gate = new();

    public (string Model, string Adapter) Get(string arch)
    {
        lock (_gate)
        {
            if (_models.TryGetValue(arch, out var m)) return m;
            _ = TestPaths.Cpu;
            string architecture = arch switch { "llama" => "LlamaForCausalLM", "qwen3" => "Qwen3ForCausalLM", _ => "Qwen2ForCausalLM" };
            string model = Path.Combine(Root, arch);
            TinyModel.Create(model, new TinyModelOptions(Architecture: architecture, HiddenSize: 64, Layers: 2, IntermediateSize: 128, Seed: 7));
            string adapter = Path.Combine(Root, arch + "-adapter");
            WriteAdapter(model, adapter, seed: 3);
            return _models[arch] = (model, adapter);
        }
    }

    public static void WriteAdapter(string model, string dir, long seed, int rank = 4)
    {
        using var m = PretrainedModel.Load(model, "cpu", "float32");
        using var lora = LoraAdapter.Attach(m.CausalLM, new LoraOptions(Rank: rank, Alpha: 8), seed);
        using (no_grad())
        {
            var gen = new Generator((ulong)seed);
            lora.Values.copy_(empty(lora.Values.shape).normal_(0, 0.02, gen));
        }
        lora.Save(dir, model);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
