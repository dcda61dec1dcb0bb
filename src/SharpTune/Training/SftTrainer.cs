using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpTune.Data;
using SharpTune.Demo;
using SharpTune.Distributed;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// Supervised fine-tuning with LoRA, as one readable procedure: <see cref="Setup"/> loads the model and data and
/// resumes from the newest checkpoint, <see cref="Train"/> is the loop, <see cref="SaveCheckpoint"/> writes
/// everything an exact resume needs.
/// </summary>
public sealed class SftTrainer : IDisposable
{
    public TrainOptions Options { get; }
    public PretrainedModel Model { get; }
    public IAdapter Adapter { get; }
    public PreparedData Data { get; }
    readonly Batcher _batcher;
    readonly List<PackedSequence> _validation;
    readonly IOptimizer _optimizer;
    readonly LearningRateSchedule _schedule;
    readonly ITrainingSink _sink;
    readonly int _maxSteps;
    readonly int _padId;
    readonly int _padMultiple;
    readonly int _trainSequences;
    readonly ICollective _collective;   // the data-parallel ranks; world size 1 for a run in one process

    // Progress, saved in checkpoints.
    int _step;
    DataPosition _position;
    long _tokens;
    double? _bestEvalLoss;
    int _evalsWithoutImprovement;
    double _previousSeconds;
    bool _stopAgreed;

    public string CheckpointsDir => Path.Combine(Options.OutputDir, "checkpoints");
    /// <summary>What adapter_config.json names as the base: the Hub id when the model came from the Hub (a cache path means nothing elsewhere).</summary>
    string BaseModelName => string.IsNullOrEmpty(Options.Model) || Directory.Exists(Options.Model) ? Model.Directory : Options.Model;
    public string AdapterDir => Path.Combine(Options.OutputDir, "adapter");
    public int Step => _step;
    public int MaxSteps => _maxSteps;
    /// <summary>Only rank 0 writes checkpoints and the adapter (and, in the CLI, metrics and reports).</summary>
    public bool IsWriter => _collective.Rank == 0;
    int WorldSize => _collective.WorldSize;

