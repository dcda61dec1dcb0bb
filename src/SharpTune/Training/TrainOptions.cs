using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Serialization;
using SharpTune.Data;
using SharpTune.Peft;
using SharpTune.Quantization;
using YamlDotNet.RepresentationModel;

namespace SharpTune.Training;

/// <summary>What a <see cref="DatasetSpec.Source"/> names.</summary>
public enum DatasetOrigin
{
    /// <summary>A data file, a folder or a Hub dataset id.</summary>
    Path,
    /// <summary>The bundled sample (source: sample), whose test split is held out.</summary>
    BundledSample,
}

/// <summary>One dataset of a run; several are mixed by <see cref="Ratio"/>.</summary>
public sealed record DatasetSpec
{
    /// <summary>The <see cref="Source"/> that names the bundled sample.</summary>
    public const string SampleSource = "sample";

    /// <summary>File (.json, .jsonl, .csv, .tsv, .parquet), folder, Hub id org/name, or "sample" for the bundled sample.</summary>
    public string Source { get; init; } = SampleSource;

    [JsonIgnore]
    public DatasetOrigin Origin => Source == SampleSource ? DatasetOrigin.BundledSample : DatasetOrigin.Path;

    /// <summary>Subset / config of a Hub dataset (e.g. "en" of medical-o1-reasoning-SFT).</summary>
    public string? Config { get; init; }
    public string Split { get; init; } = "train";
    /// <summary>Use only the first N rows (0 = all).</summary>
    public int Rows { get; init; }
    /// <summary>auto (from the columns), medical (Question/Complex_CoT/Response), alpaca, chat.</summary>
    public string Format { get; init; } = "auto";
    /// <summary>Share of this dataset in the mix (relative to the others).</summary>
    public double Ratio { get; init; } = 1;
    /// <summary>Column renames "question=Question,reasoning=Complex_CoT".</summary>
    public string? Columns { get; init; }
}

/// <summary>
/// Everything a LoRA fine-tuning run needs, as one flat record with its defaults. A YAML recipe sets any of
/// these by snake_case key (learning_rate: 2e-4); command-line flags override it (--learning-rate 2e-4).
/// Unknown keys are errors.
/// </summary>
public sealed record TrainOptions
{
    // ---- model and data
    [Setting("Base model: a local folder or a Hub id org/name[@revision]; empty = the tiny demo model")]
    public string Model { get; init; } = "";
    public IReadOnlyList<DatasetSpec> Datasets { get; init; } = [new DatasetSpec()];
    [Setting("How an example becomes text: the R1 reasoning prompt (question, then <think>reasoning</think> answer), an Alpaca prompt, or the model's chat template", Allowed = "r1-reasoning, alpaca, chat-template")]
    public PromptStyle PromptFormat { get; init; } = PromptStyle.R1Reasoning;
    [Setting("Tokens per training sequence; longer examples are truncated (and counted)")]
    public int MaxLength { get; init; } = 2048;
    [Setting("Pack several short examples into one sequence (attention and positions restart per example)")]
    public bool Packing { get; init; }
    [Setting("Which tokens the loss is computed on: the response only, or the whole text", Allowed = "response, all")]
    public string LossOn { get; init; } = "response";
    [Setting("Share of the examples held out for evaluation (the eval loss curve and early stopping use it); 0 = none", Allowed = "0 to < 1")]
    public double ValidationFraction { get; init; } = 0.05;
    [Setting("A dataset row that cannot be read or formatted: stop with an error naming it, or leave it out and report the count", Allowed = "error, skip")]
    public string OnBadRow { get; init; } = "error";

    // ---- adapter
    [Setting("Adapter kind: LoRA (DoRA with use_dora), or prompt tuning (trainable virtual tokens; the lora_* settings do not apply)", Allowed = "lora, prompt_tuning")]
    public string Peft { get; init; } = "lora";
    [Setting("Virtual tokens of prompt tuning", Allowed = ">= 1")]
    public int NumVirtualTokens { get; init; } = 20;

