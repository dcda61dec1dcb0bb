using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

public class SftTrainerTests
{
    sealed class Recorder : ITrainingSink
    {
        public readonly List<StepMetrics> Steps = [];
        public readonly List<EvalMetrics> Evals = [];
        public readonly List<int> Checkpoints = [];
        public readonly List<string> Messages = [];
        public Action<int>? AfterCheckpoint;
        public void OnMessage(string message) => Messages.Add(message);
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnEval(EvalMetrics eval) => Evals.Add(eval);
        public void OnCheckpoint(int step, string dir) { Checkpoints.Add(step); AfterCheckpoint?.Invoke(step); }
    }

    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel());

    static TrainOptions Options(string output) => new()
    {
        Datasets = [new DatasetSpec { Source = "sample", Rows = 48 }],
        OutputDir = output,
        Device = "cpu",
        MaxLength = 256,
        LoraRank = 8,
        LoraAlpha = 16,
        LearningRate = 3e-3,
        WarmupSteps = 2,
        MaxSteps = 6,
        BatchSize = 2,
        GradientAccumulation = 2,
        SaveEvery = 3,
        ValidationFraction = 0.1,
        EvalEvery = 3,
        Seed = 11,
    };

    static List<StepMetrics> Run(TrainOptions options, Recorder recorder, CancellationToken ct = default)
    {
        using var trainer = SftTrainer.Setup(options, Tiny.Value, recorder);
        trainer.Train(ct);
        return recorder.Steps;
    }

    [Fact]
    public void KeepMlpBudgetOffCudaSaysItIsNotUsedAndTrainsOn()
    {
        var recorder = new Recorder();
        var steps = Run(Options(TestPaths.TempDir()) with { ActivationCheckpointing = true, CheckpointKeepMlpBudget = 1, MaxSteps = 2, SaveEvery = 0, EvalEvery = 0 }, recorder);
        Assert.Equal(2, steps.Count);
        Assert.Single(recorder.Messages, m => m == "checkpoint_keep_mlp_budget: not used (needs CUDA); the layers recompute in full");
    }

    [Fact]
    public void ResumedRunReproducesTheUninterruptedLosses()
    {
        var straight = Run(Options(TestPaths.TempDir()), new Recorder());
        Assert.Equal(6, straight.Count);
        Assert.True(straight[^1].Loss < straight[0].Loss, $"loss should fall: {straight[0].Loss} -> {straight[^1].Loss}");

        string output = TestPaths.TempDir();
        using var stop = new CancellationTokenSource();
        var first = new Recorder { AfterCheckpoint = step => { if (step == 3) stop.Cancel(); } };
        Run(Options(output), first, stop.Token);
        Assert.Equal(3, first.Steps.Count);

        var resumed = Run(Options(output), new Recorder());
        Assert.Equal([4, 5, 6], resumed.Select(s => s.Step));
        for (int i = 0; i < 3; i++)
            Assert.Equal(straight[3 + i].Loss, resumed[i].Loss);
    }

    [Fact]
    public void ResumingWithOtherAdapterShapesIsRefusedClearly()
    {
        string output = TestPaths.TempDir();
        Run(Options(output) with { MaxSteps = 3 }, new Recorder());
        var e = Assert.Throws<SharpTuneException>(() => Run(Options(output) with { MaxSteps = 3, LoraRank = 4 }, new Recorder()));
        Assert.Contains("lora_rank", e.Message);
        Assert.Contains("checkpoints", e.Message);
    }

    [Fact]
    public void LoraDropoutIsAppliedDuringTraining()
    {
        var plain = Run(Options(TestPaths.TempDir()) with { MaxSteps = 3, SaveEvery = 0, ValidationFraction = 0 }, new Recorder());
        var dropped = Run(Options(TestPaths.TempDir()) with { MaxSteps = 3, SaveEvery = 0, ValidationFraction = 0, LoraDropout = 0.3 }, new Recorder());
        Assert.Equal(plain[0].Loss, dropped[0].Loss);      // B starts at zero: dropout cannot change the first step
        Assert.NotEqual(plain[2].Loss, dropped[2].Loss);
    }

    [Fact]
    public void InterruptedSaveLeavesThePreviousCheckpoint()
    {
        string output = TestPaths.TempDir();
        var recorder = new Recorder();
        Run(Options(output) with { MaxSteps = 3 }, recorder);
        string checkpoints = Path.Combine(output, "checkpoints");
        var done = SftTrainer.Checkpoints(checkpoints);
        Assert.Single(done);
        // A save killed midway leaves a temp folder behind: it is not a checkpoint and is cleaned on the next start.
        Directory.CreateDirectory(Path.Combine(checkpoints, "step-000099.tmp-dead"));
        File.WriteAllText(Path.Combine(checkpoints, "step-000099.tmp-dead", "adapter_model.safetensors"), "partial");
        Assert.Equal(done, SftTrainer.Checkpoints(checkpoints));
    }

    [Fact]
    public void UnknownRecipeKeyIsAnErrorWithASuggestion()
    {
        string path = Path.Combine(TestPaths.TempDir(), "r.yaml");
        File.WriteAllText(path, "learning_rate: 1e-4\nlearnig_rate: 2e-4\n");
        var e = Assert.Throws<SharpTuneException>(() => TrainOptions.FromYaml(path));
        Assert.Contains("r.yaml:2", e.Message);
        Assert.Contains("did you mean 'learning_rate'", e.Message);
    }
}

