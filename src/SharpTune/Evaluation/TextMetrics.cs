namespace SharpTune.Evaluation;

/// <summary>Settings of <see cref="TextMetrics.Score"/>. Metrics null means all of <see cref="TextMetrics.Names"/>.</summary>
public sealed record ScoreOptions(IReadOnlyList<string>? Metrics = null, bool Stemmer = false, string BleuTokenizer = "13a");

/// <summary>
/// The text metrics of `sharptune score` by name. ROUGE-*, exact_match and token_f1 are means over the pairs
/// (0–1; for ROUGE the F-measure); bleu and chrf are corpus scores (0–100), as sacrebleu reports them.
/// </summary>
public static class TextMetrics
{
    public static readonly IReadOnlyList<string> Names =
        ["rouge1", "rouge2", "rougeL", "rougeLsum", "rougeW", "rougeS", "rougeSU", "bleu", "chrf", "exact_match", "token_f1"];

    /// <summary>The metrics to compute, in the order given; an unknown name is an error listing the known ones.</summary>
    public static IReadOnlyList<string> Resolve(IReadOnlyList<string>? metrics)
    {
        if (metrics is null || metrics.Count == 0) return Names;
        foreach (var m in metrics)
            if (!Names.Contains(m))
                throw new SharpTuneException($"unknown metric '{m}' (known: {string.Join(", ", Names)})");
        return metrics.Distinct().ToList();
    }

    /// <summary>Scores predictions[i] against references[i]. Both lists must be non-empty and of one length.</summary>
    public static IReadOnlyDictionary<string, double> Score(IReadOnlyList<string> predictions, IReadOnlyList<string> references, ScoreOptions? options = null)
    {
        options ??= new ScoreOptions();
        var names = Resolve(options.Metrics);
        if (!Bleu.Tokenizers.Contains(options.BleuTokenizer))
            throw new SharpTuneException($"unknown BLEU tokenizer '{options.BleuTokenizer}' (expected {string.Join(", ", Bleu.Tokenizers)})");
        if (predictions.Count != references.Count)
            throw new SharpTuneException($"{predictions.Count} predictions but {references.Count} references: they pair by position");
        if (predictions.Count == 0) throw new SharpTuneException("nothing to score: the set is empty");
        var rouge = new Rouge(options.Stemmer);
        var scores = new Dictionary<string, double>();
        foreach (var name in names)
        {
            scores[name] = name switch
            {
                "bleu" => Bleu.Corpus(predictions, references, options.BleuTokenizer).Score,
                "chrf" => Chrf.Corpus(predictions, references),
                _ => Mean(predictions, references, PairMetric(name, rouge)),
            };
        }
        return scores;
    }

    static Func<string, string, double> PairMetric(string name, Rouge rouge) => name switch
    {
        "rouge1" => (p, r) => rouge.RougeN(r, p, 1).F,
        "rouge2" => (p, r) => rouge.RougeN(r, p, 2).F,
        "rougeL" => (p, r) => rouge.RougeL(r, p).F,
        "rougeLsum" => (p, r) => rouge.RougeLsum(r, p).F,
        "rougeW" => (p, r) => rouge.RougeW(r, p).F,
        "rougeS" => (p, r) => rouge.RougeS(r, p).F,
        "rougeSU" => (p, r) => rouge.RougeS(r, p, withUnigrams: true).F,
        "exact_match" => Squad.ExactMatch,
        "token_f1" => Squad.TokenF1,
        _ => throw new InvalidOperationException(name),
    };

    static double Mean(IReadOnlyList<string> predictions, IReadOnlyList<string> references, Func<string, string, double> metric)
    {
        double sum = 0;
        for (int i = 0; i < predictions.Count; i++) sum += metric(predictions[i], references[i]);
        return sum / predictions.Count;
    }
}

/// <summary>Scores of generations against references: the answer (after any &lt;/think&gt;) against the reference
/// text; the reasoning against the reference reasoning where the references have one; reasoning statistics when
/// the generations carry &lt;think&gt; blocks.</summary>
public sealed record TextScores(IReadOnlyDictionary<string, double> Answer, IReadOnlyDictionary<string, double>? Reasoning, ReasoningStats? ReasoningStats)
{
    public static TextScores Of(IReadOnlyList<PredictionRow> predictions, IReadOnlyList<ReferenceRow> references, ScoreOptions? options = null)
    {
        var split = predictions.Select(p => ReasoningText.Split(p.Text)).ToList();
        bool reasoningAware = split.Any(s => s.HasReasoning);
        var answers = reasoningAware ? split.Select(s => s.Answer).ToList() : predictions.Select(p => p.Text).ToList();
        var answerScores = TextMetrics.Score(answers, references.Select(r => r.Text).ToList(), options);
        if (!reasoningAware) return new TextScores(answerScores, null, null);
        var withReasoning = Enumerable.Range(0, references.Count).Where(i => references[i].Reasoning is not null).ToList();
        var reasoningScores = withReasoning.Count == 0 ? null
            : TextMetrics.Score(withReasoning.Select(i => split[i].Reasoning).ToList(), withReasoning.Select(i => references[i].Reasoning!).ToList(), options);
        var stats = ReasoningStats.Of(split, predictions.Select(p => p.FinishReason == "length").ToList());
        return new TextScores(answerScores, reasoningScores, stats);
    }
}
