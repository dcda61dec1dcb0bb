using SharpTune.Evaluation;
using SharpTune.Generation;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Evaluation;

/// <summary>The model-side pieces on the tiny random model, on the CPU.</summary>
public class ModelEvaluationTests
{
    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel(seed: 5));

    [Fact]
    public void LogLikelihoodEqualsTheFullForwardPass()
    {
        using var m = PretrainedModel.Load(Tiny.Value, "cpu");
        var shortContext = m.EncodeText("Weight 70 kg");
        var longContext = m.EncodeText("The creatinine clearance of a 70 kg man aged 60 is");
        var multi = m.Tokenizer.Encode(" about 80 mL/min", addSpecialTokens: false);
        var requests = new List<LikelihoodRequest>
        {
            new(shortContext, [multi[0]]), new(shortContext, [multi[1]]),   // one row shared by both
            new(longContext, multi), new(shortContext, multi),
        };
        // a budget that splits the rows over several right-padded batches
        var ours = LogLikelihood.Score(m.CausalLM, requests, tokenBudget: 40, maxBatch: 2);
        for (int r = 0; r < requests.Count; r++)
        {
            var (context, continuation) = requests[r];
            double expected = Direct(m.CausalLM, context, continuation);
            Assert.Equal(continuation.Length, ours[r].Tokens);
            Assert.True(Math.Abs(expected - ours[r].LogProbability) < 1e-4, $"request {r}: {ours[r].LogProbability} vs {expected}");
        }
    }

    /// <summary>Sum of log-softmax over the whole sequence's logits, one sequence at a time.</summary>
    static double Direct(CausalLM model, int[] context, int[] continuation)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        int[] ids = [.. context, .. continuation];
        var logits = model.Forward(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length])).log_softmax(-1);
        double sum = 0;
        for (int k = 0; k < continuation.Length; k++) sum += logits[0, context.Length - 1 + k, continuation[k]].item<float>();
        return sum;
    }

    [Fact]
    public void BatchedGenerationReturnsResultsInPromptOrder()
    {
        using var m = PretrainedModel.Load(Tiny.Value, "cpu");
        var prompts = new[] { "a", "a longer prompt than the first", "mid length one", "x y" }.Select(m.EncodeText).ToList();
        var options = new GenerationOptions(MaxNewTokens: 4, EosTokenIds: []);
        var progress = new List<EvalProgress>();
        var (results, throughput) = BatchedGeneration.Run(m.CausalLM, m.Tokenizer, prompts, options, tokenBudget: 30, maxBatch: 8,
            progress: new InlineProgress(progress.Add));
        for (int i = 0; i < prompts.Count; i++) Assert.Equal(prompts[i], results[i].PromptIds);
        Assert.True(throughput.Batches > 1);
        Assert.Equal(4 * prompts.Count, throughput.GeneratedTokens);
        Assert.Equal(prompts.Count, progress[^1].Done);
        Assert.Equal(0, progress[0].Done);
    }

    sealed class InlineProgress(Action<EvalProgress> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress value) => report(value);
    }
}