public class RecipeTests
{
    static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SharpTune.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    [Fact]
    public void MedicalRecipeMatchesTheKnownFineTune()
    {
        var o = TrainOptions.FromYaml(Path.Combine(RepoRoot(), "recipes", "r1-distill-llama-8b-medical.yaml"));
        o.Validate();
        Assert.Equal("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", o.Model);
        Assert.Equal((16, 16.0, 0.0), (o.LoraRank, o.LoraAlpha, o.LoraDropout));
        Assert.Equal(7, o.Lora.Targets.Count);
        Assert.Equal((2, 4, 5, 60, 2e-4, 0.01, "linear", 3407L, 2048), (o.BatchSize, o.GradientAccumulation, o.WarmupSteps, o.MaxSteps, o.LearningRate, o.WeightDecay, o.LrScheduler, o.Seed, o.MaxLength));
        var d = Assert.Single(o.Datasets);
        Assert.Equal(("FreedomIntelligence/medical-o1-reasoning-SFT", "en", 500), (d.Source, d.Config, d.Rows));
    }

    [Fact]
    public void FlagsOverrideTheRecipe()
    {
        var o = TrainOptions.FromYaml(Path.Combine(RepoRoot(), "recipes", "r1-distill-llama-8b-medical.yaml"))
            .With("max-steps", "10", "--max-steps").With("learning_rate", "1e-4", "--learning-rate");
        Assert.Equal((10, 1e-4), (o.MaxSteps, o.LearningRate));
        var e = Assert.Throws<SharpTuneException>(() => o.With("max_steps", "ten", "--max-steps"));
        Assert.Contains("whole number", e.Message);
        Assert.DoesNotContain("lora", TrainOptions.Keys);   // a computed property is not a setting
        Assert.Contains("log_every", Assert.Throws<SharpTuneException>(() => o.With("log_every", "0", "--log-every").Validate()).Message);
        Assert.Contains("max_steps: 0", Assert.Throws<SharpTuneException>(() => o.With("epochs", "3", "--epochs").Validate()).Message);
        Assert.Contains("activation_offload needs activation_checkpointing",
            Assert.Throws<SharpTuneException>(() => o.With("activation_offload", "true", "--activation-offload").Validate()).Message);
        o.With("activation_checkpointing", "true", "--activation-checkpointing").With("activation_offload", "true", "--activation-offload").Validate();
        Assert.Contains("comparisons", Assert.Throws<SharpTuneException>(() => o.With("comparisons", "-1", "--comparisons").Validate()).Message);
    }

