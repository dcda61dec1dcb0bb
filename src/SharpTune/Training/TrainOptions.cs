using System.Globalization;
using System.Reflection;
using System.Text;
using YamlDotNet.RepresentationModel;
using PromptFormats = SharpTune.Data.PromptFormat;

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

    // ---- LoRA
    public int LoraRank { get; init; } = 16;
    public double LoraAlpha { get; init; } = 16;
    public double LoraDropout { get; init; }
    public bool UseRslora { get; init; }
    /// <summary>Comma-separated projections: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj.</summary>
    public string TargetModules { get; init; } = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";

    // ---- optimization
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
            throw new SharpTuneException($"{where}: unknown setting {ErrorText.Quote(key)}{Suggest(k)}");
        object converted;
        try
        {
            converted = prop.PropertyType switch
            {
                var t when t == typeof(string) => value,
                var t when t == typeof(int) => int.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(long) => long.Parse(value, CultureInfo.InvariantCulture),
                var t when t == typeof(double) => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture) is var d && double.IsFinite(d) ? d
                    : throw new SharpTuneException($"{where}: '{key}' expects a finite number, got {ErrorText.Quote(value)}"),
                var t when t == typeof(bool) => bool.Parse(value),
                var t => throw new InvalidOperationException($"no conversion to {t}"),
            };
        }
        catch (FormatException)
        {
            throw new SharpTuneException($"{where}: '{key}' expects {TypeName(prop.PropertyType)}, got {ErrorText.Quote(value)}");
        }
        catch (OverflowException)
        {
            throw new SharpTuneException($"{where}: '{key}' value {ErrorText.Quote(value)} is out of range");
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
        if (!File.Exists(path) && !Directory.Exists(path)) throw new SharpTuneException($"{path}: recipe not found");
        return FromYamlText(InputFile.ReadAllText(path), path, start);
    }

    /// <summary>Reads recipe text; <paramref name="path"/> names it in errors.</summary>
    public static TrainOptions FromYamlText(string text, string path, TrainOptions? start = null)
    {
        var yaml = new YamlStream();
        try
        {
            CheckDepth(text, path);
            yaml.Load(new StringReader(text));
        }
        catch (YamlDotNet.Core.YamlException e) { throw new SharpTuneException($"{path}:{e.Start.Line}: invalid YAML ({ErrorText.OneLine(e.Message, 160)})"); }
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
            string value = v is YamlScalarNode vs ? vs.Value ?? "" : throw new SharpTuneException($"{at}: {ErrorText.Quote(key)} expects a single value");
            spec = key switch
            {
                "source" => spec with { Source = value },
                "config" => spec with { Config = value },
                "split" => spec with { Split = value },
                "rows" => spec with { Rows = int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var r) && r >= 0 ? r : throw new SharpTuneException($"{at}: 'rows' expects a whole number >= 0, got {ErrorText.Quote(value)}") },
                "format" => spec with { Format = value },
                "ratio" => spec with { Ratio = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var q) && q > 0 && double.IsFinite(q) ? q : throw new SharpTuneException($"{at}: 'ratio' expects a finite number > 0, got {ErrorText.Quote(value)}") },
                "columns" => spec with { Columns = value },
                _ => throw new SharpTuneException($"{at}: unknown dataset setting {ErrorText.Quote(key)} (source, config, split, rows, format, ratio, columns)"),
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
        Positive(LearningRate, "learning_rate");
        Require(LearningRate <= 10, $"learning_rate must be at most 10, got {LearningRate}");
        Require(WeightDecay >= 0 && WeightDecay <= 1, $"weight_decay must be in [0, 1], got {WeightDecay}");
        Fraction(AdamBeta1, "adam_beta1", closedAtOne: false);
        Fraction(AdamBeta2, "adam_beta2", closedAtOne: false);
        Positive(AdamEpsilon, "adam_epsilon");
        Require(MaxGradNorm >= 0 && double.IsFinite(MaxGradNorm), $"max_grad_norm must be a finite number >= 0 (0 = off), got {MaxGradNorm}");
        Require(WarmupSteps >= 0, $"warmup_steps must be >= 0, got {WarmupSteps}");
        Require(LearningRateSchedule.Kinds.Contains(LrScheduler), $"lr_scheduler: expected {string.Join(", ", LearningRateSchedule.Kinds)}, got {ErrorText.Quote(LrScheduler)}");
        Require(LossOn is "response" or "all", $"loss_on: expected response or all, got {ErrorText.Quote(LossOn)}");
        Require(PromptFormats.Names.Contains(PromptFormat.ToLowerInvariant()),
            $"prompt_format: expected {string.Join(", ", PromptFormats.Names)}, got {ErrorText.Quote(PromptFormat)}");
        Fraction(ValidationFraction, "validation_fraction", closedAtOne: false);
        Require(Datasets.Count > 0, "datasets: at least one dataset is needed");
        Require(LossChunk is >= 16 and <= 1 << 24, $"loss_chunk must be from 16 to {1 << 24}, got {LossChunk}");
        Require(KeepCheckpoints >= 1, $"keep_checkpoints must be at least 1, got {KeepCheckpoints}");
        Require(OutputDir.Length > 0, "output_dir must not be empty");
        Lora.Validate();
    }

    public Peft.LoraOptions Lora => new(LoraRank, LoraAlpha, LoraDropout, UseRslora,
        TargetModules.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
