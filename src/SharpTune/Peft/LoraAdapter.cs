using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Parameter = TorchSharp.Modules.Parameter;

namespace SharpTune.Peft;

/// <summary>LoRA settings, as PEFT names them. Targets are the projections' short names.</summary>
public sealed record LoraOptions(
    int Rank = 16,
    double Alpha = 16,
    double Dropout = 0,
    bool UseRslora = false,
    IReadOnlyList<string>? TargetModules = null)
{
    public static readonly IReadOnlyList<string> AllProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public IReadOnlyList<string> Targets => TargetModules is { Count: > 0 } t ? t : AllProjections;

    /// <summary>Multiplier of B·A: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    public void Validate()
    {
        if (Rank <= 0) throw new SharpTuneException($"lora rank must be positive, got {Rank}");
        if (Alpha <= 0) throw new SharpTuneException($"lora alpha must be positive, got {Alpha}");
        if (Dropout is < 0 or >= 1) throw new SharpTuneException($"lora dropout must be in [0, 1), got {Dropout}");
        var unknown = Targets.Except(AllProjections).ToList();
        if (unknown.Count > 0)
            throw new SharpTuneException($"lora target modules {string.Join(", ", unknown)} unknown; choose from {string.Join(", ", AllProjections)}");
    }
}