    [Fact]
    public void KeepMlpBudgetKeepsTheLayersThatFitAboveTheFirstStepsPeak()
    {
        const long GiB = 1L << 30, layer = 235_929_600;   // 2 × 2 × 2048 × 14336 × 2 bytes: one 8B layer at batch 2 × 2048
        Assert.Equal(0, SftTrainer.KeptMlpForBudget(20 * GiB, 21 * GiB, layer, 32));             // over already: none
        Assert.Equal(0, SftTrainer.KeptMlpForBudget(20 * GiB, 20 * GiB - layer + 1, layer, 32));  // not a whole layer
        Assert.Equal(1, SftTrainer.KeptMlpForBudget(20 * GiB, 20 * GiB - layer, layer, 32));
        Assert.Equal(18, SftTrainer.KeptMlpForBudget(23 * GiB + GiB / 2, 19 * GiB + GiB / 2, layer, 32));   // 4 GiB / 0.2197 GiB = 18.2
        Assert.Equal(32, SftTrainer.KeptMlpForBudget(80 * GiB, 20 * GiB, layer, 32));             // at most every recomputed layer
        var o = TrainOptions.FromYaml(Path.Combine(RepoRoot(), "recipes", "r1-distill-llama-8b-medical.yaml"));
        Assert.Contains("checkpoint_keep_mlp_budget needs activation_checkpointing",
            Assert.Throws<SharpTuneException>(() => o.With("checkpoint_keep_mlp_budget", "23.5", "--checkpoint-keep-mlp-budget").Validate()).Message);
        var ckpt = o.With("activation_checkpointing", "true", "--activation-checkpointing").With("checkpoint_keep_mlp_budget", "23.5", "--checkpoint-keep-mlp-budget");
        ckpt.Validate();
        Assert.Contains("set one of them", Assert.Throws<SharpTuneException>(() => ckpt.With("checkpoint_keep_mlp", "4", "--checkpoint-keep-mlp").Validate()).Message);
        Assert.Contains("checkpoint_keep_mlp_budget must be", Assert.Throws<SharpTuneException>(() => ckpt.With("checkpoint_keep_mlp_budget", "-1", "--checkpoint-keep-mlp-budget").Validate()).Message);
    }

    [Fact]
    public void EmbeddingOnHostFollowsTheSettingAndAutoFollowsTheMemorySavingSettings()
    {
        var o = TrainOptions.FromYaml(Path.Combine(RepoRoot(), "recipes", "r1-distill-llama-8b-medical.yaml")).With("activation_checkpointing", "false", "--activation-checkpointing");
        var e = Assert.Throws<SharpTuneException>(() => o.With("embedding_on_host", "yes", "--embedding-on-host").Validate());
        Assert.Contains("embedding_on_host: expected auto, true or false", e.Message);
        Assert.Null(SftTrainer.HostEmbedding(o.With("embedding_on_host", "auto", "--embedding-on-host")));   // nothing to save memory for
        Assert.NotNull(SftTrainer.HostEmbedding(o.With("embedding_on_host", "auto", "--embedding-on-host").With("activation_checkpointing", "true", "--activation-checkpointing")));
        Assert.NotNull(SftTrainer.HostEmbedding(o.With("embedding_on_host", "auto", "--embedding-on-host").With("quantization", "nf4", "--quantization")));
        Assert.NotNull(SftTrainer.HostEmbedding(o.With("embedding_on_host", "true", "--embedding-on-host")));
        Assert.Null(SftTrainer.HostEmbedding(o.With("embedding_on_host", "false", "--embedding-on-host").With("activation_checkpointing", "true", "--activation-checkpointing")));
    }

