#:project ../src/SharpTune/SharpTune.csproj
// Writes a model with random weights at a real model's shape, with a real tokenizer, for export and memory
// checks at full size (docs/export.md). Run from the repository root:
//   dotnet run scripts/random-model.cs OUT_DIR [TOKENIZER_DIR]     (default tokenizer: .cache/tokenizers/qwen3)
// The shape is Qwen2-1.5B's (28 layers, hidden 1536, vocab 151936, tied embeddings), stored in bf16.
using System.Text.Json.Nodes;
using SharpTune.Models;
using static TorchSharp.torch;

string dir = Path.GetFullPath(args[0]);
string tokenizerDir = args.Length > 1 ? args[1] : ".cache/tokenizers/qwen3";
SharpTune.Runtime.TorchRuntime.Initialize("cpu");
Directory.CreateDirectory(dir);
var config = new JsonObject
{
    ["architectures"] = new JsonArray("Qwen2ForCausalLM"), ["model_type"] = "qwen2", ["hidden_size"] = 1536, ["intermediate_size"] = 8960,
    ["num_hidden_layers"] = 28, ["num_attention_heads"] = 12, ["num_key_value_heads"] = 2, ["vocab_size"] = 151936,
    ["max_position_embeddings"] = 131072, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["tie_word_embeddings"] = true,
    ["hidden_act"] = "silu", ["use_sliding_window"] = false, ["bos_token_id"] = 151643, ["eos_token_id"] = 151645, ["torch_dtype"] = "bfloat16",
};
File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
File.WriteAllText(Path.Combine(dir, "generation_config.json"), """
    {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    """);
foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(dir, f), overwrite: true);

var parsed = ModelConfig.Parse(config);
var gen = new Generator(0);
var tensors = new List<(string, Tensor)>();
foreach (var (name, shape) in ModelFolder.WeightNames(parsed))
    tensors.Add((name, name.Contains("norm") ? ones(shape, bfloat16) : name.EndsWith(".bias") ? zeros(shape, bfloat16)
        : empty(shape).normal_(0, name.Contains("embed") ? 1 / Math.Sqrt(1536) : 0.02, gen).to(bfloat16)));
SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
Console.WriteLine($"wrote {dir} ({tensors.Sum(t => t.Item2.numel()) / 1e9:0.00}B parameters)");