/// <summary>
/// Low-rank adapters on a frozen model's projections: y = W x + b + (α/r) · B A dropout(x), with A [r, in] and
/// B [out, r] trainable and kept in fp32 (cast to the activation dtype in forward). Saved and loaded in PEFT's
/// format (adapter_config.json + adapter_model.safetensors, names base_model.model.&lt;module&gt;.lora_A.weight).
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    public sealed record Pair(Linear Target, Parameter A, Parameter B)
    {
        internal Func<Tensor, Tensor>? Forward { get; init; }
    }

    readonly List<Pair> _pairs = [];
    readonly Tensor _values, _gradients;
    public LoraOptions Options { get; }

    /// <summary>Every A and B, as one flat fp32 buffer: the parameters are views into it, and their gradients
    /// views into <see cref="Gradients"/>. The optimizer, clipping and zeroing then take a few kernels for all
    /// adapters instead of several per tensor (392 tensors on a 28-layer model).</summary>
    public Tensor Values => _values;
    public Tensor Gradients => _gradients;
    public IReadOnlyList<Pair> Pairs => _pairs;
    public IEnumerable<Parameter> Parameters => _pairs.SelectMany(p => new[] { p.A, p.B });
    public long TrainableParameterCount => _pairs.Sum(p => p.A.numel() + p.B.numel());

    /// <summary>Dropout is active only while training.</summary>
    public bool Training { get; set; }

    /// <summary>Lays out the adapters of <paramref name="targets"/> in the flat buffers and fills them with <paramref name="init"/>'s values.</summary>
    LoraAdapter(LoraOptions options, IReadOnlyList<Linear> targets, Device device, Func<Linear, (Tensor A, Tensor B)> init)
    {
        Options = options;
        long r = options.Rank;
        long total = targets.Sum(t => r * t.InFeatures + t.OutFeatures * r);
        _values = zeros([total], float32, device).DetachFromDisposeScope();
        _gradients = zeros([total], float32, device).DetachFromDisposeScope();
        long offset = 0;
        Parameter View(long[] shape, Tensor value)
        {
            long n = shape[0] * shape[1];
            using (no_grad()) _values.narrow(0, offset, n).copy_(value.reshape(n));
            var p = new Parameter(_values.narrow(0, offset, n).view(shape));
            p.DetachFromDisposeScope();
            p.grad = _gradients.narrow(0, offset, n).view(shape);   // autograd accumulates into it in place
            offset += n;
            return p;
        }
        foreach (var target in targets)
        {
            if (target.Adapter is not null) throw new SharpTuneException($"{target.Name} already has an adapter");
            using var scope = NewDisposeScope();
            var (a, b) = init(target);
            Add(target, View([r, target.InFeatures], a), View([target.OutFeatures, r], b));
        }
    }

    /// <summary>Attaches fresh adapters as PEFT initializes them: A ~ U(-1/√in, 1/√in) (kaiming-uniform with
    /// a=√5), B = 0, so the model's output is unchanged until training moves B.</summary>
    public static LoraAdapter Attach(CausalLM model, LoraOptions options, long seed = 0)
    {
        options.Validate();
        using var gen = new Generator((ulong)seed);
        return new LoraAdapter(options, Targets(model, options).ToList(), model.Device, linear =>
        {
            double bound = 1 / Math.Sqrt(linear.InFeatures);
            return (empty([options.Rank, linear.InFeatures], float32).uniform_(-bound, bound, gen), zeros([linear.OutFeatures, options.Rank], float32));
        });
    }

    static IEnumerable<Linear> Targets(CausalLM model, LoraOptions options) =>
        model.Projections.Where(l => options.Targets.Contains(ShortName(l.Name)));

    static string ShortName(string moduleName) => moduleName[(moduleName.LastIndexOf('.') + 1)..];

    void Add(Linear target, Parameter a, Parameter b)
    {
        double scaling = Options.Scaling, dropout = Options.Dropout;
        var pair = new Pair(target, a, b)
        {
            Forward = x =>
            {
                var input = dropout > 0 && Training ? F.dropout(x, dropout, training: true) : x;
                return F.linear(F.linear(input, a.to(x.dtype)), b.to(x.dtype)) * scaling;
            },
        };
        _pairs.Add(pair);
        target.Adapter = pair.Forward;
    }

    /// <summary>The A and B tensors of one decoder layer's adapters (what activation checkpointing must route gradients to).</summary>
    public IReadOnlyList<Tensor> TrainableOf(DecoderLayer layer) =>
        _pairs.Where(p => layer.Projections.Contains(p.Target)).SelectMany(p => new Tensor[] { p.A, p.B }).ToList();

    /// <summary>Whether the adapters take part in the model's forward (off: the base model's outputs).</summary>
    public bool Enabled
    {
        get => _pairs.Count == 0 || _pairs[0].Target.Adapter is not null;
        set { foreach (var p in _pairs) p.Target.Adapter = value ? p.Forward : null; }
    }

    /// <summary>Removes the adapters from the model (the model is as before attaching).</summary>
    public void Detach() => Enabled = false;

    public static string PeftName(string moduleName, string ab) => $"base_model.model.{moduleName}.{ab}.weight";

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (atomically) into <paramref name="dir"/>.</summary>
    public void Save(string dir, string? baseModel = null)
    {
        Directory.CreateDirectory(dir);
        var tensors = _pairs.SelectMany(p => new (string, Tensor)[] { (PeftName(p.Target.Name, "lora_A"), p.A), (PeftName(p.Target.Name, "lora_B"), p.B) }).ToList();
        SafetensorsFile.Write(Path.Combine(dir, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = Options.Rank,
            ["lora_alpha"] = Options.Alpha,
            ["lora_dropout"] = Options.Dropout,
            ["use_rslora"] = Options.UseRslora,
            ["target_modules"] = new JsonArray(Options.Targets.Select(t => (JsonNode?)t).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["use_dora"] = false,
            ["modules_to_save"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads a PEFT LoRA adapter folder and attaches it to <paramref name="model"/>.</summary>
    public static LoraAdapter Load(string dir, CausalLM model)
    {
        string configPath = Path.Combine(dir, "adapter_config.json");
        string weightsPath = Path.Combine(dir, "adapter_model.safetensors");
        if (!File.Exists(configPath)) throw new SharpTuneException($"{configPath}: not found; an adapter folder needs adapter_config.json and adapter_model.safetensors");
        var config = JsonFile.ReadObject(configPath);

        string type = config["peft_type"]?.GetValue<string>() ?? "LORA";
        if (type != "LORA") throw new SharpTuneException($"{configPath}: peft_type {type} is not supported (only LORA)");
        if (config["use_dora"]?.GetValue<bool>() == true) throw new SharpTuneException($"{configPath}: DoRA adapters are not supported yet");
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (config[key] is JsonObject { Count: > 0 }) throw new SharpTuneException($"{configPath}: per-module {key} is not supported");
        if (config["bias"]?.GetValue<string>() is { } bias && bias != "none") throw new SharpTuneException($"{configPath}: bias '{bias}' is not supported (only 'none')");

        var targetNames = config["target_modules"] switch
        {
            JsonArray arr => arr.Select(n => n!.GetValue<string>()).ToList(),
            JsonValue v => throw new SharpTuneException($"{configPath}: target_modules as a regex ('{v}') is not supported; list the module names"),
            _ => [.. LoraOptions.AllProjections],
        };
        var options = new LoraOptions(
            Rank: config["r"]?.GetValue<int>() ?? 8,
            Alpha: config["lora_alpha"]?.GetValue<double>() ?? 8,
            Dropout: config["lora_dropout"]?.GetValue<double>() ?? 0,
            UseRslora: config["use_rslora"]?.GetValue<bool>() ?? false,
            TargetModules: targetNames);
        options.Validate();

        using var file = SafetensorsFile.Open(weightsPath);
        var targets = Targets(model, options).ToList();
        var expected = new HashSet<string>();
        foreach (var linear in targets)
        {
            string nameA = PeftName(linear.Name, "lora_A"), nameB = PeftName(linear.Name, "lora_B");
            expected.Add(nameA); expected.Add(nameB);
            if (!file.Entries.TryGetValue(nameA, out var a) || !file.Entries.TryGetValue(nameB, out var b))
                throw new SharpTuneException($"{weightsPath}: no LoRA weights for {linear.Name} ({nameA}); is the adapter for another model?");
            if (!a.Shape.SequenceEqual(new long[] { options.Rank, linear.InFeatures }) || !b.Shape.SequenceEqual(new long[] { linear.OutFeatures, options.Rank }))
                throw new SharpTuneException($"{weightsPath}: {linear.Name} has lora_A [{string.Join(", ", a.Shape)}] and lora_B [{string.Join(", ", b.Shape)}], "
                    + $"the model needs [{options.Rank}, {linear.InFeatures}] and [{linear.OutFeatures}, {options.Rank}]");
        }
        var extra = file.Entries.Keys.Where(n => !expected.Contains(n)).ToList();
        if (extra.Count > 0)
            throw new SharpTuneException($"{weightsPath}: {extra.Count} tensors match no module of this model (e.g. {extra[0]})");
        return new LoraAdapter(options, targets, model.Device, linear =>
            (file.Read(PeftName(linear.Name, "lora_A")).to(float32), file.Read(PeftName(linear.Name, "lora_B")).to(float32)));
    }

    public void Dispose()
    {
        Detach();
        foreach (var p in _pairs) { p.A.Dispose(); p.B.Dispose(); }
        _values.Dispose();
        _gradients.Dispose();
    }
}