    // ---- LoRA (defaults: LoraOptions')
    static readonly LoraOptions LoraDefaults = new();
    [Setting("LoRA rank r: the inner size of each adapter (more = more capacity and memory)")]
    public int LoraRank { get; init; } = LoraDefaults.Rank;
    [Setting("LoRA alpha: the adapter's output is scaled by alpha / r (alpha / sqrt(r) with use_rslora)")]
    public double LoraAlpha { get; init; } = LoraDefaults.Alpha;
    [Setting("Dropout on the adapters' input during training", Allowed = "0 to < 1")]
    public double LoraDropout { get; init; } = LoraDefaults.Dropout;
    [Setting("Rank-stabilized LoRA: scale by alpha / sqrt(r) instead of alpha / r")]
    public bool UseRslora { get; init; } = LoraDefaults.UseRslora;
    [Setting("DoRA: a trainable magnitude per output row on top of LoRA (PEFT's use_dora)")]
    public bool UseDora { get; init; }
    [Setting("Comma-separated projections that get adapters", Allowed = "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")]
    public string TargetModules { get; init; } = string.Join(",", LoraDefaults.Targets);

    // ---- quantization (QLoRA)
    [Setting("The frozen base's projections: as dtype, 4-bit NF4/FP4 (blocks of 64, double-quantized absmax) or int8 row-wise; a bitsandbytes 4-bit checkpoint loads as stored", Allowed = "none, nf4, fp4, int8")]
    public string Quantization { get; init; } = "none";
    [Setting("The frozen lm_head: as dtype, or int8 row-wise (half its memory; expanded a slice of rows at a time in the loss). QLoRA and bitsandbytes keep it 16-bit; not for an lm_head tied to the embedding", Allowed = "none, int8")]
    public string LmHeadQuantization { get; init; } = "none";

    // ---- optimization
    [Setting("Optimizer: AdamW with fp32 moments, or 8-bit AdamW (both moments block-wise 8-bit, Dettmers et al. 2022)", Allowed = "adamw, adamw_8bit")]
    public string Optimizer { get; init; } = "adamw";
    [Setting("Peak learning rate of AdamW", Allowed = "> 0")]
    public double LearningRate { get; init; } = 2e-4;
    [Setting("AdamW's decoupled weight decay")]
    public double WeightDecay { get; init; } = 0.01;
    [Setting("AdamW's beta1 (first-moment decay)")]
    public double AdamBeta1 { get; init; } = 0.9;
    [Setting("AdamW's beta2 (second-moment decay)")]
    public double AdamBeta2 { get; init; } = 0.999;
    [Setting("AdamW's epsilon")]
    public double AdamEpsilon { get; init; } = 1e-8;
    [Setting("Learning-rate shape after the warmup: constant, linear decay to 0, or cosine decay to 0 at the last step", Allowed = "linear, cosine, constant")]
    public string LrScheduler { get; init; } = "linear";
    [Setting("Optimizer steps of linear warmup; step k of n runs at k/n of the peak")]
    public int WarmupSteps { get; init; } = 5;
    [Setting("Optimizer steps to run; 0 = run `epochs` passes over the data instead. A finished run resumed with a larger value continues")]
    public int MaxSteps { get; init; } = 60;
    [Setting("Passes over the data, used only when max_steps is 0")]
    public int Epochs { get; init; } = 1;
    [Setting("Sequences per forward pass (micro-batch)")]
    public int BatchSize { get; init; } = 2;
    [Setting("Forward passes per optimizer step: the effective batch is batch_size × this")]
    public int GradientAccumulation { get; init; } = 4;
    [Setting("Clip the global gradient norm to this; 0 = no clipping")]
    public double MaxGradNorm { get; init; } = 1.0;
    [Setting("Seed of the adapters' initialisation, the data order and dropout")]
    public long Seed { get; init; } = 3407;

