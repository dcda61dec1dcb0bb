using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Serialization;
using SharpTune.Data;
using SharpTune.Peft;
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
    [Setting("Comma-separated projections that get adapters", Allowed = "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj")]
    public string TargetModules { get; init; } = string.Join(",", LoraDefaults.Targets);

    // ---- optimization
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
            throw new SharpTuneException($"{where}: unknown setting '{key}'{Suggest(k)}");
        object converted;
        try
        {
            converted = prop.PropertyType switch
            {
                var t when t == typeof(string) => value,
                var t when t == typeof(int) => int.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(long) => long.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(double) => double.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(bool) => bool.Parse(value),
                var t when t == typeof(PromptStyle) => PromptStyles.TryParse(value)
                    ?? throw new SharpTuneException($"{where}: '{key}' expects one of {string.Join(", ", PromptStyles.Names)}, got '{value}'"),
                var t => throw new InvalidOperationException($"no conversion to {t}"),
            };
        }
        catch (FormatException)
        {
            throw new SharpTuneException($"{where}: '{key}' expects {TypeName(prop.PropertyType)}, got '{value}'");
        }
        catch (OverflowException)
        {
            throw new SharpTuneException($"{where}: '{key}' value '{value}' is out of range");
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
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: recipe not found");
        return FromYamlText(File.ReadAllText(path), path, start);
    }

    /// <summary>Reads a YAML recipe's text; <paramref name="path"/> names it in messages.</summary>
    public static TrainOptions FromYamlText(string text, string path, TrainOptions? start = null)
    {
        var yaml = new YamlStream();
        try { yaml.Load(new StringReader(text)); }
        catch (YamlDotNet.Core.YamlException e) { throw new SharpTuneException($"{path}:{e.Start.Line}: invalid YAML ({e.Message})"); }
        var options = start ?? new TrainOptions();
        if (yaml.Documents.Count == 0) return options;
        if (yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new SharpTuneException($"{path}: a recipe is a mapping of settings (key: value)");
        foreach (var (keyNode, valueNode) in root.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            string where = $"{path}:{keyNode.Start.Line}";
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

    static DatasetSpec ParseDataset(YamlNode node, string path)
    {
        string where = $"{path}:{node.Start.Line}";
        if (node is YamlScalarNode s) return new DatasetSpec { Source = s.Value ?? "" };
        if (node is not YamlMappingNode map) throw new SharpTuneException($"{where}: a dataset is a mapping (source, config, split, rows, format, ratio, columns)");
        var spec = new DatasetSpec();
        foreach (var (k, v) in map.Children)
        {
            string key = ((YamlScalarNode)k).Value ?? "", value = (v as YamlScalarNode)?.Value ?? "";
            string at = $"{path}:{k.Start.Line}";
            spec = key switch
            {
                "source" => spec with { Source = value },
                "config" => spec with { Config = value },
                "split" => spec with { Split = value },
                "rows" => spec with { Rows = int.TryParse(value, out var r) && r >= 0 ? r : throw new SharpTuneException($"{at}: 'rows' expects a whole number >= 0, got '{value}'") },
                "format" => spec with { Format = value },
                "ratio" => spec with { Ratio = double.TryParse(value, CultureInfo.InvariantCulture, out var q) && q > 0 ? q : throw new SharpTuneException($"{at}: 'ratio' expects a number > 0, got '{value}'") },
                "columns" => spec with { Columns = value },
                _ => throw new SharpTuneException($"{at}: unknown dataset setting '{key}' (source, config, split, rows, format, ratio, columns)"),
            };
        }
        return spec;
    }

    /// <summary>Checks ranges and combinations before any work starts.</summary>
    public void Validate()
    {
        void Require(bool ok, string message) { if (!ok) throw new SharpTuneException(message); }
        Require(MaxLength >= 16, $"max_length must be at least 16, got {MaxLength}");
        Require(BatchSize >= 1, $"batch_size must be at least 1, got {BatchSize}");
        Require(GradientAccumulation >= 1, $"gradient_accumulation must be at least 1, got {GradientAccumulation}");
        Require(MaxSteps >= 0, $"max_steps must be >= 0, got {MaxSteps}");
        Require(MaxSteps > 0 || Epochs >= 1, "set max_steps or epochs");
        Require(MaxSteps == 0 || Epochs == 1, $"epochs {Epochs} would be ignored because max_steps is {MaxSteps}; set max_steps: 0 to train by epochs");
        Require(LogEvery >= 1, $"log_every must be at least 1, got {LogEvery}");
        Require(EvalEvery >= 0 && SaveEvery >= 0 && EarlyStoppingPatience >= 0, "eval_every, save_every and early_stopping_patience must be >= 0");
        Require(EarlyStoppingThreshold >= 0 && double.IsFinite(EarlyStoppingThreshold), "early_stopping_threshold must be a finite number >= 0");
        Require(LearningRate > 0, $"learning_rate must be > 0, got {LearningRate}");
        Require(WarmupSteps >= 0, $"warmup_steps must be >= 0, got {WarmupSteps}");
        Require(LearningRateSchedule.Kinds.Contains(LrScheduler), $"lr_scheduler: expected {string.Join(", ", LearningRateSchedule.Kinds)}, got '{LrScheduler}'");
        Require(LossOn is "response" or "all", $"loss_on: expected response or all, got '{LossOn}'");
        Require(ValidationFraction is >= 0 and < 1, $"validation_fraction must be in [0, 1), got {ValidationFraction}");
        Require(OnBadRow is "error" or "skip", $"on_bad_row: expected error or skip, got '{OnBadRow}'");
        Require(Datasets.Count > 0, "datasets: at least one dataset is needed");
        Require(LossChunk >= 16, $"loss_chunk must be at least 16, got {LossChunk}");
        Require(KeepCheckpoints >= 1, $"keep_checkpoints must be at least 1, got {KeepCheckpoints}");
        Require(!ActivationOffload || ActivationCheckpointing, "activation_offload needs activation_checkpointing: true (it moves the checkpoints' saved inputs)");
        Require(Comparisons >= 0, $"comparisons must be 0 or more, got {Comparisons}");
    }

    public LoraOptions Lora => new(LoraRank, LoraAlpha, LoraDropout, UseRslora,
        TargetModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
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
