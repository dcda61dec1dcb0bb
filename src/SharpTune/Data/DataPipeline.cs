using System.Globalization;

namespace SharpTune.Data;

/// <summary>Everything that decides the training data.</summary>
/// <param name="Sources">The datasets; several are mixed by their <see cref="DatasetSource.Weight"/>.</param>
public sealed record DataOptions(IReadOnlyList<DatasetSource> Sources, PromptFormat Prompt, int MaxLength)
{
    public LossOn LossOn { get; init; } = LossOn.Response;

    /// <summary>Examples held out of each source for validation (a count is shared out by the sources' weights).</summary>
    public ValidationSplit Validation { get; init; } = ValidationSplit.None;

    /// <summary>Validation datasets (e.g. a test split); when set, nothing is held out of <see cref="Sources"/>.</summary>
    public IReadOnlyList<DatasetSource>? ValidationSources { get; init; }

    public ulong Seed { get; init; }

    /// <summary>Size of the training mixture when there are several sources (default: the largest without repeats).</summary>
    public int? MixTotal { get; init; }

    /// <summary>Folder for token caches; null tokenizes every time.</summary>
    public string? CacheDirectory { get; init; }

    public int? Parallelism { get; init; }
}

/// <summary>What one source gave: its tokenization counts, the examples it contributes to the training
/// mixture (fewer or more than it has when mixed by weight) and those held out for validation.</summary>
public sealed record SourceReport(DatasetSource Source, TokenizationReport Tokens, int Train, int Validation, bool FromCache, IReadOnlyList<string> BadRowSamples);

/// <summary>Tokenized training and validation examples, ready for <see cref="Packer"/> and <see cref="Batcher"/>.</summary>
public sealed record PreparedData(List<TokenizedExample> Train, List<TokenizedExample> Validation, IReadOnlyList<SourceReport> Sources);

/// <summary>Reads, formats, tokenizes (once, with a cache), splits and mixes the training data.</summary>
public static class DataPipeline
{
    public static PreparedData Prepare(DataOptions options, TokenizerSpec tokenizer)
    {
        if (options.Sources.Count == 0)
            throw new SharpTuneException("no training datasets were given");

        var tokenized = options.Sources.Select(s => Load(s, options, tokenizer)).ToList();
        var validationLoaded = options.ValidationSources?.Select(s => Load(s, options, tokenizer)).ToList();

        // Hold out validation examples per source before mixing, so that a repeated item never lands in both sets.
        int[] heldCounts = HeldOutCounts(options, tokenized.Select(t => t.Examples.Count).ToArray());
        var trainParts = new List<MixPart<TokenizedExample>>();
        var validation = new List<TokenizedExample>();
        var reports = new List<SourceReport>();
        var heldOut = new List<int>();
        foreach (var (loaded, i) in tokenized.Select((t, i) => (t, i)))
        {
            var split = heldCounts[i] > 0
                ? new ValidationSplit(Count: heldCounts[i]).Apply(loaded.Examples, options.Seed + (ulong)i)
                : (loaded.Examples, new List<TokenizedExample>());
            trainParts.Add(new MixPart<TokenizedExample>(split.Item1, loaded.Source.Weight));
            validation.AddRange(split.Item2);
            heldOut.Add(split.Item2.Count);
        }
        int[] trainCounts = trainParts.Count == 1 ? [trainParts[0].Items.Count] : DataMixer.PartCounts(trainParts, options.MixTotal);
        for (int i = 0; i < tokenized.Count; i++)
        {
            var loaded = tokenized[i];
            reports.Add(new SourceReport(loaded.Source, loaded.Report, trainCounts[i], heldOut[i], loaded.FromCache, loaded.BadRowSamples));
        }
        foreach (var loaded in validationLoaded ?? [])
        {
            validation.AddRange(loaded.Examples);
            reports.Add(new SourceReport(loaded.Source, loaded.Report, 0, loaded.Examples.Count, loaded.FromCache, loaded.BadRowSamples));
        }

        var train = trainParts.Count == 1 ? trainParts[0].Items.ToList() : DataMixer.Mix(trainParts, options.Seed, options.MixTotal);
        return new PreparedData(train, validation, reports);
    }

