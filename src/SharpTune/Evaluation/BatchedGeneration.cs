using System.Diagnostics;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Evaluation;

/// <summary>Throughput of a generation run.</summary>
public sealed record GenerationThroughput(int Samples, int Batches, long GeneratedTokens, double Seconds)
{
    public double SamplesPerSecond => Seconds > 0 ? Samples / Seconds : 0;
    public double TokensPerSecond => Seconds > 0 ? GeneratedTokens / Seconds : 0;
}

/// <summary>Generates for many prompts in batches packed by token budget (see <see cref="TokenBatches"/>), with
/// the existing batched, left-padded <see cref="TextGenerator"/>; results come back in prompt order.</summary>
public static class BatchedGeneration
{
    public static (List<GenerationResult> Results, GenerationThroughput Throughput) Run(
        CausalLM model, Tokenizer tokenizer, IReadOnlyList<int[]> prompts, GenerationOptions options,
        long tokenBudget, int maxBatch, string stage = "generate", IProgress<EvalProgress>? progress = null)
    {
        int maxPositions = model.Config.MaxPositionEmbeddings;
        var lengths = prompts.Select(p => p.Length).ToList();
        var batches = TokenBatches.Plan(lengths, options.MaxNewTokens, tokenBudget, maxBatch);
        var results = new GenerationResult[prompts.Count];
        var generator = new TextGenerator(model, tokenizer);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        int done = 0;
        progress?.Report(new EvalProgress(stage, 0, prompts.Count, 0, 0));
        foreach (var batch in batches)
        {
            foreach (int i in batch)
                if (prompts[i].Length >= maxPositions)
                    throw new SharpTuneException($"prompt {i + 1} has {prompts[i].Length} tokens, the model's context is {maxPositions}");
            var output = generator.Generate(batch.Select(i => prompts[i]).ToList(), options);
            for (int k = 0; k < batch.Length; k++)
            {
                results[batch[k]] = output[k];
                tokens += output[k].OutputIds.Length;
            }
            done += batch.Length;
            double seconds = clock.Elapsed.TotalSeconds;
            progress?.Report(new EvalProgress(stage, done, prompts.Count, seconds > 0 ? done / seconds : 0, seconds));
        }
        return (results.ToList(), new GenerationThroughput(prompts.Count, batches.Count, tokens, clock.Elapsed.TotalSeconds));
    }
}