    // ---- runtime
    [Setting("Where to train: auto picks CUDA when a CUDA PyTorch is installed", Allowed = "auto, cpu, cuda, cuda:N")]
    public string Device { get; init; } = "auto";
    [Setting("Compute type of the frozen base: auto = bfloat16 on CUDA, float32 on the CPU", Allowed = "auto, float32, bfloat16, float16")]
    public string DType { get; init; } = "auto";
    [Setting("Recompute each layer in the backward pass instead of keeping its activations: less memory, more time")]
    public bool ActivationCheckpointing { get; init; }
    [Setting("With activation_checkpointing: keep each layer's saved input in pinned CPU memory instead of on the GPU (copied out and back without blocking), for long sequences")]
    public bool ActivationOffload { get; init; }
    [Setting("With activation_checkpointing: recompute only the first N decoder layers and keep the others' activations (faster, more memory); 0 = all layers", Allowed = ">= 0")]
    public int CheckpointLayers { get; init; }
    [Setting("With activation_checkpointing: in the first N recomputed layers also keep the MLP's gate and up outputs (2 x tokens x intermediate_size values per layer), so that backward recomputes only attention (faster, more memory); 0 = none", Allowed = ">= 0")]
    public int CheckpointKeepMlp { get; init; }
    [Setting("With activation_checkpointing on CUDA: after the first step, keep the MLP of as many layers as fit so that the GPU's memory in use (device-wide, as nvidia-smi counts it) stays within this many GiB; it replaces checkpoint_keep_mlp; 0 = off", Allowed = "0 or > 0")]
    public double CheckpointKeepMlpBudget { get; init; }
    [Setting("With activation_checkpointing: tokens per piece of a recomputed layer's MLP, counted over the micro-batch (batch_size rows share a piece), recomputed and differentiated one piece at a time (bounds the [tokens, intermediate] tensors' memory, for long sequences or small GPUs; not in layers that keep their MLP); 0 = the whole micro-batch at once", Allowed = "0 or >= 16")]
    public int MlpChunk { get; init; }
    [Setting("Keep the input embedding table in pinned CPU memory; each step the GPU reads only its batch's rows (frees vocab x hidden x 2 bytes of GPU memory, 1 GB at 8B; tied embeddings stay on the GPU). auto = with activation_checkpointing or quantization", Allowed = "auto, true, false")]
    public string EmbeddingOnHost { get; init; } = "auto";
    [Setting("Tokens per chunk of the lm_head + loss computation (bounds the logits' memory)", Allowed = ">= 16")]
    public int LossChunk { get; init; } = 1024;

    // ---- logging, evaluation, checkpoints
    [Setting("Output folder: adapter, checkpoints, metrics.jsonl and the report")]
    public string OutputDir { get; init; } = "outputs";
    [Setting("Log the loss every N optimizer steps")]
    public int LogEvery { get; init; } = 1;
    [Setting("Evaluate on the validation split every N steps (and at the end); 0 = at the end only")]
    public int EvalEvery { get; init; } = 20;
    [Setting("Stop after this many evaluations without improvement; 0 = never")]
    public int EarlyStoppingPatience { get; init; }
    [Setting("An evaluation improves only when its loss is below the best so far by more than this (transformers' early_stopping_threshold)")]
    public double EarlyStoppingThreshold { get; init; }
    [Setting("Save a resumable checkpoint every N steps (and at the end); 0 = at the end only")]
    public int SaveEvery { get; init; } = 20;
    [Setting("Keep only the newest N checkpoints")]
    public int KeepCheckpoints { get; init; } = 2;
    [Setting("Continue from the newest checkpoint in output_dir, if there is one")]
    public bool Resume { get; init; } = true;
    [Setting("Questions answered before and after training for the report; 0 = none (benchmarks)", Allowed = ">= 0")]
    public int Comparisons { get; init; } = 1;

    // ---- setting by name (recipes and flags)

    static readonly Dictionary<string, PropertyInfo> Settable = typeof(TrainOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.Name != nameof(Datasets))
        .ToDictionary(p => SnakeCase(p.Name));

    /// <summary>The snake_case keys a recipe may set (besides <c>datasets</c>).</summary>
    public static IReadOnlyCollection<string> Keys => Settable.Keys;

