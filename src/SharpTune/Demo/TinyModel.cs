using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Demo;

/// <summary>The shape of a small random model for demos and tests (R1-Distill-Qwen-like by default).</summary>
public sealed record TinyModelOptions(
    string Architecture = "Qwen2ForCausalLM",
    int HiddenSize = 128,
    int Layers = 4,
    int Heads = 4,
    int KvHeads = 2,
    int IntermediateSize = 352,
    int TokenizerVocab = 1024,
    int ContextLength = 2048,
    long Seed = 0);

/// <summary>Writes a small random model with a trained tokenizer as a Hugging Face checkpoint folder
/// (config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json) that
/// transformers loads as it loads the real thing.</summary>
public static class TinyModel
{
    public const string Bos = "<｜begin▁of▁sentence｜>", Eos = "<｜end▁of▁sentence｜>", Pad = "<｜▁pad▁｜>";
    public static readonly string[] SpecialTokens = [Bos, Eos, Pad, "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"];

    /// <summary>A chat template in the DeepSeek-R1 distills' style: system text first, &lt;｜User｜&gt; and
    /// &lt;｜Assistant｜&gt; turns, earlier reasoning dropped from history, and the generation prompt opening &lt;think&gt;.</summary>
    public const string ChatTemplate =
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}{% endif %}{% endfor %}"
        + "{% for m in messages %}{% if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
        + "{% elif m['role'] == 'assistant' %}{% set content = m['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
        + "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\n' }}{% endif %}";

    /// <summary>Texts the tiny tokenizer is trained on: the bundled sample dataset in the R1 reasoning prompt format.</summary>
    public static IEnumerable<string> DefaultCorpus() =>
        DatasetReader.ReadExamples(SampleData.MedicalCalculations).Select(e => PromptFormat.R1Reasoning.Format(e).Text);

    public static void Create(string dir, TinyModelOptions? options = null, IEnumerable<string>? corpus = null, string? chatTemplate = ChatTemplate)
    {
        var o = options ?? new TinyModelOptions();
        corpus ??= DefaultCorpus();
        if (!ModelConfig.Supported.Contains(o.Architecture))
            throw new SharpTuneException($"--arch: '{o.Architecture}' is not supported; supported: {string.Join(", ", ModelConfig.Supported)}");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new SharpTuneException($"{dir}: folder exists and is not empty; choose a new folder");
        // Written into a temp folder and moved into place, so that an interrupted run leaves nothing half-made.
        string final = Path.GetFullPath(dir);
        string tmp = $"{final}.tmp-{Guid.NewGuid():N}";
        Directory.CreateDirectory(tmp);
        try
        {
            Write(tmp, corpus, chatTemplate, o);
            if (Directory.Exists(final)) Directory.Delete(final);
            Directory.Move(tmp, final);
        }
        catch
        {
            Directory.Delete(tmp, recursive: true);
            throw;
        }
    }

    static void Write(string dir, IEnumerable<string> corpus, string? chatTemplate, TinyModelOptions o)
    {
        var tokenizer = BpeTrainer.Train(corpus, o.TokenizerVocab, SpecialTokens,
            new BpeTrainerOptions(BosToken: Bos, EosToken: Eos, PadToken: Pad, AddBosToken: true, ChatTemplate: chatTemplate, ModelMaxLength: o.ContextLength));
        tokenizer.Save(dir);

        int bos = tokenizer.BosTokenId!.Value, eos = tokenizer.EosTokenId!.Value;
        string modelType = o.Architecture switch { "LlamaForCausalLM" => "llama", "Qwen2ForCausalLM" => "qwen2", _ => "qwen3" };
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(o.Architecture),
            ["model_type"] = modelType,
            ["hidden_size"] = o.HiddenSize,
            ["intermediate_size"] = o.IntermediateSize,
            ["num_hidden_layers"] = o.Layers,
            ["num_attention_heads"] = o.Heads,
            ["num_key_value_heads"] = o.KvHeads,
            ["head_dim"] = o.HiddenSize / o.Heads,
            ["vocab_size"] = tokenizer.VocabSize,
            ["max_position_embeddings"] = o.ContextLength,
            ["rms_norm_eps"] = 1e-6,
            ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = false,
            ["hidden_act"] = "silu",
            ["initializer_range"] = 0.02,
            ["attention_dropout"] = 0.0,
            ["use_cache"] = true,
            ["bos_token_id"] = bos,
            ["eos_token_id"] = eos,
            ["torch_dtype"] = "float32",
        };
        var parsed = ModelConfig.Parse(config);
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(dir, "generation_config.json"), new JsonObject
        {
            ["bos_token_id"] = bos, ["eos_token_id"] = eos, ["do_sample"] = false,
        }.ToJsonString(new() { WriteIndented = true }));

        // HF's initialization (normal(0, 0.02) weights, unit norms, zero biases), except lm_head: a random frozen
        // head of std 0.02 caps every logit near 0.02·H, too flat to learn from; 1/√H lets adapters reach confident logits.
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)o.Seed);
        var tensors = new List<(string, Tensor)>();
        Tensor Init(string name, long[] shape)
        {
            var t = name.Contains("norm") ? ones(shape) : name.EndsWith(".bias") ? zeros(shape)
                : empty(shape).normal_(0, name == "lm_head.weight" ? 1 / Math.Sqrt(o.HiddenSize) : 0.02, gen);
            tensors.Add((name, t));
            return t;
        }
        using var model = new CausalLM(parsed, CPU, float32, Init);
        SafetensorsFile.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
