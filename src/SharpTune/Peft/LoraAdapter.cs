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
    IReadOnlyList<string>? TargetModules = null,
    bool UseDora = false)
{
    public static readonly IReadOnlyList<string> AllProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public IReadOnlyList<string> Targets => TargetModules is { Count: > 0 } t ? t : AllProjections;

    /// <summary>Multiplier of B·A: alpha / r, or alpha / √r with rsLoRA.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    public void Validate()
    {
        if (Rank is <= 0 or > 65536) throw new SharpTuneException($"lora rank must be from 1 to 65536, got {Rank}");
        if (!(Alpha > 0 && double.IsFinite(Alpha))) throw new SharpTuneException($"lora alpha must be a finite number > 0, got {Alpha}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new SharpTuneException($"lora dropout must be in [0, 1), got {Dropout}");
        var unknown = Targets.Except(AllProjections).ToList();
        if (unknown.Count > 0)
            throw new SharpTuneException($"lora target modules {string.Join(", ", unknown.Take(5).Select(u => SharpTuneException.Quote(u)))} unknown; choose from {string.Join(", ", AllProjections)}");
        if (Targets.Count == 0) throw new SharpTuneException($"lora target modules: none given; choose from {string.Join(", ", AllProjections)}");
    }
}

/// <summary>
/// Low-rank adapters on a frozen model's projections: y = W x + b + (α/r) · B A dropout(x), with A [r, in] and
/// B [out, r] trainable and kept in fp32 (cast to the activation dtype in forward). Saved and loaded in PEFT's
/// format (adapter_config.json + adapter_model.safetensors, names base_model.model.&lt;module&gt;.lora_A.weight).
/// With DoRA (Liu et al. 2024, PEFT's use_dora) each target also has a magnitude m [out] (PEFT's lora_magnitude_vector):
/// y = m / ‖W + s·BA‖_row ⊙ (W x + s·B A x) + b, the norm taken per output row and detached, as PEFT computes it.
/// </summary>
public sealed class LoraAdapter : IAdapter
{
    public sealed record Pair(Linear Target, Parameter A, Parameter B, Parameter? Magnitude = null)
    {
        internal Func<Tensor, Tensor, Tensor>? Forward { get; init; }
        internal Func<Tensor, Tensor>? Delta { get; init; }
        internal Func<LowRankFactors>? LowRank { get; init; }
    }

    readonly List<Pair> _pairs = [];
    readonly Tensor _values, _gradients;
    public LoraOptions Options { get; }

    // During a training step in bf16/fp16 (not with DoRA): A and B copied once into the activation dtype, in the layout of
    // Values, instead of cast at each use (forward, recomputation, backward: ~6 small kernels per projection and step).
    // Their gradients, in the same dtype, join the fp32 Gradients after each backward: the same values the casts'
    // backward gave.
    Tensor? _compute, _computeGradients;
    (Parameter A, Parameter B)[]? _computeViews;
    bool _stepActive;

    /// <summary>Every A and B, as one flat fp32 buffer: the parameters are views into it, and their gradients
    /// views into <see cref="Gradients"/>. The optimizer, clipping and zeroing then take a few kernels for all
    /// adapters instead of several per tensor (392 tensors on a 28-layer model).</summary>
    public Tensor Values => _values;
    public Tensor Gradients => _gradients;
    public IReadOnlyList<Pair> Pairs => _pairs;
    public IEnumerable<Parameter> Parameters => _pairs.SelectMany(Trainable);
    public long TrainableParameterCount => Parameters.Sum(p => p.numel());
    static IEnumerable<Parameter> Trainable(Pair p) => p.Magnitude is null ? [p.A, p.B] : [p.A, p.B, p.Magnitude];

    /// <summary>Dropout is active only while training.</summary>
    public bool Training { get; set; }

    /// <summary>Lays out the adapters of <paramref name="targets"/> in the flat buffers and fills them with <paramref name="init"/>'s values.</summary>
    LoraAdapter(LoraOptions options, IReadOnlyList<Linear> targets, Device device, Func<Linear, (Tensor A, Tensor B, Tensor? Magnitude)> init)
    {
        Options = options;
        long r = options.Rank;
        long total = targets.Sum(t => r * t.InFeatures + t.OutFeatures * r + (options.UseDora ? t.OutFeatures : 0));
        _values = zeros([total], float32, device).DetachFromDisposeScope();
        _gradients = zeros([total], float32, device).DetachFromDisposeScope();
        long offset = 0;
        Parameter View(long[] shape, Tensor value)
        {
            long n = shape.Aggregate(1L, (x, y) => x * y);
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
            var (a, b, m) = init(target);
            Add(target, View([r, target.InFeatures], a), View([target.OutFeatures, r], b), options.UseDora ? View([target.OutFeatures], m!) : null);
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
            var a = empty([options.Rank, linear.InFeatures], float32).uniform_(-bound, bound, gen);
            var b = zeros([linear.OutFeatures, options.Rank], float32);
            return (a, b, options.UseDora ? RowNorm(linear, a, b, options.Scaling) : null);   // DoRA starts at m = ‖W‖ (B = 0)
        });
    }

    static IEnumerable<Linear> Targets(CausalLM model, LoraOptions options) =>
        model.Projections.Where(l => options.Targets.Contains(ShortName(l.Name)));

    static string ShortName(string moduleName) => moduleName[(moduleName.LastIndexOf('.') + 1)..];

    /// <summary>‖W + s·B A‖ per output row, in fp32 on A's device, without gradient (DoRA's weight norm).</summary>
    static Tensor RowNorm(Linear target, Tensor a, Tensor b, double scaling)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = target.Weight.Dense(float32).to(a.device);
        return (w + b.to(float32).matmul(a.to(float32)) * scaling).norm(1).MoveToOuterDisposeScope();
    }

    public void BeginStep(ScalarType computeType)
    {
        if (computeType == ScalarType.Float32 || Options.UseDora || _pairs.Count == 0) return;
        if (_compute is null || _compute.dtype != computeType) AllocateCompute(computeType);
        using (no_grad()) _compute!.copy_(_values);
        _stepActive = true;
    }

    public void CollectGradients()
    {
        if (!_stepActive) return;
        using var noGrad = no_grad();
        _gradients.add_(_computeGradients!);
        _computeGradients!.zero_();
    }

    public void EndStep() => _stepActive = false;

    void AllocateCompute(ScalarType dtype)
    {
        DisposeCompute();
        _compute = zeros(_values.shape, dtype, _values.device).DetachFromDisposeScope();
        _computeGradients = zeros(_values.shape, dtype, _values.device).DetachFromDisposeScope();
        long offset = 0;
        Parameter View(long[] shape)
        {
            long n = shape.Aggregate(1L, (x, y) => x * y);
            var p = new Parameter(_compute.narrow(0, offset, n).view(shape));
            p.DetachFromDisposeScope();
            p.grad = _computeGradients.narrow(0, offset, n).view(shape);
            offset += n;
            return p;
        }
        _computeViews = _pairs.Select(p => (View(p.A.shape), View(p.B.shape))).ToArray();   // A then B per pair, as in Values
    }

    void DisposeCompute()
    {
        foreach (var (a, b) in _computeViews ?? []) { a.Dispose(); b.Dispose(); }
        _compute?.Dispose();
        _computeGradients?.Dispose();
        (_compute, _computeGradients, _computeViews) = (null, null, null);
    }

    void Add(Linear target, Parameter a, Parameter b, Parameter? magnitude)
    {
        double scaling = Options.Scaling, dropout = Options.Dropout;
        int index = _pairs.Count;
        var pair = new Pair(target, a, b, magnitude)
        {
            Forward = (x, y) =>
            {
                // y + scaling · (x Aᵀ) Bᵀ with the scale and the sum inside one matrix product (addmm): three kernels
                // fewer per projection than separate product, scaling and addition, and one rounding instead of three.
                var input = dropout > 0 && Training ? F.dropout(x, dropout, training: true) : x;
                if (magnitude is not null)
                {
                    // DoRA: y + (m/‖W + sBA‖ − 1) ⊙ W x + m/‖W + sBA‖ ⊙ s·B A x, with W x the base output less its bias
                    using var scope = NewDisposeScope();
                    var lora = F.linear(F.linear(input, a.to(x.dtype)), b.to(x.dtype));
                    var scale = (magnitude / RowNorm(target, a, b, scaling).to(x.device)).to(x.dtype);
                    var baseResult = ReferenceEquals(input, x) ? (target.Bias is null ? y : y - target.Bias) : target.Weight.Linear(input, null);
                    return (y + (scale - 1) * baseResult + scale * lora * scaling).MoveToOuterDisposeScope();
                }
                var (ac, bc) = _stepActive && x.dtype == _compute!.dtype ? _computeViews![index] : (a.to(x.dtype), b.to(x.dtype));
                var xa = F.linear(input, ac);                                             // [..., r]
                // y comes as rows [N, out], the dense frozen product's fresh output, which its own backward does not keep
                // (Linear.AdapterTakesRows): the update goes into it in place, where addmm out of place first copies y (two
                // more passes over the output: for gate and up the largest activations). Compressed weights: out of place
                // where autograd records (y is then FrozenLinear's output), in place where it does not (a checkpointed forward).
                if ((target.Weight is DenseWeight || !y.requires_grad) && y.dim() == 2)
                    return y.addmm_(xa, bc.t(), beta: 1, alpha: (float)scaling);
                long outF = y.shape[^1];
                return addmm(y.reshape(-1, outF), xa.reshape(-1, xa.shape[^1]), bc.t(), beta: 1, alpha: (float)scaling).view(y.shape);
            },
        };
        if (magnitude is null)
            pair = pair with
            {
                Delta = x =>
                {
                    // scaling · (x Aᵀ) Bᵀ alone (a recomputation's adapter term), as Forward computes it into y: the same
                    // dropout draw (same shape, same generator state) and the scale inside the product.
                    var input = dropout > 0 && Training ? F.dropout(x, dropout, training: true) : x;
                    var (ac, bc) = _stepActive && x.dtype == _compute!.dtype ? _computeViews![index] : (a.to(x.dtype), b.to(x.dtype));
                    var xa = F.linear(input, ac);
                    return addmm(empty([xa.shape[0], bc.shape[0]], x.dtype, x.device), xa, bc.t(), beta: 0, alpha: (float)scaling);
                },
            };
        if (magnitude is null && dropout == 0)
            pair = pair with
            {
                LowRank = () =>
                {
                    var (ac, bc) = _stepActive ? _computeViews![index] : (a, b);
                    return new LowRankFactors(ac, bc, scaling);
                },
            };
        _pairs.Add(pair);
        target.Adapter = pair.Forward;
        target.AdapterDelta = pair.Delta;
        target.LowRank = pair.LowRank;
        target.AdapterTakesRows = magnitude is null;
    }

    /// <summary>The A and B tensors of one decoder layer's adapters (what activation checkpointing must route gradients to).</summary>
    public IReadOnlyList<Tensor> TrainableOf(DecoderLayer layer) =>
        _pairs.Select((p, i) => (p, i)).Where(t => layer.Projections.Contains(t.p.Target))
            .SelectMany(t => _stepActive ? [_computeViews![t.i].A, _computeViews[t.i].B] : Trainable(t.p)).Cast<Tensor>().ToList();

    /// <summary>The A and B tensors (and DoRA's magnitude) of one projection's adapter, as <see cref="TrainableOf(DecoderLayer)"/> lists them.</summary>
    public IReadOnlyList<Tensor> TrainableOf(Linear projection) =>
        _pairs.Select((p, i) => (p, i)).Where(t => t.p.Target == projection)
            .SelectMany(t => _stepActive ? [_computeViews![t.i].A, _computeViews[t.i].B] : Trainable(t.p)).Cast<Tensor>().ToList();

    public void Restore(SafetensorsFile weights)
    {
        using var noGrad = no_grad();
        foreach (var pair in _pairs)
        {
            using var a = weights.Read(PeftName(pair.Target.Name, "lora_A"));
            using var b = weights.Read(PeftName(pair.Target.Name, "lora_B"));
            pair.A.copy_(a);
            pair.B.copy_(b);
            if (pair.Magnitude is null) continue;
            using var m = weights.Read(MagnitudeName(pair.Target.Name));
            pair.Magnitude.copy_(m);
        }
    }

    /// <summary>Whether the adapters take part in the model's forward (off: the base model's outputs).</summary>
    public bool Enabled
    {
        get => _pairs.Count == 0 || _pairs[0].Target.Adapter is not null;
        set
        {
            foreach (var p in _pairs)
            {
                p.Target.Adapter = value ? p.Forward : null;
                p.Target.AdapterDelta = value ? p.Delta : null;
                p.Target.LowRank = value ? p.LowRank : null;
                p.Target.AdapterTakesRows = value && p.Magnitude is null;
            }
        }
    }

    /// <summary>Removes the adapters from the model (the model is as before attaching).</summary>
    public void Detach() => Enabled = false;

    public static string PeftName(string moduleName, string ab) => $"base_model.model.{moduleName}.{ab}.weight";
    /// <summary>PEFT's name for a DoRA magnitude (its ".weight" suffix is dropped in saved files).</summary>
    public static string MagnitudeName(string moduleName) => $"base_model.model.{moduleName}.lora_magnitude_vector";

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (atomically) into <paramref name="dir"/>.</summary>
    public void Save(string dir, string? baseModel = null)
    {
        Directory.CreateDirectory(dir);
        var tensors = _pairs.SelectMany(p => p.Magnitude is null
            ? new (string, Tensor)[] { (PeftName(p.Target.Name, "lora_A"), p.A), (PeftName(p.Target.Name, "lora_B"), p.B) }
            : [(PeftName(p.Target.Name, "lora_A"), p.A), (PeftName(p.Target.Name, "lora_B"), p.B), (MagnitudeName(p.Target.Name), p.Magnitude)]).ToList();
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
            ["use_dora"] = Options.UseDora,
            ["modules_to_save"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads a PEFT adapter folder's adapter_config.json, refusing what this LoRA does not implement.</summary>
    public static LoraOptions ReadConfig(string dir)
    {
        string configPath = Path.Combine(dir, "adapter_config.json");
        if (!File.Exists(configPath)) throw new SharpTuneException($"{configPath}: not found; an adapter folder needs adapter_config.json and adapter_model.safetensors");
        var config = JsonFile.Read(configPath);

        string type = config["peft_type"].StringOrNull() ?? "LORA";
        if (type != "LORA") throw new SharpTuneException($"{configPath}: peft_type {SharpTuneException.Quote(type)} is not supported (only LORA)");
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (config[key].Exists && config[key].Properties().Any()) throw new SharpTuneException($"{configPath}: per-module {key} is not supported");
        if (config["bias"].StringOrNull() is { } bias && bias != "none") throw new SharpTuneException($"{configPath}: bias {SharpTuneException.Quote(bias)} is not supported (only \"none\")");

        var targetsField = config["target_modules"];
        var targetNames = targetsField.Kind switch
        {
            JsonValueKind.Array => targetsField.Items().Select(n => n.String()).ToList(),
            JsonValueKind.String => throw new SharpTuneException($"{configPath}: target_modules as a regex ({SharpTuneException.Quote(targetsField.String())}) is not supported; list the module names"),
            _ when targetsField.Exists => throw targetsField.Expected("a list of module names"),
            _ => [.. LoraOptions.AllProjections],
        };
        var options = new LoraOptions(
            Rank: config["r"].Exists ? config["r"].Int(1, 1 << 16) : 8,
            Alpha: config["lora_alpha"].DoubleOrNull() ?? 8,
            Dropout: config["lora_dropout"].DoubleOrNull() ?? 0,
            UseRslora: config["use_rslora"].BoolOrNull() ?? false,
            TargetModules: targetNames,
            UseDora: config["use_dora"].BoolOrNull() ?? false);
        options.Validate();
        return options;
    }

    /// <summary>Reads a PEFT LoRA adapter folder and attaches it to <paramref name="model"/>.</summary>
    public static LoraAdapter Load(string dir, CausalLM model)
    {
        string weightsPath = Path.Combine(dir, "adapter_model.safetensors");
        var options = ReadConfig(dir);

        using var file = SafetensorsFile.Open(weightsPath);
        var targets = Targets(model, options).ToList();
        var expected = new HashSet<string>();
        foreach (var linear in targets)
        {
            string nameA = PeftName(linear.Name, "lora_A"), nameB = PeftName(linear.Name, "lora_B");
            expected.Add(nameA); expected.Add(nameB);
            if (options.UseDora)
            {
                string nameM = MagnitudeName(linear.Name);
                expected.Add(nameM);
                if (!file.Entries.TryGetValue(nameM, out var m) || !m.Shape.SequenceEqual(new[] { linear.OutFeatures }))
                    throw new SharpTuneException($"{weightsPath}: use_dora is true but '{nameM}' [{linear.OutFeatures}] is missing or misshapen");
            }
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
            (file.Read(PeftName(linear.Name, "lora_A")).to(float32), file.Read(PeftName(linear.Name, "lora_B")).to(float32),
             options.UseDora ? file.Read(MagnitudeName(linear.Name)).to(float32) : null));
    }

    public void Dispose()
    {
        Detach();
        foreach (var p in _pairs) { p.A.Dispose(); p.B.Dispose(); p.Magnitude?.Dispose(); }
        DisposeCompute();
        _values.Dispose();
        _gradients.Dispose();
    }
}