    /// <summary>Every setting with its meaning, type, default and allowed values: the one source of `train --help`
    /// and of the table in docs/training.md.</summary>
    public static IReadOnlyList<SettingInfo> Settings { get; } = Settable.Select(kv =>
    {
        var attribute = kv.Value.GetCustomAttribute<SettingAttribute>()
            ?? throw new InvalidOperationException($"TrainOptions.{kv.Value.Name} has no [Setting] description");
        object? value = kv.Value.GetValue(new TrainOptions());
        string text = value switch
        {
            null or "" => "(none)",
            bool b => b ? "true" : "false",
            PromptStyle style => PromptStyles.NameOf(style),
            double d => d.ToString("G", CultureInfo.InvariantCulture).Replace("E-0", "e-").Replace("E", "e"),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString()!,
        };
        string type = kv.Value.PropertyType == typeof(string) || kv.Value.PropertyType.IsEnum ? "text" : kv.Value.PropertyType == typeof(bool) ? "true/false"
            : kv.Value.PropertyType == typeof(double) ? "number" : "integer";
        return new SettingInfo(kv.Key, attribute.Meaning, type, text, attribute.Allowed);
    }).OrderBy(s => s.Key, StringComparer.Ordinal).ToList();

    public static string SnakeCase(string name)
    {
        var s = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0 && !(name[i - 1] == 'D' && name[i] == 'T')) s.Append('_');
            s.Append(char.ToLowerInvariant(name[i]));
        }
        return s.ToString();
    }

    /// <summary>A copy with one setting changed; <paramref name="where"/> names the source for error messages.</summary>
    public TrainOptions With(string key, string value, string where)
    {
        string k = key.Replace('-', '_');
        if (!Settable.TryGetValue(k, out var prop))
            throw new SharpTuneException($"{where}: unknown setting {SharpTuneException.Quote(key)}{Suggest(k)}");
        object converted;
        try
        {
            converted = prop.PropertyType switch
            {
                var t when t == typeof(string) => value,
                var t when t == typeof(int) => int.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(long) => long.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(double) => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture) is var d && double.IsFinite(d) ? d
                    : throw new SharpTuneException($"{where}: '{key}' expects a finite number, got {SharpTuneException.Quote(value)}"),
                var t when t == typeof(bool) => bool.Parse(value),
                var t when t == typeof(PromptStyle) => PromptStyles.TryParse(value)
                    ?? throw new SharpTuneException($"{where}: '{key}' expects one of {string.Join(", ", PromptStyles.Names)}, got {SharpTuneException.Quote(value)}"),
                var t => throw new InvalidOperationException($"no conversion to {t}"),
            };
        }
        catch (FormatException)
        {
            throw new SharpTuneException($"{where}: '{key}' expects {TypeName(prop.PropertyType)}, got {SharpTuneException.Quote(value)}");
        }
        catch (OverflowException)
        {
            throw new SharpTuneException($"{where}: '{key}' value {SharpTuneException.Quote(value)} is out of range");
        }
        var copy = this with { };
        prop.SetValue(copy, converted);
        return copy;
    }

    static string TypeName(Type t) => t == typeof(int) || t == typeof(long) ? "a whole number" : t == typeof(double) ? "a number" : t == typeof(bool) ? "true or false" : "text";

    static string Suggest(string key) => SharpTuneException.NearestName(key, Settable.Keys) is { } nearest
        ? $"; did you mean '{nearest}'?" : $"; known settings: {string.Join(", ", Settable.Keys.Order())}, datasets";

    /// <summary>Reads a YAML recipe: a mapping of settings, with <c>datasets</c> as a list of mappings.</summary>
    public static TrainOptions FromYaml(string path, TrainOptions? start = null)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new SharpTuneException($"{path}: recipe not found");
        return FromYamlText(InputFile.ReadAllText(path), path, start);
    }

    /// <summary>Reads a YAML recipe's text; <paramref name="path"/> names it in messages.</summary>
    public static TrainOptions FromYamlText(string text, string path, TrainOptions? start = null)
    {
        var yaml = new YamlStream();
        CheckPrintable(text, path);
        try
        {
            CheckDepth(text, path);
            yaml.Load(new StringReader(text));
        }
        catch (YamlDotNet.Core.YamlException e) { throw new SharpTuneException($"{path}:{e.Start.Line}: invalid YAML ({ErrorText.OneLine(e.Message, 160)})"); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner throws these on some malformed input (found by fuzzing) instead of a YamlException.
            throw new SharpTuneException($"{path}: invalid YAML (the parser stopped: {ErrorText.OneLine(e.Message, 120)})");
        }
        var options = start ?? new TrainOptions();
        if (yaml.Documents.Count == 0) return options;
        if (yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new SharpTuneException($"{path}: a recipe is a mapping of settings (key: value)");
        foreach (var (keyNode, valueNode) in root.Children)
        {
            string where = $"{path}:{keyNode.Start.Line}";
            string key = keyNode is YamlScalarNode k ? k.Value ?? "" : throw new SharpTuneException($"{where}: a setting's name must be plain text");
            if (key == "datasets")
            {
                if (valueNode is not YamlSequenceNode list)
                    throw new SharpTuneException($"{where}: 'datasets' is a list of mappings (- source: ...)");
                options = options with { Datasets = list.Children.Select(n => ParseDataset(n, path)).ToList() };
                continue;
            }
            if (valueNode is not YamlScalarNode scalar)
                throw new SharpTuneException($"{where}: '{key}' expects a single value");
            options = options.With(key, scalar.Value ?? "", where);
        }
        return options;
    }

    /// <summary>Recipes are flat; the representation model recurses per level, so a hostile file nested
    /// thousands deep would overflow the stack. The event parser is not recursive: count the depth with it first.</summary>
    const int MaxYamlDepth = 32;

    /// <summary>YAML allows only printable characters (tab, line breaks and the rest of Unicode minus controls and
    /// lone surrogates); anything else is refused with its line before the parser sees it.</summary>
    static void CheckPrintable(string text, string path)
    {
        int line = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '\n') { line++; continue; }
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            bool printable = c is '\t' or '\r' or '\u0085' || (c >= ' ' && c != '\u007f' && !(c >= '\u0080' && c <= '\u009f') && !char.IsSurrogate(c) && c is not ('\ufffe' or '\uffff'));
            if (!printable)
                throw new SharpTuneException($"{path}:{line}: invalid YAML (character U+{(int)c:X4} is not allowed in a YAML file)");
        }
    }

    static void CheckDepth(string text, string path)
    {
        var parser = new YamlDotNet.Core.Parser(new StringReader(text));
        int depth = 0;
        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case YamlDotNet.Core.Events.MappingStart or YamlDotNet.Core.Events.SequenceStart:
                    if (++depth > MaxYamlDepth)
                        throw new SharpTuneException($"{path}:{parser.Current.Start.Line}: nested more than {MaxYamlDepth} levels deep; a recipe is a flat mapping of settings");
                    break;
                case YamlDotNet.Core.Events.MappingEnd or YamlDotNet.Core.Events.SequenceEnd:
                    depth--;
                    break;
            }
        }
    }

    static DatasetSpec ParseDataset(YamlNode node, string path)
    {
        string where = $"{path}:{node.Start.Line}";
        if (node is YamlScalarNode s) return new DatasetSpec { Source = s.Value ?? "" };
        if (node is not YamlMappingNode map) throw new SharpTuneException($"{where}: a dataset is a mapping (source, config, split, rows, format, ratio, columns)");
        var spec = new DatasetSpec();
        foreach (var (k, v) in map.Children)
        {
            string at = $"{path}:{k.Start.Line}";
            string key = k is YamlScalarNode ks ? ks.Value ?? "" : throw new SharpTuneException($"{at}: a dataset setting's name must be plain text");
            string value = v is YamlScalarNode vs ? vs.Value ?? "" : throw new SharpTuneException($"{at}: {SharpTuneException.Quote(key)} expects a single value");
            spec = key switch
            {
                "source" => spec with { Source = value },
                "config" => spec with { Config = value },
                "split" => spec with { Split = value },
                "rows" => spec with { Rows = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var r) && r >= 0 ? r : throw new SharpTuneException($"{at}: 'rows' expects a whole number >= 0, got {SharpTuneException.Quote(value)}") },
                "format" => spec with { Format = value },
                "ratio" => spec with { Ratio = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var q) && q > 0 && double.IsFinite(q) ? q : throw new SharpTuneException($"{at}: 'ratio' expects a finite number > 0, got {SharpTuneException.Quote(value)}") },
                "columns" => spec with { Columns = value },
                _ => throw new SharpTuneException($"{at}: unknown dataset setting {SharpTuneException.Quote(key)} (source, config, split, rows, format, ratio, columns)"),
            };
        }
        return spec;
    }

    /// <summary>Checks ranges and combinations before any work starts (and before anything is written): every
    /// number finite and in the range where training means something.</summary>
    public void Validate()
    {
        void Require(bool ok, string message) { if (!ok) throw new SharpTuneException(message); }
        void Positive(double value, string key) => Require(value > 0 && double.IsFinite(value), $"{key} must be a finite number > 0, got {value}");
        void Fraction(double value, string key, bool closedAtOne) =>
            Require(value >= 0 && (closedAtOne ? value <= 1 : value < 1), $"{key} must be in [0, 1{(closedAtOne ? "]" : ")")}, got {value}");
        Require(MaxLength is >= 16 and <= 1 << 20, $"max_length must be from 16 to {1 << 20}, got {MaxLength}");
        Require(BatchSize is >= 1 and <= 1 << 16, $"batch_size must be from 1 to {1 << 16}, got {BatchSize}");
        Require(GradientAccumulation is >= 1 and <= 1 << 16, $"gradient_accumulation must be from 1 to {1 << 16}, got {GradientAccumulation}");
        Require((long)BatchSize * MaxLength <= 1L << 26, $"batch_size × max_length = {(long)BatchSize * MaxLength} tokens per forward pass is more than {1L << 26}");
        Require(MaxSteps >= 0, $"max_steps must be >= 0, got {MaxSteps}");
        Require(Epochs is >= 0 and <= 1_000_000, $"epochs must be from 0 to 1000000, got {Epochs}");
        Require(MaxSteps > 0 || Epochs >= 1, "set max_steps or epochs");
        Require(MaxSteps == 0 || Epochs == 1, $"epochs {Epochs} would be ignored because max_steps is {MaxSteps}; set max_steps: 0 to train by epochs");
        Require(LogEvery >= 1, $"log_every must be at least 1, got {LogEvery}");
        Require(EvalEvery >= 0 && SaveEvery >= 0 && EarlyStoppingPatience >= 0, "eval_every, save_every and early_stopping_patience must be >= 0");
        Require(EarlyStoppingThreshold >= 0 && double.IsFinite(EarlyStoppingThreshold), "early_stopping_threshold must be a finite number >= 0");
        Positive(LearningRate, "learning_rate");
        Require(LearningRate <= 10, $"learning_rate must be at most 10, got {LearningRate}");
        Require(WeightDecay >= 0 && WeightDecay <= 1, $"weight_decay must be in [0, 1], got {WeightDecay}");
        Fraction(AdamBeta1, "adam_beta1", closedAtOne: false);
        Fraction(AdamBeta2, "adam_beta2", closedAtOne: false);
        Positive(AdamEpsilon, "adam_epsilon");
        Require(MaxGradNorm >= 0 && double.IsFinite(MaxGradNorm), $"max_grad_norm must be a finite number >= 0 (0 = off), got {MaxGradNorm}");
        Require(WarmupSteps >= 0, $"warmup_steps must be >= 0, got {WarmupSteps}");
        Require(LearningRateSchedule.Kinds.Contains(LrScheduler), $"lr_scheduler: expected {string.Join(", ", LearningRateSchedule.Kinds)}, got {SharpTuneException.Quote(LrScheduler)}");
        Require(LossOn is "response" or "all", $"loss_on: expected response or all, got {SharpTuneException.Quote(LossOn)}");
        Fraction(ValidationFraction, "validation_fraction", closedAtOne: false);
        Require(OnBadRow is "error" or "skip", $"on_bad_row: expected error or skip, got {SharpTuneException.Quote(OnBadRow)}");
        Require(Datasets.Count > 0, "datasets: at least one dataset is needed");
        Require(WeightQuantization.Kinds.Contains(Quantization), $"quantization: expected {string.Join(", ", WeightQuantization.Kinds)}, got '{Quantization}'");
        Require(LmHeadQuantization is "none" or "int8", $"lm_head_quantization: expected none or int8, got '{LmHeadQuantization}'");
        Require(Peft is "lora" or "prompt_tuning", $"peft: expected lora or prompt_tuning, got '{Peft}'");
        Require(NumVirtualTokens >= 1, $"num_virtual_tokens must be at least 1, got {NumVirtualTokens}");
        Require(!(Peft == "prompt_tuning" && UseDora), "use_dora applies to peft: lora, not prompt_tuning");
        Require(Optimizer is "adamw" or "adamw_8bit", $"optimizer: expected adamw or adamw_8bit, got '{Optimizer}'");
        Require(LossChunk is >= 16 and <= 1 << 24, $"loss_chunk must be from 16 to {1 << 24}, got {LossChunk}");
        Require(KeepCheckpoints >= 1, $"keep_checkpoints must be at least 1, got {KeepCheckpoints}");
        Require(!ActivationOffload || ActivationCheckpointing, "activation_offload needs activation_checkpointing: true (it moves the checkpoints' saved inputs)");
        Require(CheckpointLayers >= 0, $"checkpoint_layers must be 0 (all layers) or more, got {CheckpointLayers}");
        Require(CheckpointLayers == 0 || ActivationCheckpointing, "checkpoint_layers needs activation_checkpointing: true");
        Require(CheckpointKeepMlp >= 0, $"checkpoint_keep_mlp must be 0 (none) or more, got {CheckpointKeepMlp}");
        Require(CheckpointKeepMlp == 0 || ActivationCheckpointing, "checkpoint_keep_mlp needs activation_checkpointing: true");
        Require(CheckpointKeepMlpBudget >= 0 && double.IsFinite(CheckpointKeepMlpBudget), $"checkpoint_keep_mlp_budget must be 0 (off) or a number of GiB > 0, got {CheckpointKeepMlpBudget}");
        Require(CheckpointKeepMlpBudget == 0 || ActivationCheckpointing, "checkpoint_keep_mlp_budget needs activation_checkpointing: true");
        Require(CheckpointKeepMlpBudget == 0 || CheckpointKeepMlp == 0, "checkpoint_keep_mlp_budget chooses checkpoint_keep_mlp: set one of them, not both");
        Require(MlpChunk == 0 || MlpChunk is >= 16 and <= 1 << 24, $"mlp_chunk must be 0 (off) or from 16 to {1 << 24}, got {MlpChunk}");
        Require(MlpChunk == 0 || ActivationCheckpointing, "mlp_chunk needs activation_checkpointing: true (it splits the recomputation of a layer)");
        Require(EmbeddingOnHost is "auto" or "true" or "false", $"embedding_on_host: expected auto, true or false, got {SharpTuneException.Quote(EmbeddingOnHost)}");
        Require(Comparisons >= 0, $"comparisons must be 0 or more, got {Comparisons}");
        Require(OutputDir.Length > 0, "output_dir must not be empty");
        Lora.Validate();
    }

    public LoraOptions Lora => new(LoraRank, LoraAlpha, LoraDropout, UseRslora,
        TargetModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), UseDora);
}

/// <summary>Describes a <see cref="TrainOptions"/> setting for `train --help` and docs/training.md.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingAttribute(string meaning) : Attribute
{
    public string Meaning { get; } = meaning;
    /// <summary>The accepted values or range, in words, when the type alone does not say it.</summary>
    public string? Allowed { get; init; }
}

/// <summary>One recipe key / flag: its meaning, its type in words, its default and the values it takes.</summary>
public sealed record SettingInfo(string Key, string Meaning, string Type, string Default, string? Allowed)
{
    public string Flag => "--" + Key.Replace('_', '-');
    /// <summary>The line shown by `train --help`.</summary>
    public string HelpText => $"{Meaning} [{Type}{(Allowed is null ? "" : $": {Allowed}")}; default {Default}]";
}
