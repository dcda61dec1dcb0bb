using SharpTune.Quantization;
using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>The QLoRA path end to end on the CPU: a 4-bit base quantized while loading, LoRA on top, 8-bit AdamW.</summary>
public class QLoraTrainingTests
{
    sealed class Recorder : ITrainingSink
    {
        public readonly List<StepMetrics> Steps = [];
        public Action<int>? AfterCheckpoint;
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnCheckpoint(int step, string dir) => AfterCheckpoint?.Invoke(step);
    }

    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel());

    static TrainOptions Options(string output) => new()
    {
        Datasets = [new DatasetSpec { Source = "sample", Rows = 32 }],
        OutputDir = output, Device = "cpu", MaxLength = 256, LoraRank = 8, LoraAlpha = 16, LearningRate = 3e-3,
        WarmupSteps = 1, MaxSteps = 4, BatchSize = 2, GradientAccumulation = 1, SaveEvery = 2, Seed = 5,
        Quantization = "nf4", Optimizer = "adamw_8bit",
    };

    static List<StepMetrics> Run(TrainOptions options, Recorder recorder, CancellationToken ct = default)
    {
        using var trainer = SftTrainer.Setup(options, Tiny.Value, recorder);
        Assert.All(trainer.Model.CausalLM.Projections, p => Assert.IsType<FourBitWeight>(p.Weight));
        trainer.Train(ct);
        return recorder.Steps;
    }

    [Fact]
    public void ResumedQLoraRunReproducesTheUninterruptedLosses()
    {
        var straight = Run(Options(TestPaths.TempDir()), new Recorder());
        Assert.Equal(4, straight.Count);
        Assert.True(straight[^1].Loss < straight[0].Loss, $"loss should fall: {straight[0].Loss} -> {straight[^1].Loss}");

        string output = TestPaths.TempDir();
        using var stop = new CancellationTokenSource();
        Run(Options(output), new Recorder { AfterCheckpoint = step => { if (step == 2) stop.Cancel(); } }, stop.Token);
        var resumed = Run(Options(output), new Recorder());
        Assert.Equal([3, 4], resumed.Select(s => s.Step));
        for (int i = 0; i < 2; i++) Assert.Equal(straight[2 + i].Loss, resumed[i].Loss);
    }

    [Fact]
    public void ResumingAnAdamWCheckpointWithAdamW8bitIsRefusedByFile()
    {
        string output = TestPaths.TempDir();
        Run(Options(output) with { MaxSteps = 2, Optimizer = "adamw" }, new Recorder());
        var e = Assert.Throws<SharpTuneException>(() => Run(Options(output) with { MaxSteps = 2 }, new Recorder()));
        Assert.Contains("optimizer.safetensors", e.Message);
        Assert.Contains("adamw_8bit", e.Message);
    }

    [Fact]
    public void PromptTuningAndDoraTrainOnAQuantizedBaseAndResumeExactly()
    {
        foreach (var variant in new[] { Options("") with { Peft = "prompt_tuning", NumVirtualTokens = 4, LearningRate = 3e-2 }, Options("") with { UseDora = true } })
        {
            var straight = Run(variant with { OutputDir = TestPaths.TempDir() }, new Recorder());
            Assert.NotEqual(straight[0].Loss, straight[^1].Loss);   // the adapter trains (its losses are pinned by the resume below)
            string output = TestPaths.TempDir();
            using var stop = new CancellationTokenSource();
            Run(variant with { OutputDir = output }, new Recorder { AfterCheckpoint = step => { if (step == 2) stop.Cancel(); } }, stop.Token);
            var resumed = Run(variant with { OutputDir = output }, new Recorder());
            for (int i = 0; i < 2; i++) Assert.Equal(straight[2 + i].Loss, resumed[i].Loss);
            Assert.True(File.Exists(Path.Combine(output, "adapter", "adapter_config.json")));
        }
    }

    /// <summary>The 6 GiB settings end to end: an int8 lm_head, the recomputed MLP in pieces, offload (on
    /// the CPU into plain host buffers); training runs, the loss falls, and the questions before and after are answered (generation expands the
    /// compressed head, training does not).</summary>
    [Fact]
    public void Int8LmHeadAndPiecewiseMlpTrainAndGenerate()
    {
        string output = TestPaths.TempDir();
        var options = Options(output) with
        {
            Model = Tiny.Value, LmHeadQuantization = "int8", ActivationCheckpointing = true, ActivationOffload = true, MlpChunk = 16, LossChunk = 64, SaveEvery = 0,
        };
        var recorder = new Recorder();
        var result = FineTune.Run(options, recorder, comparisons: 1);
        Assert.Equal(4, recorder.Steps.Count);
        Assert.True(recorder.Steps[^1].Loss < recorder.Steps[0].Loss, $"loss should fall: {recorder.Steps[0].Loss} -> {recorder.Steps[^1].Loss}");
        Assert.Single(result.Comparisons);
        Assert.False(string.IsNullOrEmpty(result.Comparisons[0].After));
        Assert.Contains("lm_head_quantization", Assert.Throws<SharpTuneException>(() => (options with { LmHeadQuantization = "nf4" }).Validate()).Message);
        Assert.Contains("mlp_chunk", Assert.Throws<SharpTuneException>(() => (options with { ActivationCheckpointing = false, ActivationOffload = false }).Validate()).Message);
    }

    [Fact]
    public void UnknownQuantizationOrOptimizerIsRefused()
    {
        Assert.Contains("quantization", Assert.Throws<SharpTuneException>(() => (Options("x") with { Quantization = "nf3" }).Validate()).Message);
        Assert.Contains("optimizer", Assert.Throws<SharpTuneException>(() => (Options("x") with { Optimizer = "sgd" }).Validate()).Message);
    }
}

public class QLoraRecipeTests
{
    [Fact]
    public void QLoraRecipeIsTheSeedFineTuneIn4BitsWith8BitAdamW()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "SharpTune.slnx")) && Directory.GetParent(root) is { } parent) root = parent.FullName;
        var o = TrainOptions.FromYaml(Path.Combine(root, "recipes", "r1-distill-llama-8b-medical-qlora.yaml"));
        o.Validate();
        Assert.Equal("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", o.Model);
        Assert.Equal(("nf4", "adamw_8bit"), (o.Quantization, o.Optimizer));
        Assert.Equal((16, 16.0, 0.0), (o.LoraRank, o.LoraAlpha, o.LoraDropout));
        Assert.Equal(7, o.Lora.Targets.Count);
        Assert.Equal((2, 4, 60, 2e-4, 2048), (o.BatchSize, o.GradientAccumulation, o.MaxSteps, o.LearningRate, o.MaxLength));
        Assert.Equal(("int8", 2048, 2048, true), (o.LmHeadQuantization, o.MlpChunk, o.LossChunk, o.ActivationOffload));   // the 6 GiB settings
    }
}
