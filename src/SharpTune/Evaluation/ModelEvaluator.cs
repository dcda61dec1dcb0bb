using SharpTune.Data;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenization;
using TrainingPromptFormat = SharpTune.Data.PromptFormat;

namespace SharpTune.Evaluation;

/// <summary>Settings of `sharptune eval` (one flat record; every field has a flag).</summary>
public sealed record EvalOptions
{
    /// <summary>Local model folder (the CLI resolves Hub ids first).</summary>
    public required string ModelDir { get; init; }
    /// <summary>LoRA adapter folder; the scores are then the fine-tuned model's, and with BaseToo the base's too.</summary>
    public string? AdapterDir { get; init; }
    /// <summary>The held-out set: question/answer rows for "generate", multiple-choice rows for "choice".</summary>
    public required DatasetSource Data { get; init; }
    public string Task { get; init; } = "generate";
    public bool BaseToo { get; init; }
    /// <summary>Optional general-knowledge multiple-choice set (e.g. an MMLU sample), scored by log-likelihood on
    /// every model, to show forgetting.</summary>
    public DatasetSource? General { get; init; }
    /// <summary>Rows to use from the start of the set (0 = all).</summary>
    public int Limit { get; init; }
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Most tokens (rows × (prompt + new tokens)) in one batch: what bounds memory.</summary>
    public long TokenBudget { get; init; } = 65536;
    public int MaxBatch { get; init; } = 64;
    public ChoiceMode ChoiceMode { get; init; } = ChoiceMode.LogLikelihood;
    public int Shots { get; init; }
    public ScoreOptions Score { get; init; } = new();
    /// <summary>A training prompt format name (r1-reasoning, alpaca); null: the chat template, else raw text.</summary>
    public string? PromptFormat { get; init; }
    public string Device { get; init; } = "auto";
    public string DType { get; init; } = "auto";
    public bool Bias { get; init; }
    /// <summary>JSONL of bias templates replacing the built-in ones.</summary>
    public string? BiasTemplates { get; init; }
    /// <summary>Side-by-side answers kept for the report.</summary>
    public int SampleCount { get; init; } = 5;

    public void Validate()
    {
        if (Task is not ("generate" or "choice")) throw new SharpTuneException($"--task must be generate or choice, got '{Task}'");
        if (MaxNewTokens <= 0) throw new SharpTuneException($"--max-new-tokens must be positive, got {MaxNewTokens}");
        if (Limit < 0) throw new SharpTuneException($"--limit must be >= 0, got {Limit}");
        if (Shots < 0) throw new SharpTuneException($"--shots must be >= 0, got {Shots}");
        if (SampleCount < 0) throw new SharpTuneException($"--samples must be >= 0, got {SampleCount}");
        if (BaseToo && AdapterDir is null) throw new SharpTuneException("--base-too compares the base model with a fine-tuned one: give --adapter too");
        TextMetrics.Resolve(Score.Metrics);
        if (!Bleu.Tokenizers.Contains(Score.BleuTokenizer))
            throw new SharpTuneException($"unknown BLEU tokenizer '{Score.BleuTokenizer}' (expected {string.Join(", ", Bleu.Tokenizers)})");
        if (PromptFormat is { } f and not "chat-template") TrainingPromptFormat.Get(f);
    }
}

/// <summary>One model's scores. Name: "base", "fine-tuned", or "model" when there is no adapter.</summary>
public sealed record ModelScores(string Name, TextScores? Text, ChoiceResult? Choice, ChoiceResult? General,
    IReadOnlyList<BiasAttributeResult>? Bias, GenerationThroughput? Throughput);

/// <summary>A prompt with each model's answer and the reference, for the side-by-side in the report.</summary>
public sealed record SampleAnswer(string Question, string Reference, IReadOnlyDictionary<string, string> Answers);

public sealed record EvalResult(string Model, string? Adapter, string Data, string Task, int Count, string? ChoiceMode,
    IReadOnlyList<ModelScores> Models, IReadOnlyList<SampleAnswer> Samples, DateTime CreatedUtc);

