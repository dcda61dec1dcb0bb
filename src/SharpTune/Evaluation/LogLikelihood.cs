using System.Diagnostics;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Evaluation;

/// <summary>A continuation to score after a context. Requests that share one context array and continue it with
/// one token are scored from a single row.</summary>
public sealed record LikelihoodRequest(int[] Context, int[] Continuation);

/// <summary>Sum of the continuation's token log-probabilities (natural log) and its token count.</summary>
public readonly record struct LikelihoodResult(double LogProbability, int Tokens);

/// <summary>Log-likelihood of continuations, batched by token budget: rows are right-padded (causal attention
/// keeps pads out of real positions) and lm_head runs only at the scored positions.</summary>
public static class LogLikelihood
{
    sealed record Row(int[] Ids, List<(int Request, int Start, int[] Tokens)> Targets);

    public static LikelihoodResult[] Score(CausalLM model, IReadOnlyList<LikelihoodRequest> requests, long tokenBudget, int maxBatch,
        string stage = "log-likelihood", IProgress<EvalProgress>? progress = null)
    {
        var rows = BuildRows(requests, model.Config.MaxPositionEmbeddings);
        var results = new LikelihoodResult[requests.Count];
        var batches = TokenBatches.Plan(rows.Select(r => r.Ids.Length).ToList(), 0, tokenBudget, maxBatch);
        var clock = Stopwatch.StartNew();
        int done = 0;
        using var noGrad = torch.no_grad();
        foreach (var batch in batches)
        {
            using var scope = NewDisposeScope();
            int B = batch.Length, T = batch.Max(i => rows[i].Ids.Length);
            var ids = new long[B * T];
            var flatPositions = new List<long>();
            var targets = new List<long>();
            var owners = new List<int>();
            for (int b = 0; b < B; b++)
            {
                var row = rows[batch[b]];
                for (int t = 0; t < row.Ids.Length; t++) ids[b * T + t] = row.Ids[t];
                for (int t = row.Ids.Length; t < T; t++) ids[b * T + t] = row.Ids[^1];   // pads, after every real token
                foreach (var (request, start, tokens) in row.Targets)
                    for (int k = 0; k < tokens.Length; k++)
                    {
                        flatPositions.Add((long)b * T + start + k);
                        targets.Add(tokens[k]);
                        owners.Add(request);
                    }
            }
            var hidden = model.Hidden(tensor(ids, [B, T], device: model.Device));                     // [B, T, H]
            var picked = hidden.view(B * T, -1).index_select(0, tensor(flatPositions.ToArray(), device: model.Device));   // [N, H]
            var logProbs = F.linear(picked, model.LmHead).to(float32).log_softmax(-1);                 // [N, V]
            var chosen = logProbs.gather(1, tensor(targets.ToArray(), device: model.Device).unsqueeze(1)).squeeze(1).cpu();
            var values = chosen.data<float>().ToArray();
            for (int n = 0; n < values.Length; n++)
            {
                var r = results[owners[n]];
                results[owners[n]] = new LikelihoodResult(r.LogProbability + values[n], r.Tokens + 1);
            }
            done += B;
            double seconds = clock.Elapsed.TotalSeconds;
            progress?.Report(new EvalProgress(stage, done, rows.Count, seconds > 0 ? done / seconds : 0, seconds));
        }
        return results;
    }

    static List<Row> BuildRows(IReadOnlyList<LikelihoodRequest> requests, int maxPositions)
    {
        var rows = new List<Row>();
        var shared = new Dictionary<int[], Row>(ReferenceEqualityComparer.Instance);
        for (int r = 0; r < requests.Count; r++)
        {
            var (context, continuation) = requests[r];
            if (continuation.Length == 0) throw new ArgumentException($"request {r} has an empty continuation");
            if (context.Length == 0) throw new ArgumentException($"request {r} has an empty context (start it with BOS or some text)");
            if (continuation.Length == 1 && context.Length <= maxPositions)
            {
                if (!shared.TryGetValue(context, out var row))
                {
                    row = new Row(context, []);
                    shared[context] = row;
                    rows.Add(row);
                }
                row.Targets.Add((r, context.Length - 1, continuation));
                continue;
            }
            // keep the end of the context when the whole does not fit the model's positions
            int keep = Math.Min(context.Length, Math.Max(1, maxPositions - continuation.Length));
            int[] ids = [.. context[^keep..], .. continuation];
            if (ids.Length > maxPositions) throw new SharpTuneException($"a continuation of {continuation.Length} tokens does not fit the model's {maxPositions} positions");
            rows.Add(new Row(ids, [(r, keep - 1, continuation)]));
        }
        return rows;
    }
}
