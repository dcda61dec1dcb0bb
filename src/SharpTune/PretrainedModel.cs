using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Runtime;
using SharpTune.Tokenization;
using TorchSharp;

namespace SharpTune;

/// <summary>The library's front door: everything a model folder holds, loaded together: the decoder, its tokenizer, chat template and
/// generation defaults.</summary>
public sealed class PretrainedModel : IDisposable
{
    public required string Directory { get; init; }
    /// <summary>The decoder network (weights on the device).</summary>
    public required CausalLM CausalLM { get; init; }
    public required Tokenizer Tokenizer { get; init; }
    public required GenerationDefaults Defaults { get; init; }
    public ChatTemplate? ChatTemplate { get; init; }
    /// <summary>A LoRA adapter applied on top of the weights, when one was loaded.</summary>
    public IAdapter? Adapter { get; init; }

    public ModelConfig Config => CausalLM.Config;

    /// <summary>Loads a model folder onto <paramref name="device"/> ("auto", "cpu", "cuda") in
    /// <paramref name="dtype"/> ("auto", "float32", "bfloat16", "float16"), with a PEFT adapter folder (LoRA, DoRA,
    /// prompt tuning) when given. <paramref name="projections"/> makes the projections' weights (Quantization's
    /// loaders); null loads them dense. <paramref name="hostEmbedding"/>, when given, keeps the embedding table in host
    /// memory on CUDA and looks rows up with it (see <see cref="ModelFolder.LoadModel"/>). <paramref name="lmHeadQuantization"/>
    /// "int8" keeps lm_head row-wise int8, quantized from host memory while loading (training's lm_head_quantization).</summary>
    public static PretrainedModel Load(string dir, string device = "auto", string dtype = "auto", string? adapterDir = null,
        ProjectionLoader? projections = null, Func<torch.Tensor, torch.Tensor, torch.Tensor>? hostEmbedding = null, string lmHeadQuantization = "none")
    {
        if (lmHeadQuantization is not ("none" or "int8"))
            throw new SharpTuneException($"lm_head_quantization: expected none or int8, got '{lmHeadQuantization}'");
        var dev = TorchRuntime.Initialize(device);
        var tokenizer = Tokenizer.Load(dir);
        var defaults = GenerationDefaults.Load(dir);                                    // small files first: a mistake
        var template = tokenizer.ChatTemplateSource is { } src ? ChatTemplate.Parse(src) : null;   // fails before the weights load
        using var folder = ModelFolder.Open(dir);
        if (tokenizer.VocabSize > folder.Config.VocabSize)
            throw new SharpTuneException($"{dir}: the tokenizer has ids up to {tokenizer.VocabSize - 1} but config.json's vocab_size is {folder.Config.VocabSize}; "
                + "are tokenizer.json and config.json from the same model?");
        var model = folder.LoadModel(dev, ModelFolder.ResolveDType(dtype, folder.Config, dev), projections, hostEmbedding,
            lmHeadQuantization == "int8" ? w => Int8Weight.Quantize(w, dev) : null);
        IAdapter? adapter = null;
        try { adapter = adapterDir is null ? null : Adapters.Load(adapterDir, model); }
        catch { model.Dispose(); throw; }
        return new PretrainedModel
        {
            Adapter = adapter,
            Directory = dir,
            CausalLM = model,
            Tokenizer = tokenizer,
            Defaults = defaults,
            ChatTemplate = template,
        };
    }

    /// <summary>Ids that end generation: generation_config.json's, else config.json's, plus the tokenizer's EOS.</summary>
    public int[] EosTokenIds
    {
        get
        {
            var ids = new HashSet<int>(Defaults.EosTokenIds.Length > 0 ? Defaults.EosTokenIds : Config.EosTokenIds);
            if (Tokenizer.EosTokenId is { } eos) ids.Add(eos);
            return ids.Order().ToArray();
        }
    }

    /// <summary>Prompt ids for raw text (BOS as the tokenizer config says).</summary>
    public int[] EncodeText(string text) => Tokenizer.Encode(text, addSpecialTokens: true);

    /// <summary>Prompt ids for a conversation rendered with the model's chat template, ending with the
    /// assistant's turn opened (as HF's apply_chat_template with add_generation_prompt=True).</summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages) =>
        Tokenizer.Encode(RenderChat(messages), addSpecialTokens: false);

    public string RenderChat(IReadOnlyList<ChatMessage> messages)
    {
        if (ChatTemplate is null)
            throw new SharpTuneException($"{Path.Combine(Directory, "tokenizer_config.json")}: no chat_template; use a raw prompt (without --chat)");
        return ChatTemplate.RenderChat(messages, addGenerationPrompt: true, Tokenizer.BosToken, Tokenizer.EosToken);
    }

    public void Dispose()
    {
        Adapter?.Dispose();
        CausalLM.Dispose();
    }
}