    SftTrainer(TrainOptions options, PretrainedModel model, IAdapter adapter, PreparedData data, ITrainingSink sink, ICollective collective)
    {
        Options = options; Model = model; Adapter = adapter; Data = data; _sink = sink; _collective = collective;
        var train = options.Packing ? Packer.Pack(data.Train, options.MaxLength) : Packer.Single(data.Train);
        _trainSequences = train.Count;
        _validation = options.Packing ? Packer.Pack(data.Validation, options.MaxLength) : Packer.Single(data.Validation);
        _padId = model.Tokenizer.PadTokenId ?? model.Tokenizer.EosTokenId ?? 0;
        _padMultiple = model.CausalLM.Device.type == DeviceType.CUDA ? 64 : 1;
        _batcher = new Batcher(train, new BatchOptions(options.BatchSize, _padId) { Seed = (ulong)options.Seed, PadToMultipleOf = _padMultiple });
        // A step takes gradient_accumulation micro-batches on each rank: as many steps as one process with world-size-fold accumulation.
        int perStep = options.GradientAccumulation * collective.WorldSize;
        _maxSteps = options.MaxSteps > 0 ? options.MaxSteps : (_batcher.BatchesPerEpoch * options.Epochs + perStep - 1) / perStep;
        IReadOnlyList<(Tensor, Tensor)> trainable = [(adapter.Values, adapter.Gradients)];
        _optimizer = options.Optimizer == "adamw_8bit"
            ? new AdamW8bit(trainable, options.AdamBeta1, options.AdamBeta2, options.AdamEpsilon, options.WeightDecay)
            : new AdamW(trainable, options.AdamBeta1, options.AdamBeta2, options.AdamEpsilon, options.WeightDecay);
        _schedule = new LearningRateSchedule(options.LrScheduler, options.LearningRate, options.WarmupSteps, _maxSteps);
        if (options.ActivationCheckpointing)
            model.CausalLM.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, reseed: options.LoraDropout > 0, offload: options.ActivationOffload,
                layers: options.CheckpointLayers, keepMlp: options.CheckpointKeepMlp, trainableOfProjection: adapter.TrainableOf,
                mlpChunk: options.MlpChunk);
    }

    /// <summary>Loads the model (a local folder) and the data, attaches fresh adapters, and resumes from the
    /// newest checkpoint in the output folder when <see cref="TrainOptions.Resume"/> is set.</summary>
    /// <param name="collective">the ranks of a data-parallel run; null: this process alone</param>
    public static SftTrainer Setup(TrainOptions options, string modelDir, ITrainingSink sink, ICollective? collective = null)
    {
        options.Validate();
        var model = PretrainedModel.Load(modelDir, options.Device, options.DType, projections: WeightQuantization.For(options.Quantization, modelDir),
            hostEmbedding: HostEmbedding(options), lmHeadQuantization: options.LmHeadQuantization);
        try
        {
            var data = PrepareData(options, model);
            foreach (var s in data.Sources)
            {
                if (s.Tokens.Truncated > 0)
                    sink.OnMessage($"{s.Source}: {s.Tokens.Truncated} of {s.Tokens.Examples} examples were longer than max_length {options.MaxLength} and were truncated");
                if (s.Tokens.BadRows > 0)
                    sink.OnMessage($"{s.Source}: skipped {s.Tokens.BadRows} bad rows (on_bad_row: skip); the first: {s.BadRowSamples.FirstOrDefault()}");
            }
            manual_seed(options.Seed);
            IAdapter adapter = options.Peft == "prompt_tuning"
                ? PromptTuning.Attach(model.CausalLM, options.NumVirtualTokens, options.Seed)
                : LoraAdapter.Attach(model.CausalLM, options.Lora, options.Seed);
            var trainer = new SftTrainer(options, model, adapter, data, sink, collective ?? LocalCollective.Single());
            var device = model.CausalLM.Device;
            if (device.type == DeviceType.CUDA)
                sink.OnMessage(FlashAttention.Available(device, model.CausalLM.DType)
                    ? "attention: flash kernel (grouped-query; packed rows attend within each example, no mask)"
                    : $"attention: SDPA, packed rows with a block-diagonal mask ({FlashAttention.Unavailable ?? "needs bf16 or fp16"})");
            if (device.type == DeviceType.CUDA)
                sink.OnMessage(FusedRmsNorm.Available(device, model.CausalLM.DType)
                    ? "rms_norm: libtorch's fused op"
                    : $"rms_norm: eager formula ({FusedRmsNorm.Unavailable ?? "needs bf16 or fp16"})");
            if (device.type == DeviceType.CUDA) sink.OnMessage(TrainingKernels.Describe(device, model.CausalLM.DType, sink.OnMessage));
            if (device.type == DeviceType.CUDA && model.CausalLM.Embed.device_type != DeviceType.CUDA)
                sink.OnMessage("embedding: in pinned CPU memory, the GPU reads each step's rows (embedding_on_host " + options.EmbeddingOnHost
                    + (QuantKernels.Available(device, sink.OnMessage) ? ")" : $"; gathered on the CPU: {QuantKernels.Unavailable})"));
            if (options.CheckpointKeepMlp > 0 && KeepMlpUnusable(options) is { } why)
                sink.OnMessage($"checkpoint_keep_mlp: not used ({why}); the layers recompute in full");
            if (device.type == DeviceType.CUDA && options.Quantization != "none") sink.OnMessage(QuantKernels.Describe(device, sink.OnMessage));
            if (device.type == DeviceType.CUDA && options.Optimizer == "adamw_8bit") sink.OnMessage(AdamW8bit.Describe(device));
            if (device.type == DeviceType.CUDA && model.CausalLM.CompressedHead is not null)
                sink.OnMessage(CausalLoss.DescribeSlicedKernels(device, model.CausalLM.DType));
            if (options.Resume) trainer.ResumeFromNewest();
            else if (Checkpoints(trainer.CheckpointsDir).Count > 0)
                throw new SharpTuneException($"{trainer.CheckpointsDir} holds checkpoints of an earlier run and resume is off; choose another output_dir or delete that folder");
            if (trainer.WorldSize > 1) trainer.AgreeWithRankZero();
            return trainer;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The lookup of an embedding table kept in pinned host memory, or null to keep it on the GPU: embedding_on_host
    /// true, or auto with activation checkpointing or quantization (the settings chosen to save GPU memory; a lookup of
    /// 4,096 rows then moves 32 MiB over the bus at 8B, under a millisecond). The loader keeps tied embeddings on the GPU.</summary>
    internal static Func<Tensor, Tensor, Tensor>? HostEmbedding(TrainOptions o) => o.EmbeddingOnHost switch
    {
        "true" => WeightQuantization.HostRows,
        "false" => null,
        _ => o.ActivationCheckpointing ? WeightQuantization.HostRows : WeightQuantization.HostEmbedding(o.Quantization),
    };

    /// <summary>Why kept MLP outputs cannot serve a run's backward (ActivationCheckpointing takes them only for dense
    /// weights with adapters that only add, and without dropout); null when they can.</summary>
    static string? KeepMlpUnusable(TrainOptions o) =>
        o.Quantization != "none" ? $"quantization {o.Quantization}" :
        o.LoraDropout > 0 ? $"lora_dropout {o.LoraDropout}" :
        o.UseDora ? "use_dora" :
        o.Peft != "lora" ? $"peft {o.Peft}" : null;

    static PreparedData PrepareData(TrainOptions o, PretrainedModel model)
    {
        var tokenizer = model.Tokenizer;
        if (tokenizer.EosTokenId is not { } eos)
            throw new SharpTuneException($"{model.Directory}: the tokenizer has no EOS token; training needs one to end each response");
        var prompt = o.PromptFormat == PromptStyle.ChatTemplate
            ? PromptFormat.ForChatTemplate((messages, generation) => model.ChatTemplate is null
                ? throw new SharpTuneException($"{model.Directory}: prompt_format chat-template needs a chat_template in tokenizer_config.json")
                : model.ChatTemplate.RenderChat(messages, generation, tokenizer.BosToken, tokenizer.EosToken),
                model.ChatTemplate?.Source ?? "")
            : PromptFormat.Get(o.PromptFormat);
        var sources = o.Datasets.Select(d => new DatasetSource(d.Origin == DatasetOrigin.BundledSample ? SampleData.MedicalCalculations.Path : d.Source)
        {
            Subset = d.Config,
            Split = d.Rows > 0 ? $"{d.Split}[:{d.Rows}]" : d.Split,
            Format = d.Format == "auto" ? null : d.Format,
            Columns = ParseColumns(d.Columns),
            Weight = d.Ratio,
            OnBadRow = o.OnBadRow == "skip" ? BadRowPolicy.Skip : BadRowPolicy.Fail,
            SkipHint = "to leave such rows out and count them, set on_bad_row: skip in the recipe or --on-bad-row skip",
        }).ToList();
        var spec = new TokenizerSpec(text => tokenizer.Encode(text, addSpecialTokens: false), eos, TokenizerIdentity(model.Directory))
        {
            BosId = tokenizer.AddBosToken ? tokenizer.BosTokenId : null,
        };
        return DataPipeline.Prepare(new DataOptions(sources, prompt, o.MaxLength)
        {
            LossOn = o.LossOn == "all" ? LossOn.All : LossOn.Response,
            Validation = new ValidationSplit(Fraction: o.ValidationFraction),
            Seed = (ulong)o.Seed,
            CacheDirectory = Path.Combine(o.OutputDir, "token-cache"),
        }, spec);
    }

    internal static IReadOnlyDictionary<string, string>? ParseColumns(string? spec) => string.IsNullOrWhiteSpace(spec) ? null
        : spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(pair =>
        {
            var parts = pair.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                throw new SharpTuneException($"columns: expected name=Column pairs separated by commas, got '{pair}'");
            return (parts[0], parts[1]);
        }).ToDictionary(p => p.Item1, p => p.Item2);

    static string TokenizerIdentity(string dir)
    {
        using var sha = System.Security.Cryptography.SHA256.Create();
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }.Select(f => Path.Combine(dir, f)).Where(File.Exists))
        {
            var bytes = File.ReadAllBytes(f);
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexStringLower(sha.Hash!);
    }

    /// <summary>The loop. Returns when max steps (or epochs) are done, early stopping triggers, or
    /// <paramref name="ct"/> is cancelled (after saving a checkpoint of the last completed step).</summary>
    public TrainSummary Train(CancellationToken ct = default)
    {
        var device = Model.CausalLM.Device;
        _sink.OnStart(new TrainStart(Model.Directory, TorchRuntime.Description, Adapter.TrainableParameterCount, Model.Config.ParameterCount,
            _trainSequences, _validation.Count, _maxSteps, _step, Options.OutputDir));
        var clock = Stopwatch.StartNew();
        long tokensAtStart = _tokens;
        int stepsAtStart = _step;
        var reason = Options.MaxSteps > 0 ? StopReason.MaxSteps : StopReason.Epochs;
        double? lastLoss = null;
        using var batches = Prefetch.Ahead(_batcher.Read(_position, int.MaxValue), ahead: 4).GetEnumerator();   // built on a background thread
        // A logged step's loss is read once the next step is queued behind it, waiting on that step's own event
        // instead of draining the GPU at every step (where no CUDA event exists, at once). The step's time is the
        // GPU's, from the start of the loop to the step's end: the host may be anywhere in the next step by then.
        int deviceIndex = Math.Max(0, (int)device.index);
        using var fence = device.type == DeviceType.CUDA ? CudaEvent.TryCreate(deviceIndex, timed: true) : null;
        var started = fence is null ? null : CudaEvent.TryCreate(deviceIndex, timed: true);
        started?.Record();
        PendingMetrics? pending = null;
        void Flush()
        {
            if (pending is null) return;
            pending.Fence?.Wait();
            double seconds = clock.Elapsed.TotalSeconds;
            try
            {
                if (pending.Fence is { } f && started is not null) seconds = CudaEvent.SecondsBetween(started, f);
            }
            catch (InvalidOperationException e)
            {
                // A timing the runtime refuses costs the metrics their precision, not the run: the host's clock from here on.
                _sink.OnMessage($"step times from the host's clock ({e.Message})");
                started?.Dispose();
                started = null;
            }
            lastLoss = Report(pending, seconds, tokensAtStart, stepsAtStart);
            pending = null;
        }

        while (_step < _maxSteps)
        {
            // Ranks must stop at the same step: with several, a stop request is agreed on at logging steps (below).
            if (WorldSize == 1 && ct.IsCancellationRequested) { reason = StopReason.Cancelled; break; }
            using var scope = NewDisposeScope();
            long seed = Options.Seed + _step + _collective.Rank * 1_000_003L;   // dropout masks depend on the step (and rank) only: a resumed run draws the same ones
            manual_seed(seed);
            Model.CausalLM.Checkpointing?.BeginStep(seed);
            double lr = _schedule.At(_step);

            // The step's micro-batches in the order one process would take them; this rank trains on its share.
            var global = new List<Batch>();
            for (int i = 0; i < Options.GradientAccumulation * WorldSize; i++)
            {
                if (Options.MaxSteps == 0 && _position.Epoch >= Options.Epochs) break;   // epochs mode: the last step may be short
                if (!batches.MoveNext()) break;
                global.Add(batches.Current.Batch);
                _position = batches.Current.Next;
            }
            if (global.Count == 0) { reason = StopReason.Epochs; break; }
            var micro = Shard.Of(global, _collective.Rank, WorldSize);

            Adapter.Training = true;   // LoRA dropout on for the step, off for evaluation and generation
            var (lossSum, gradNorm, scored) = TrainStep.Run(Model.CausalLM, Adapter, _optimizer, micro, lr, Options.MaxGradNorm, Options.LossChunk,
                scoredTotal: global.Sum(TrainStep.ScoredTokens), collective: _collective);
            Adapter.Training = false;
            _tokens += global.Sum(b => b.TokenCount);   // every rank knows the whole step's batches: global tokens without a collective
            _step++;

            Flush();   // the previous step's metrics: it has run by the time this one's first kernels do
            if (_step == stepsAtStart + 1 && Options.CheckpointKeepMlpBudget > 0) ChooseKeptMlp();
            if (_step % Options.LogEvery == 0 || _step == _maxSteps)
            {
                // Device scalars to (pinned) host memory, queued behind the step; read at the next Flush.
                var logged = stack([lossSum, gradNorm.to(float32)]);
                if (WorldSize > 1)
                {
                    // The loss of all ranks' shares, and whether any rank was asked to stop (on the device: read at the
                    // Flush, where every rank learns it after the same step).
                    var shared = stack([lossSum, tensor(ct.IsCancellationRequested ? 1f : 0f, device: device)]);
                    _collective.AllReduce(shared);
                    logged = stack([shared[0], gradNorm.to(float32), shared[1]]);
                }
                var values = logged.to(CPU, non_blocking: fence is not null).DetachFromDisposeScope();
                fence?.Record();
                pending = new PendingMetrics(_step, _position.Epoch, lr, scored, _tokens, values, fence);
                if (fence is null) Flush();
            }
            bool evaluate = _validation.Count > 0 && Options.EvalEvery > 0 && _step % Options.EvalEvery == 0 && _step < _maxSteps;
            bool save = Options.SaveEvery > 0 && _step % Options.SaveEvery == 0 && _step < _maxSteps;
            if (evaluate || save) Flush();
            if (evaluate && EvaluateAndCheckStop()) { reason = StopReason.EarlyStopping; break; }
            if (save) SaveCheckpoint(clock.Elapsed.TotalSeconds);
            if (_stopAgreed) { reason = StopReason.Cancelled; break; }
        }
        Flush();
        started?.Dispose();
        bool finished = reason != StopReason.Cancelled;
        if (finished && _validation.Count > 0 && reason != StopReason.EarlyStopping) EvaluateAndCheckStop();
        double elapsed = clock.Elapsed.TotalSeconds;
        // After the clock: its first use builds an extension. (A step trace resets the peak at every mark.)
        if (device.type == DeviceType.CUDA && !StepTrace.On && DeviceMemory.Current() is { } memory)
            _sink.OnMessage($"GPU memory of this process (CUDA caching allocator): max allocated {memory.PeakAllocated / (double)(1L << 30):F2} GiB, "
                + $"max reserved {memory.PeakReserved / (double)(1L << 30):F2} GiB");
        SaveCheckpoint(elapsed);
        if (finished && IsWriter) Adapter.Save(AdapterDir, BaseModelName);   // an interrupted run leaves only its checkpoint
        var summary = new TrainSummary(_step, reason, lastLoss, _bestEvalLoss, AdapterDir, _previousSeconds + elapsed,
            (_tokens - tokensAtStart) / Math.Max(1e-9, elapsed), _step - stepsAtStart);
        _sink.OnEnd(summary);
        return summary;
    }

    /// <summary>checkpoint_keep_mlp_budget: after the run's first step (which kept no MLP), as many recomputed layers keep
    /// their gate and up outputs from the next step on as fit in what the budget leaves above that step's device-wide peak
    /// (the allocator's peak reservation plus what the driver counts outside it: CUDA context, libraries, other processes).
    /// Each kept layer holds 2 × batch_size × max_length × intermediate_size values; the step without them recomputed
    /// every MLP in backward, whose temporaries are larger than a kept layer's, so the estimate errs on the safe side.</summary>
    void ChooseKeptMlp()
    {
        var model = Model.CausalLM;
        string? why = model.Device.type != DeviceType.CUDA ? "needs CUDA" : KeepMlpUnusable(Options);
        var stats = why is null ? DeviceMemory.Current() : null;
        var driver = stats is null ? null : DeviceMemory.Device();
        if (why is null && (stats is null || driver is null)) why = $"the CUDA allocator's statistics are unavailable: {DeviceMemory.Unavailable}";
        if (why is not null || stats is null || driver is not { } d)
        {
            _sink.OnMessage($"checkpoint_keep_mlp_budget: not used ({why}); the layers recompute in full");
            return;
        }
        const double GiB = 1L << 30;
        long peak = d.Total - d.Free - stats.Reserved + stats.PeakReserved;
        var c = Model.Config;
        long perLayer = 2L * Options.BatchSize * Options.MaxLength * c.IntermediateSize * (model.DType == ScalarType.Float32 ? 4 : 2);
        int recomputed = Options.CheckpointLayers > 0 ? Math.Min(Options.CheckpointLayers, c.NumLayers) : c.NumLayers;
        model.Checkpointing!.KeepMlp = KeptMlpForBudget((long)(Options.CheckpointKeepMlpBudget * GiB), peak, perLayer, recomputed);
        _sink.OnMessage($"checkpoint_keep_mlp_budget {Options.CheckpointKeepMlpBudget:0.##} GiB: the first {model.Checkpointing.KeepMlp} of {recomputed} "
            + $"recomputed layers keep their MLP from step {_step + 1} (step {_step} peaked at {peak / GiB:F2} GiB device-wide without; each adds {perLayer / GiB:F3} GiB)");
    }

    /// <summary>How many layers of <paramref name="perLayer"/> bytes fit between <paramref name="peak"/> and
    /// <paramref name="budget"/>, from 0 to <paramref name="layers"/>.</summary>
    internal static int KeptMlpForBudget(long budget, long peak, long perLayer, int layers) =>
        budget <= peak ? 0 : (int)Math.Min((budget - peak) / perLayer, layers);

    /// <summary>A logged step whose loss and gradient norm are still on their way to the host.</summary>
    sealed record PendingMetrics(int Step, int Epoch, double LearningRate, int Scored, long Tokens, Tensor Values, CudaEvent? Fence);

    /// <summary>Reports a logged step whose values have reached the host; returns its loss.</summary>
    double Report(PendingMetrics p, double seconds, long tokensAtStart, int stepsAtStart)
    {
        float[] values;
        using (p.Values) values = p.Values.data<float>().ToArray();
        double loss = values[0] / Math.Max(1, p.Scored), gradNorm = values[1];
        _stopAgreed = values.Length > 2 && values[2] > 0;   // several ranks: all of them saw a stop request
        double tokensPerSecond = (p.Tokens - tokensAtStart) / Math.Max(1e-9, seconds);
        double eta = seconds / Math.Max(1, p.Step - stepsAtStart) * (_maxSteps - p.Step);
        _sink.OnStep(new StepMetrics(p.Step, _maxSteps, p.Epoch, loss, p.LearningRate, gradNorm, p.Tokens, tokensPerSecond,
            _previousSeconds + seconds, eta));
        return loss;
    }

    /// <summary>Mean loss over the validation split; returns true when early stopping should end the run.</summary>
    bool EvaluateAndCheckStop()
    {
        var device = Model.CausalLM.Device;
        using var scope = NewDisposeScope();
        var sum = zeros([], float32, device);
        long count = 0, tokens = 0;
        // Each rank scores every world-size-th batch; the sums are then added over the ranks.
        for (int i = _collective.Rank * Options.BatchSize; i < _validation.Count; i += Options.BatchSize * WorldSize)
        {
            var batch = Batcher.Collate(_validation.Skip(i).Take(Options.BatchSize).ToList(), _padId, _padMultiple);
            var d = TrainStep.Upload(batch, device);
            var (s, n) = CausalLoss.Evaluate(Model.CausalLM, d.Ids, d.Labels, d.Positions, chunk: Options.LossChunk, documents: d.Documents);
            sum.add_(s);
            count += n;
            tokens += batch.TokenCount;
        }
        if (WorldSize > 1)
        {
            var totals = stack([sum.to(float64), tensor((double)count, float64, device), tensor((double)tokens, float64, device)]);
            _collective.AllReduce(totals);
            var host = totals.cpu().data<double>().ToArray();
            (sum, count, tokens) = (tensor((float)host[0]), (long)host[1], (long)host[2]);
        }
        double loss = sum.item<float>() / Math.Max(1, count);
        _sink.OnEval(new EvalMetrics(_step, loss, Math.Exp(loss), tokens));
        bool improved = _bestEvalLoss is null || loss < _bestEvalLoss - Options.EarlyStoppingThreshold;
        if (_bestEvalLoss is null || loss < _bestEvalLoss) _bestEvalLoss = loss;
        if (improved) { _evalsWithoutImprovement = 0; return false; }
        _evalsWithoutImprovement++;
        return Options.EarlyStoppingPatience > 0 && _evalsWithoutImprovement >= Options.EarlyStoppingPatience;
    }

    /// <summary>Writes checkpoints/step-N (adapter in PEFT format, optimizer moments, trainer state) into a temp
    /// folder and renames it into place: a kill or a full disk mid-save leaves the previous checkpoint intact.</summary>
    public void SaveCheckpoint(double sessionSeconds)
    {
        if (!IsWriter) return;
        string final = Path.Combine(CheckpointsDir, $"step-{_step:D6}");
        if (Directory.Exists(final)) return;
        string tmp = $"{final}.tmp-{Guid.NewGuid():N}";
        try
        {
            Adapter.Save(tmp, BaseModelName);
            SafetensorsFile.Write(Path.Combine(tmp, "optimizer.safetensors"), _optimizer.State().ToList());
            var state = new JsonObject
            {
                ["step"] = _step,
                ["optimizer_steps"] = _optimizer.StepCount,
                ["epoch"] = _position.Epoch,
                ["batch"] = _position.Batch,
                ["tokens"] = _tokens,
                ["best_eval_loss"] = _bestEvalLoss,
                ["evals_without_improvement"] = _evalsWithoutImprovement,
                ["elapsed_seconds"] = _previousSeconds + sessionSeconds,
                ["max_steps"] = _maxSteps,
                ["world_size"] = WorldSize,
                ["options"] = JsonSerializer.SerializeToNode(Options with { Resume = true }),
            };
            AtomicFile.WriteAllText(Path.Combine(tmp, "trainer_state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Directory.Move(tmp, final);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            throw;
        }
        _sink.OnCheckpoint(_step, final);
        foreach (var old in Checkpoints(CheckpointsDir).SkipLast(Options.KeepCheckpoints))
            Directory.Delete(old, recursive: true);
    }

    /// <summary>Completed checkpoint folders, oldest first (unfinished temp folders are not checkpoints).</summary>
    public static List<string> Checkpoints(string dir) => !Directory.Exists(dir) ? []
        : Directory.GetDirectories(dir, "step-*").Where(d => !Path.GetFileName(d).Contains(".tmp-")
            && File.Exists(Path.Combine(d, "trainer_state.json"))).Order(StringComparer.Ordinal).ToList();

    void ResumeFromNewest()
    {
        if (IsWriter)
            foreach (var stale in Directory.Exists(CheckpointsDir) ? Directory.GetDirectories(CheckpointsDir, "*.tmp-*") : [])
                Directory.Delete(stale, recursive: true);
        var newest = Checkpoints(CheckpointsDir).LastOrDefault();
        if (newest is null) return;
        string statePath = Path.Combine(newest, "trainer_state.json");
        var state = JsonFile.Read(statePath);
        // Optimizer state differs in kind (fp32 vs 8-bit moments); a checkpoint from before the setting existed is adamw.
        string savedOptimizer = state["options"]["Optimizer"].StringOrNull() ?? "adamw";
        if (savedOptimizer != Options.Optimizer)
            throw new SharpTuneException($"{Path.Combine(newest, "optimizer.safetensors")}: holds {SharpTuneException.Quote(savedOptimizer)} state, this run asks for optimizer {Options.Optimizer}; "
                + $"resume with optimizer: {savedOptimizer}, or use another output_dir");
        // A longer run may continue a shorter one (its schedule is recomputed for the new length); a shorter one
        // would need steps that were already taken under another schedule.
        // Batches are sharded by world size and the checkpoint's data position is global: a run on another number of
        // GPUs would take other batches per step. It is refused rather than silently changing the global batch.
        int savedWorld = state["world_size"].Exists ? state["world_size"].Int(1, 1 << 20) : 1;
        if (savedWorld != WorldSize)
            throw new SharpTuneException($"{statePath}: this checkpoint was trained on {savedWorld} GPU(s), this run has {WorldSize}; "
                + $"resume with the same number of GPUs (--gpus {savedWorld}), or use another output_dir");
        int savedMaxSteps = state["max_steps"].Int(1, int.MaxValue);
        if (savedMaxSteps > _maxSteps)
            throw new SharpTuneException($"{newest}: this checkpoint belongs to a run of {savedMaxSteps} steps, this one has {_maxSteps}; "
                + "a run can be extended (a larger max_steps) but not shortened; use another output_dir or resume: false");
        // Settings that change the adapters' shapes or which batches come next make an exact resume impossible.
        var saved = state["options"].Object().Element.Deserialize<JsonObject>();
        var current = JsonSerializer.SerializeToNode(Options with { Resume = true }) as JsonObject;
        var defaults = JsonSerializer.SerializeToNode(new TrainOptions()) as JsonObject;   // for keys older checkpoints lack
        foreach (var key in ResumeSensitive)
            if (!JsonNode.DeepEquals(saved?.ContainsKey(key) == true ? saved[key] : defaults?[key], current?[key]))
                throw new SharpTuneException($"{newest}: the checkpoint was trained with {TrainOptions.SnakeCase(key)} = {ErrorText.OneLine(saved?[key]?.ToJsonString() ?? "(unset)")}, "
                    + $"this run has {ErrorText.OneLine(current?[key]?.ToJsonString() ?? "(unset)")}; use another output_dir, or the checkpoint's settings to resume");
        int step = state["step"].Int(0, savedMaxSteps);
        int optimizerSteps = state["optimizer_steps"].Int(0, int.MaxValue);
        var position = new DataPosition(state["epoch"].Int(0, int.MaxValue), state["batch"].Int(0, int.MaxValue));
        long tokens = state["tokens"].Long();
        double? bestEvalLoss = state["best_eval_loss"].DoubleOrNull();
        int evalsWithoutImprovement = state["evals_without_improvement"].Int(0, int.MaxValue);
        double elapsed = state["elapsed_seconds"].Double();

        // Every optimizer tensor's name and shape is checked against this run before anything is copied, and a
        // libtorch error while copying the adapter is named, so that a damaged checkpoint is reported as such.
        string adapterPath = Path.Combine(newest, "adapter_model.safetensors");
        string optimizerPath = Path.Combine(newest, "optimizer.safetensors");
        using (var weights = SafetensorsFile.Open(adapterPath))
        using (var moments = SafetensorsFile.Open(optimizerPath))
        {
            foreach (var (name, shape) in _optimizer.StateShapes()) RequireShape(moments, name, shape);
            try { Adapter.Restore(weights); }
            catch (Exception e) when (e is not SharpTuneException)
            {
                throw new SharpTuneException($"{adapterPath}: does not fit this run's adapters ({ErrorText.OneLine(e.Message)})", e);
            }
            try { _optimizer.LoadState(name => moments.Read(name), optimizerSteps); }
            catch (SharpTuneException e) when (!e.Message.StartsWith(optimizerPath)) { throw new SharpTuneException($"{optimizerPath}: {e.Message}"); }
        }
        _step = step;
        _position = position;
        _tokens = tokens;
        _bestEvalLoss = bestEvalLoss;
        _evalsWithoutImprovement = evalsWithoutImprovement;
        _previousSeconds = elapsed;
        _sink.OnMessage($"resuming from {newest} (step {_step} of {_maxSteps})");
        if (savedMaxSteps < _maxSteps)
            _sink.OnMessage($"extending the run from {savedMaxSteps} to {_maxSteps} steps: the learning-rate schedule ({Options.LrScheduler}) is recomputed "
                + $"for {_maxSteps} steps, so from step {_step + 1} on it differs from the first run's");
    }

    /// <summary>Gives every rank rank 0's adapters (fresh ones are equal anyway: one seed) and checks that all ranks
    /// resumed at the same step, which needs output_dir to be one folder for all of them (a shared file system across machines).</summary>
    void AgreeWithRankZero()
    {
        using var scope = NewDisposeScope();
        using (no_grad()) _collective.Broadcast(Adapter.Values);
        var device = Model.CausalLM.Device;
        var rankZero = tensor(new long[] { _step, _position.Epoch, _position.Batch }, device: device);
        _collective.Broadcast(rankZero);
        var zero = rankZero.cpu().data<long>().ToArray();
        bool differs = zero[0] != _step || zero[1] != _position.Epoch || zero[2] != _position.Batch;
        var anyDiffers = tensor(differs ? 1f : 0f, device: device);
        _collective.AllReduce(anyDiffers, ReduceOp.Max);   // every rank stops, not only the one that noticed
        if (anyDiffers.item<float>() > 0)
            throw new SharpTuneException((differs ? $"rank {_collective.Rank} resumed at step {_step} from {CheckpointsDir}, rank 0 at step {zero[0]}"
                : $"another rank resumed at another step than rank 0 (step {_step} from {CheckpointsDir})")
                + "; every rank must see the same output_dir (on several machines: a shared file system)");
    }

    static void RequireShape(SafetensorsFile file, string name, long[] shape)
    {
        if (!file.Entries.TryGetValue(name, out var entry))
            throw new SharpTuneException($"{file.Path}: tensor {SharpTuneException.Quote(name)} is missing; the checkpoint does not belong to this run");
        if (!entry.Shape.SequenceEqual(shape))
            throw new SharpTuneException($"{file.Path}: tensor {SharpTuneException.Quote(name)} has shape [{string.Join(", ", entry.Shape)}], this run needs [{string.Join(", ", shape)}]");
    }

    static readonly string[] ResumeSensitive =
    [
        nameof(TrainOptions.LoraRank), nameof(TrainOptions.LoraAlpha), nameof(TrainOptions.TargetModules), nameof(TrainOptions.UseRslora), nameof(TrainOptions.UseDora), nameof(TrainOptions.Peft), nameof(TrainOptions.NumVirtualTokens),
        nameof(TrainOptions.BatchSize), nameof(TrainOptions.GradientAccumulation), nameof(TrainOptions.Packing), nameof(TrainOptions.MaxLength),
        nameof(TrainOptions.Datasets), nameof(TrainOptions.PromptFormat), nameof(TrainOptions.LossOn), nameof(TrainOptions.ValidationFraction), nameof(TrainOptions.Seed), nameof(TrainOptions.OnBadRow),
    ];

    public void Dispose()
    {
        _optimizer.Dispose();
        Adapter.Dispose();
        Model.Dispose();
    }
}