    /// <summary>The token cache key of a source: the data, the example and prompt formats, the tokenizer, the
    /// length and the loss mode.</summary>
    public static string CacheKey(DatasetSource source, DataOptions options, TokenizerSpec tokenizer) => TokenCache.Key(
        "sharptune-tokens-v1", DatasetReader.Fingerprint(source), options.Prompt.Fingerprint, tokenizer.Identity,
        $"bos={tokenizer.BosId} eos={tokenizer.EosId}", options.MaxLength.ToString(CultureInfo.InvariantCulture), options.LossOn.ToString());

    private static int[] HeldOutCounts(DataOptions options, int[] sizes)
    {
        var split = options.Validation;
        if (split.IsNone || options.ValidationSources is not null)
            return new int[sizes.Length];
        if (split.Count > 0)
        {
            double weightSum = options.Sources.Sum(s => s.Weight);
            return DataMixer.Apportion(options.Sources.Select(s => s.Weight / weightSum).ToArray(), split.Count);
        }
        return sizes.Select(n => (int)Math.Round(n * split.Fraction, MidpointRounding.AwayFromZero)).ToArray();
    }

    private sealed record Loaded(DatasetSource Source, List<TokenizedExample> Examples, TokenizationReport Report, bool FromCache, IReadOnlyList<string> BadRowSamples);

    private static Loaded Load(DatasetSource source, DataOptions options, TokenizerSpec tokenizer)
    {
        var badRows = new BadRowLog();
        var tokenizeOptions = new TokenizeOptions(options.MaxLength) { LossOn = options.LossOn, Parallelism = options.Parallelism };
        (List<TokenizedExample>, TokenizationReport) Build()
        {
            var formatted = Format(source, options, badRows);
            var (examples, report) = ExampleTokenizer.TokenizeAll(formatted, tokenizer, tokenizeOptions);
            return (examples, report with { BadRows = badRows.Count });
        }

        List<TokenizedExample> result;
        TokenizationReport tokenReport;
        bool fromCache = false;
        if (options.CacheDirectory is { } dir)
            (result, tokenReport, fromCache) = TokenCache.GetOrCreate(dir, CacheKey(source, options, tokenizer), Build);
        else
            (result, tokenReport) = Build();

        if (result.Count == 0)
        {
            string why = tokenReport.BadRows > 0 ? $"; {tokenReport.BadRows} bad rows, the first: {badRows.Samples.FirstOrDefault()}"
                : tokenReport.Dropped > 0 ? $"; {tokenReport.Dropped} examples had no response token within {options.MaxLength} tokens"
                : "";
            throw new SharpTuneException($"dataset {source} gave no training examples{why}");
        }
        return new Loaded(source, result, tokenReport, fromCache, badRows.Samples);
    }

    /// <summary>Formats the source's examples (in parallel: a chat template can be slow); a conversation the
    /// prompt format cannot take is a bad row.</summary>
    private static List<FormattedExample> Format(DatasetSource source, DataOptions options, BadRowLog badRows)
    {
        var examples = DatasetReader.ReadExamples(source, badRows).ToList();
        var formatted = new FormattedExample?[examples.Count];
        var errors = new BadRowException?[examples.Count];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.Parallelism ?? Environment.ProcessorCount };
        Parallel.For(0, examples.Count, parallel, i =>
        {
            try
            {
                formatted[i] = options.Prompt.Format(examples[i]);
            }
            catch (BadRowException e)
            {
                errors[i] = e;
            }
        });
        var result = new List<FormattedExample>(examples.Count);
        for (int i = 0; i < examples.Count; i++)
        {
            if (errors[i] is { } error)
                DatasetReader.Handle(error, source, badRows);
            else
                result.Add(formatted[i]!);
        }
        return result;
    }
}