/// <summary>
/// `sharptune eval`: reads and checks the whole input first (a bad row fails before any model loads), loads the
/// model once, and scores it with the adapter on and, with BaseToo, off.
/// </summary>
public static class ModelEvaluator
{
    public static EvalResult Run(EvalOptions o, IProgress<EvalProgress>? progress = null)
    {
        o.Validate();
        List<Example>? examples = null;
        List<ChoiceQuestion>? questions = null;
        if (o.Task == "generate")
        {
            var all = DatasetReader.ReadExamples(o.Data).Select(e => e.AsQuestion());
            examples = (o.Limit > 0 ? all.Take(o.Limit) : all).ToList();
            if (examples.Count == 0) throw new SharpTuneException($"{o.Data.Path}: no rows: the set is empty");
        }
        else questions = ChoiceReader.Read(o.Data, o.Limit);
        var general = o.General is { } g ? ChoiceReader.Read(g) : null;
        var templates = !o.Bias ? null : o.BiasTemplates is { } file ? BiasProbe.Load(file) : BiasProbe.BuiltIn.ToList();

        using var m = PretrainedModel.Load(o.ModelDir, o.Device, o.DType, o.AdapterDir);
        var encode = PromptEncoder(m, o.PromptFormat);
        var variants = m.Adapter is null ? [("model", (bool?)null)] : o.BaseToo ? new[] { ("base", (bool?)false), ("fine-tuned", (bool?)true) } : [("fine-tuned", (bool?)true)];
        var scores = new List<ModelScores>();
        var answers = new Dictionary<string, List<string>>();
        foreach (var (name, adapterOn) in variants)
        {
            if (adapterOn is { } on) m.Adapter!.Enabled = on;
            TextScores? text = null;
            ChoiceResult? choice = null;
            GenerationThroughput? throughput = null;
            if (examples is not null)
            {
                var prompts = examples.Select(e => encode(e.Question, e.Context)).ToList();
                var generation = new GenerationOptions(o.MaxNewTokens, new SamplingOptions(), m.EosTokenIds, SkipSpecialTokens: false);
                var (results, t) = BatchedGeneration.Run(m.CausalLM, m.Tokenizer, prompts, generation, o.TokenBudget, o.MaxBatch, $"{name}: generate", progress);
                throughput = t;
                text = TextScores.Of(results.Select(r => new PredictionRow(r.Text, r.FinishReason.ToString().ToLowerInvariant())).ToList(),
                    examples.Select(e => new ReferenceRow(e.Answer, e.Reasoning.Length > 0 ? e.Reasoning : null)).ToList(), o.Score);
                answers[name] = results.Select(r => r.Text).ToList();
            }
            if (questions is not null)
            {
                var choiceOptions = new ChoiceOptions(o.ChoiceMode, o.Shots, o.MaxNewTokens, o.TokenBudget, o.MaxBatch);
                choice = ChoiceEvaluator.Run(m, questions, choiceOptions, $"{name}: choice", progress);
                answers[name] = choice.Predicted.Select(p => p < 0 ? "(no letter)" : ChoiceQuestion.Letter(p)).ToList();
            }
            var generalResult = general is null ? null
                : ChoiceEvaluator.Run(m, general, new ChoiceOptions(ChoiceMode.LogLikelihood, o.Shots, 1, o.TokenBudget, o.MaxBatch), $"{name}: general", progress);
            var bias = templates is null ? null
                : BiasProbe.Run(m, templates, q => encode(q, ""), new BiasOptions(Math.Min(o.MaxNewTokens, 64), o.TokenBudget, o.MaxBatch), $"{name}: bias", progress);
            scores.Add(new ModelScores(name, text, choice, generalResult, bias, throughput));
        }
        if (m.Adapter is not null) m.Adapter.Enabled = true;

        var samples = new List<SampleAnswer>();
        int count = examples?.Count ?? questions!.Count;
        for (int i = 0; i < Math.Min(o.SampleCount, count); i++)
        {
            var perModel = answers.ToDictionary(a => a.Key, a => a.Value[i]);
            samples.Add(examples is not null
                ? new SampleAnswer(examples[i].Question, examples[i].Reasoning.Length > 0 ? $"<think>\n{examples[i].Reasoning}\n</think>\n{examples[i].Answer}" : examples[i].Answer, perModel)
                : new SampleAnswer(ChoiceEvaluator.Prompt(questions![i], []), ChoiceQuestion.Letter(questions[i].Answer), perModel));
        }
        return new EvalResult(o.ModelDir, o.AdapterDir, o.Data.ToString(), o.Task, count, o.Task == "choice" ? (o.ChoiceMode == ChoiceMode.LogLikelihood ? "loglik" : "generate") : null,
            scores, samples, DateTime.UtcNow);
    }

