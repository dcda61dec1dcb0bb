using System.Globalization;
using System.Reflection;
using System.Text;
using SharpTune.Quantization;
using YamlDotNet.RepresentationModel;

namespace SharpTune.Training;

/// <summary>One dataset of a run; several are mixed by <see cref="Ratio"/>.</summary>
public sealed record DatasetSpec
{
    /// <summary>File (.json, .jsonl, .csv, .tsv, .parquet), folder, Hub id org/name, or "sample" for the bundled sample.</summary>
    public string Source { get; init; } = "sample";
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
    /// <summary>Base model: folder or Hub id. Empty: the tiny demo model (created on first use).</summary>
    public string Model { get; init; } = "";
    public IReadOnlyList<DatasetSpec> Datasets { get; init; } = [new DatasetSpec()];
    /// <summary>r1-reasoning (instruction, question, then &lt;think&gt;reasoning&lt;/think&gt; answer) or chat-template.</summary>
    public string PromptFormat { get; init; } = "r1-reasoning";
    /// <summary>Tokens per training sequence; longer examples are truncated (and counted).</summary>
    public int MaxLength { get; init; } = 2048;
    /// <summary>Pack several short examples into one sequence (attention and positions restart per example).</summary>
    public bool Packing { get; init; }
    /// <summary>response (loss on the answer only) or all.</summary>
    public string LossOn { get; init; } = "response";
    /// <summary>Share of the data held out for evaluation (0 = none).</summary>
    public double ValidationFraction { get; init; }

    // ---- adapter
    /// <summary>lora (LoRA, or DoRA with use_dora) or prompt_tuning (trainable virtual tokens; the lora_* keys do not apply).</summary>
    public string Peft { get; init; } = "lora";
    /// <summary>Virtual tokens of prompt tuning.</summary>
    public int NumVirtualTokens { get; init; } = 20;
    public int LoraRank { get; init; } = 16;
    public double LoraAlpha { get; init; } = 16;
    public double LoraDropout { get; init; }
    public bool UseRslora { get; init; }
    /// <summary>DoRA: a trainable magnitude per output row on top of LoRA (PEFT's use_dora).</summary>
    public bool UseDora { get; init; }
    /// <summary>Comma-separated projections: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj.</summary>
    public string TargetModules { get; init; } = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";

    // ---- quantization (QLoRA)
    /// <summary>The frozen base's projections: none (dtype), nf4 or fp4 (4 bits in blocks of 64, double-quantized
    /// absmax), int8 (row-wise). A bitsandbytes 4-bit checkpoint loads as stored.</summary>
    public string Quantization { get; init; } = "none";

    // ---- optimization
    /// <summary>adamw (fp32 moments) or adamw_8bit (both moments block-wise 8-bit, Dettmers et al. 2022).</summary>
    public string Optimizer { get; init; } = "adamw";
    public double LearningRate { get; init; } = 2e-4;
    public double WeightDecay { get; init; } = 0.01;
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>linear, cosine or constant, after <see cref="WarmupSteps"/> of linear warmup.</summary>
    public string LrScheduler { get; init; } = "linear";
    public int WarmupSteps { get; init; } = 5;
    /// <summary>Optimizer steps; 0 means run <see cref="Epochs"/> epochs.</summary>
    public int MaxSteps { get; init; } = 60;
    public int Epochs { get; init; } = 1;
    /// <summary>Sequences per forward pass.</summary>
    public int BatchSize { get; init; } = 2;
    /// <summary>Forward passes per optimizer step (effective batch = batch_size × this).</summary>
    public int GradientAccumulation { get; init; } = 4;
    /// <summary>Clip the global gradient norm to this (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    public long Seed { get; init; } = 3407;

    // ---- runtime
    public string Device { get; init; } = "auto";
    public string DType { get; init; } = "auto";
    /// <summary>Recompute each layer in backward instead of keeping its activations (less memory, ~30% slower).</summary>
    public bool ActivationCheckpointing { get; init; }
    /// <summary>Tokens per chunk of the lm_head + loss computation.</summary>
    public int LossChunk { get; init; } = 1024;

    // ---- logging, evaluation, checkpoints
    public string OutputDir { get; init; } = "outputs";
    public int LogEvery { get; init; } = 1;
    /// <summary>Evaluate on the validation split every N steps (0 = at the end only).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Stop after this many evaluations without improvement (0 = never).</summary>
    public int EarlyStoppingPatience { get; init; }
    /// <summary>Save a resumable checkpoint every N steps (0 = at the end only).</summary>
    public int SaveEvery { get; init; } = 20;
    /// <summary>Keep only the newest N checkpoints.</summary>
    public int KeepCheckpoints { get; init; } = 2;
    /// <summary>Continue from the newest checkpoint in the output folder, if there is one.</summary>
    public bool Resume { get; init; } = true;

    // ---- setting by name (recipes and flags)

    static readonly Dictionary<string, PropertyInfo> Settable = typeof(TrainOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.Name != nameof(Datasets))
        .ToDictionary(p => SnakeCase(p.Name));

    /// <summary>The snake_case keys a recipe may set (besides <c>datasets</c>).</summary>
    public static IReadOnlyCollection<string> Keys => Settable.Keys;

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

    static string Suggest(string key)
    {
        var best = Settable.Keys.Select(k => (k, d: Distance(k, key))).OrderBy(x => x.d).First();
        return best.d <= Math.Max(2, key.Length / 3) ? $"; did you mean '{best.k}'?" : $"; known settings: {string.Join(", ", Settable.Keys.Order())}, datasets";
    }

    static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    /// <summary>Reads a YAML recipe: a mapping of settings, with <c>datasets</c> as a list of mappings.</summary>
    public static TrainOptions FromYaml(string path, TrainOptions? start = null)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: recipe not found");
        var yaml = new YamlStream();
        try { yaml.Load(new StringReader(File.ReadAllText(path))); }
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
        Require(LearningRate > 0, $"learning_rate must be > 0, got {LearningRate}");
        Require(WarmupSteps >= 0, $"warmup_steps must be >= 0, got {WarmupSteps}");
        Require(LearningRateSchedule.Kinds.Contains(LrScheduler), $"lr_scheduler: expected {string.Join(", ", LearningRateSchedule.Kinds)}, got '{LrScheduler}'");
        Require(LossOn is "response" or "all", $"loss_on: expected response or all, got '{LossOn}'");
        Require(ValidationFraction is >= 0 and < 1, $"validation_fraction must be in [0, 1), got {ValidationFraction}");
        Require(Datasets.Count > 0, "datasets: at least one dataset is needed");
        Require(WeightQuantization.Kinds.Contains(Quantization), $"quantization: expected {string.Join(", ", WeightQuantization.Kinds)}, got '{Quantization}'");
        Require(Peft is "lora" or "prompt_tuning", $"peft: expected lora or prompt_tuning, got '{Peft}'");
        Require(NumVirtualTokens >= 1, $"num_virtual_tokens must be at least 1, got {NumVirtualTokens}");
        Require(!(Peft == "prompt_tuning" && UseDora), "use_dora applies to peft: lora, not prompt_tuning");
        Require(Optimizer is "adamw" or "adamw_8bit", $"optimizer: expected adamw or adamw_8bit, got '{Optimizer}'");
        Require(LossChunk >= 16, $"loss_chunk must be at least 16, got {LossChunk}");
        Require(KeepCheckpoints >= 1, $"keep_checkpoints must be at least 1, got {KeepCheckpoints}");
    }

    public Peft.LoraOptions Lora => new(LoraRank, LoraAlpha, LoraDropout, UseRslora,
        TargetModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), UseDora);
}