    [Theory]
    [InlineData("Qwen2ForCausalLM", 1536, 8960, 28, 12, 2, 151936, 18_464_768)]   // DeepSeek-R1-Distill-Qwen-1.5B
    [InlineData("LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 41_943_040)]   // DeepSeek-R1-Distill-Llama-8B
    public void TrainableParameterCountsOfRealShapes(string arch, int h, int i, int l, int nh, int nkv, int v, long expected)
    {
        _ = TestPaths.Cpu;
        var c = new ModelConfig(arch, h, i, l, nh, nkv, h / nh, v, 1e-6, 10000, null, 4096, false, arch.StartsWith("Qwen"), false, false, "bfloat16", 1, [2]);
        // Weights on the meta device: shapes without memory.
        using var model = new CausalLM(c, TorchSharp.torch.META, TorchSharp.torch.bfloat16,
            (_, shape) => TorchSharp.torch.empty(shape, TorchSharp.torch.bfloat16, TorchSharp.torch.META).DetachFromDisposeScope());
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 16, Alpha: 16));
        Assert.Equal(expected, adapter.TrainableParameterCount);
    }
}

public class TrainerModesTests
{
    sealed class Recorder : ITrainingSink
    {
        public readonly List<StepMetrics> Steps = [];
        public readonly List<EvalMetrics> Evals = [];
        public TrainSummary? End;
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnEval(EvalMetrics eval) => Evals.Add(eval);
        public void OnEnd(TrainSummary summary) => End = summary;
    }

    static string Tiny() => TestPaths.NewTinyModel();

    [Fact]
    public void EpochsModeRunsEveryBatchOnceAndEndsShort()
    {
        var recorder = new Recorder();
        var options = new TrainOptions
        {
            Datasets = [new DatasetSpec { Source = "sample", Rows = 10 }], OutputDir = TestPaths.TempDir(), Device = "cpu",
            MaxLength = 256, MaxSteps = 0, Epochs = 2, BatchSize = 2, GradientAccumulation = 3, SaveEvery = 0, LoraRank = 4,
        };
        using var trainer = SftTrainer.Setup(options, Tiny(), recorder);
        trainer.Train();
        // 10 sequences → 5 batches per epoch, 10 in all, 3 per step → 4 steps, the last one with a single batch.
        Assert.Equal(4, trainer.MaxSteps);
        Assert.Equal([1, 2, 3, 4], recorder.Steps.Select(s => s.Step));
        Assert.Equal(StopReason.Epochs, recorder.End!.Reason);
    }

    [Fact]
    public void EarlyStoppingEndsARunWhoseEvalLossStopsImproving()
    {
        // Whether a real eval loss rises or falls by a hair depends on the CPU's float rounding, so the test asks for
        // an improvement no loss can make (100 nats): the first evaluation sets the best, the next two count as
        // "no improvement" on every machine, and patience 2 ends the run at the third evaluation (step 6).
        var recorder = new Recorder();
        var options = new TrainOptions
        {
            Datasets = [new DatasetSpec { Source = "sample", Rows = 40 }], OutputDir = TestPaths.TempDir(), Device = "cpu",
            MaxLength = 256, MaxSteps = 40, BatchSize = 2, GradientAccumulation = 1, SaveEvery = 0, LoraRank = 4,
            ValidationFraction = 0.2, EvalEvery = 2, EarlyStoppingPatience = 2, EarlyStoppingThreshold = 100,
        };
        using var trainer = SftTrainer.Setup(options, Tiny(), recorder);
        trainer.Train();
        Assert.Equal(StopReason.EarlyStopping, recorder.End!.Reason);
        Assert.Equal([2, 4, 6], recorder.Evals.Select(e => e.Step));
        Assert.Equal(6, recorder.Steps[^1].Step);
        Assert.Equal(recorder.Evals.Min(e => e.Loss), recorder.End.BestEvalLoss);   // the best is the lowest loss seen
    }
}