    /// <summary>
    /// The short evaluation at the end of `sharptune train`: greedy answers to the first validation examples, the
    /// base (adapter off) against the fine-tuned model. Prompts and references come from the tokenized examples
    /// themselves (the untrained prefix is the prompt, the trained part the reference), so they are exactly what
    /// training held out.
    /// </summary>
    public static EvalResult Validation(PretrainedModel m, IAdapter adapter, IReadOnlyList<TokenizedExample> validation,
        int count, int maxNewTokens, long tokenBudget, ScoreOptions? score = null, IProgress<EvalProgress>? progress = null)
    {
        var eos = m.EosTokenIds.ToHashSet();
        var rows = validation.Select(e =>
            {
                int promptLength = Array.FindIndex(e.Labels, l => l != TokenizedExample.IgnoreIndex);
                return (Example: e, PromptLength: promptLength);
            })
            .Where(x => x.PromptLength > 0).Take(count).ToList();
        if (rows.Count == 0) return new EvalResult(m.Directory, null, "validation split", "generate", 0, null, [], [], DateTime.UtcNow);
        var prompts = rows.Select(r => r.Example.InputIds[..r.PromptLength]).ToList();
        var references = rows.Select(r =>
        {
            var answerIds = r.Example.InputIds[r.PromptLength..].Where((id, k) => r.Example.Labels[r.PromptLength + k] != TokenizedExample.IgnoreIndex && !eos.Contains(id));
            var split = ReasoningText.Split(m.Tokenizer.Decode(answerIds));
            return new ReferenceRow(split.Answer, split.HasReasoning ? split.Reasoning : null);
        }).ToList();
        var generation = new GenerationOptions(maxNewTokens, new SamplingOptions(), m.EosTokenIds, SkipSpecialTokens: false);
        bool wasEnabled = adapter.Enabled;
        var scores = new List<ModelScores>();
        var answers = new Dictionary<string, List<GenerationResult>>();
        try
        {
            foreach (var (name, on) in new[] { ("base", false), ("fine-tuned", true) })
            {
                adapter.Enabled = on;
                var (results, throughput) = BatchedGeneration.Run(m.CausalLM, m.Tokenizer, prompts, generation, tokenBudget, 64, $"{name}: generate", progress);
                answers[name] = results;
                scores.Add(new ModelScores(name, TextScores.Of(results.Select(r => new PredictionRow(r.Text, r.FinishReason.ToString().ToLowerInvariant())).ToList(), references, score),
                    null, null, null, throughput));
            }
        }
        finally { adapter.Enabled = wasEnabled; }
        var samples = Enumerable.Range(0, Math.Min(3, rows.Count)).Select(i => new SampleAnswer(
            m.Tokenizer.Decode(prompts[i]), references[i].Reasoning is { } r ? $"<think>\n{r}\n</think>\n{references[i].Text}" : references[i].Text,
            answers.ToDictionary(a => a.Key, a => a.Value[i].Text))).ToList();
        return new EvalResult(m.Directory, "(this run)", "validation split", "generate", rows.Count, null, scores, samples, DateTime.UtcNow);
    }

    /// <summary>Prompt ids for a question: the training prompt format when named, else the chat template when the
    /// model has one, else the raw question.</summary>
    public static Func<string, string, int[]> PromptEncoder(PretrainedModel m, string? promptFormat)
    {
        if (promptFormat is not null && promptFormat != "chat-template")
        {
            var format = TrainingPromptFormat.Get(promptFormat);
            return (q, c) => m.EncodeText(format.Prompt(q, c));
        }
        if (m.ChatTemplate is not null)
            return (q, c) => m.EncodeChat([new ChatMessage("user", c.Length > 0 ? $"{q}\n\n{c}" : q)]);
        return (q, c) => m.EncodeText(c.Length > 0 ? $"{q}\n\n{c}" : q);
    }
}
