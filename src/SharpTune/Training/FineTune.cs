using SharpTune.Data;
using SharpTune.Demo;
using SharpTune.Distributed;
using SharpTune.Generation;
using SharpTune.Hub;
using SharpTune.Models;
using SharpTune.Runtime;
using SharpTune.Tokenization;

namespace SharpTune.Training;

/// <summary>A question answered before and after fine-tuning; <see cref="HeldOut"/> when it was not trained on.</summary>
public sealed record Comparison(string Question, string Before, string After, string? Reference, bool HeldOut);

public sealed record FineTuneResult(TrainSummary Summary, IReadOnlyList<Comparison> Comparisons, string OutputDir);

/// <summary>
/// The `sharptune train` workflow: resolve the model (the tiny demo model when none is given), set up the
/// trainer, answer held-out questions before training, train, answer them again, save the adapter.
/// </summary>
public static class FineTune
{
    /// <summary>The embedded default (Demo/demo-recipe.yaml): a tiny model trained on the bundled sample on the CPU.</summary>
    public static TrainOptions Demo { get; } = TrainOptions.FromYamlText(DemoRecipe.Yaml, DemoRecipe.Name);

    /// <param name="comparisons">held-out questions to answer before and after (0 = none)</param>
    /// <param name="download">progress of a Hub download when TrainOptions.Model is a Hub id</param>
    /// <param name="afterTraining">runs on the trained model before it is released (the closing evaluation), unless the run was cancelled</param>
    /// <param name="collective">the ranks of a data-parallel run (rank 0 answers the questions and runs <paramref name="afterTraining"/>)</param>
    public static FineTuneResult Run(TrainOptions options, ITrainingSink sink, int comparisons = 1, CancellationToken ct = default, IProgress<HubProgress>? download = null,
        Action<SftTrainer>? afterTraining = null, ICollective? collective = null)
    {
        // Everything that can be checked without training is checked before the first file is written.
        options.Validate();
        OutputFolder.RequireWritable(options.OutputDir);
        string modelDir;
        if (string.IsNullOrEmpty(options.Model))
        {
            modelDir = Path.Combine(options.OutputDir, "tiny-model");
            if (!File.Exists(Path.Combine(modelDir, "config.json")))
            {
                TorchRuntime.Initialize(options.Device);
                sink.OnMessage($"creating the tiny demo model in {modelDir}");
                TinyModel.Create(modelDir);
            }
        }
        else modelDir = ModelSource.ResolveModel(options.Model, download);

        using var trainer = SftTrainer.Setup(options, modelDir, sink, collective);
        if (!trainer.IsWriter) { comparisons = 0; afterTraining = null; }
        var questions = HeldOutQuestions(options, comparisons);
        List<string>? before;
        using (trainer.Model.CausalLM.ExpandHead())   // generation reads a compressed lm_head dense; training does not
            before = trainer.Step == 0 ? questions.Select(q => Answer(trainer, q.Question)).ToList() : null;
        var summary = trainer.Train(ct);
        if (summary.Reason == StopReason.Cancelled) return new FineTuneResult(summary, [], options.OutputDir);
        using var head = trainer.Model.CausalLM.ExpandHead();
        afterTraining?.Invoke(trainer);
        var results = questions.Select((q, i) => new Comparison(q.Question, before?[i] ?? "(not available: the run resumed from a checkpoint)",
            Answer(trainer, q.Question), q.Reference, q.HeldOut)).ToList();
        return new FineTuneResult(summary, results, options.OutputDir);
    }

    /// <summary>Questions from the sample's test split when training on the sample (held out); otherwise the first
    /// rows of the first dataset, read with its format and columns (likely trained on, and labelled so).</summary>
    static List<(string Question, string? Reference, bool HeldOut)> HeldOutQuestions(TrainOptions options, int count)
    {
        if (count <= 0) return [];
        var first = options.Datasets[0];
        bool sample = first.Origin == DatasetOrigin.BundledSample;
        var source = sample
            ? SampleData.MedicalCalculations with { Split = "test" }
            : new DatasetSource(first.Source) { Subset = first.Config, Split = first.Split, Format = first.Format == "auto" ? null : first.Format, Columns = SftTrainer.ParseColumns(first.Columns) };
        try
        {
            return DatasetReader.ReadExamples(source).Where(e => !e.IsChat).Take(count)
                .Select(e => (e.Question, (string?)(e.Reasoning.Length > 0 ? $"<think>\n{e.Reasoning}\n</think>\n{e.Answer}" : e.Answer), sample)).ToList();
        }
        catch (SharpTuneException)
        {
            return [];   // a dataset without a question column still trains; it just has no before/after
        }
    }

    /// <summary>Greedy answer in the training prompt format (so the before/after shows what training changed).</summary>
    public static string Answer(SftTrainer trainer, string question, int maxNewTokens = 160)
    {
        var m = trainer.Model;
        string prompt = trainer.Options.PromptFormat == PromptStyle.ChatTemplate
            ? m.RenderChat([new ChatMessage("user", question)])
            : PromptFormat.Get(trainer.Options.PromptFormat).Prompt(question);
        var ids = m.Tokenizer.Encode(prompt, addSpecialTokens: trainer.Options.PromptFormat != PromptStyle.ChatTemplate);
        var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
        // Special tokens are kept so that <think> … </think> shows.
        return generator.Generate([ids], new GenerationOptions(maxNewTokens, new SamplingOptions(), m.EosTokenIds, SkipSpecialTokens: false))[0].Text;
    }
}
