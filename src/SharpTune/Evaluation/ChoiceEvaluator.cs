using System.Text;
using System.Text.RegularExpressions;
using SharpTune.Generation;
using SharpTune.Models;

namespace SharpTune.Evaluation;

/// <summary>How a multiple-choice answer is read from the model: the option letter with the highest
/// log-likelihood after "Answer:", or the letter it generates.</summary>
public enum ChoiceMode { LogLikelihood, Generate }

public sealed record ChoiceOptions(ChoiceMode Mode = ChoiceMode.LogLikelihood, int Shots = 0, int MaxNewTokens = 32, long TokenBudget = 65536, int MaxBatch = 64);

/// <summary>Accuracy overall and per subject; Predicted[i] is the chosen option of question i (-1: no letter found).</summary>
public sealed record ChoiceResult(double Accuracy, int Correct, int Count, IReadOnlyDictionary<string, SubjectAccuracy> PerSubject, IReadOnlyList<int> Predicted);

public sealed record SubjectAccuracy(int Correct, int Count)
{
    public double Accuracy => Count == 0 ? 0 : (double)Correct / Count;
}

/// <summary>
/// MMLU-style multiple choice. The prompt is the original MMLU one: "The following are multiple choice questions
/// (with answers) about {subject}." then k solved examples of the same subject (taken from the set itself, never
/// the question asked) and the question with its lettered options, ending in "Answer:".
/// </summary>
public static class ChoiceEvaluator
{
    public static string Prompt(ChoiceQuestion q, IReadOnlyList<ChoiceQuestion> shots)
    {
        var sb = new StringBuilder();
        string subject = q.Subject == "all" ? "" : $" about {q.Subject.Replace('_', ' ')}";
        sb.Append("The following are multiple choice questions (with answers)").Append(subject).Append(".\n\n");
        foreach (var s in shots) sb.Append(Format(s)).Append(' ').Append(ChoiceQuestion.Letter(s.Answer)).Append("\n\n");
        sb.Append(Format(q));
        return sb.ToString();

        static string Format(ChoiceQuestion q)
        {
            var b = new StringBuilder(q.Question.Trim()).Append('\n');
            for (int i = 0; i < q.Options.Count; i++) b.Append(ChoiceQuestion.Letter(i)).Append(". ").Append(q.Options[i].Trim()).Append('\n');
            return b.Append("Answer:").ToString();
        }
    }

    /// <summary>The first k other questions of the same subject.</summary>
    public static List<ChoiceQuestion> Shots(IReadOnlyList<ChoiceQuestion> all, ChoiceQuestion q, int k) =>
        k <= 0 ? [] : all.Where(o => !ReferenceEquals(o, q) && o.Subject == q.Subject).Take(k).ToList();

    public static ChoiceResult Run(PretrainedModel m, IReadOnlyList<ChoiceQuestion> questions, ChoiceOptions options, string stage = "choice", IProgress<EvalProgress>? progress = null)
    {
        var prompts = questions.Select(q => Prompt(q, Shots(questions, q, options.Shots))).ToList();
        var predicted = options.Mode == ChoiceMode.LogLikelihood
            ? ByLikelihood(m, questions, prompts, options, stage, progress)
            : ByGeneration(m, questions, prompts, options, stage, progress);
        var perSubject = questions.Select((q, i) => (q.Subject, Right: predicted[i] == q.Answer)).GroupBy(x => x.Subject)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => new SubjectAccuracy(g.Count(x => x.Right), g.Count()));
        int correct = questions.Where((q, i) => predicted[i] == q.Answer).Count();
        return new ChoiceResult((double)correct / questions.Count, correct, questions.Count, perSubject, predicted);
    }

    static int[] ByLikelihood(PretrainedModel m, IReadOnlyList<ChoiceQuestion> questions, List<string> prompts, ChoiceOptions options, string stage, IProgress<EvalProgress>? progress)
    {
        var requests = new List<LikelihoodRequest>();
        for (int i = 0; i < questions.Count; i++)
        {
            var context = m.EncodeText(prompts[i]);
            for (int o = 0; o < questions[i].Options.Count; o++)
                requests.Add(new LikelihoodRequest(context, Continuation(m, prompts[i], context, " " + ChoiceQuestion.Letter(o))));
        }
        var scores = LogLikelihood.Score(m.CausalLM, requests, options.TokenBudget, options.MaxBatch, stage, progress);
        var predicted = new int[questions.Count];
        int at = 0;
        for (int i = 0; i < questions.Count; i++)
        {
            int n = questions[i].Options.Count;
            predicted[i] = Enumerable.Range(0, n).MaxBy(o => scores[at + o].LogProbability);
            at += n;
        }
        return predicted;
    }

    /// <summary>The continuation's tokens as they come out of encoding prompt + continuation whole (so the BPE
    /// boundary is the one the model sees), falling back to encoding it alone.</summary>
    internal static int[] Continuation(PretrainedModel m, string prompt, int[] context, string continuation)
    {
        var whole = m.EncodeText(prompt + continuation);
        return whole.Length > context.Length && whole.AsSpan(0, context.Length).SequenceEqual(context)
            ? whole[context.Length..]
            : m.Tokenizer.Encode(continuation, addSpecialTokens: false);
    }

    static int[] ByGeneration(PretrainedModel m, IReadOnlyList<ChoiceQuestion> questions, List<string> prompts, ChoiceOptions options, string stage, IProgress<EvalProgress>? progress)
    {
        var ids = prompts.Select(m.EncodeText).ToList();
        // no stop string: a reasoning model's <think> block has blank lines; ExtractLetter reads only the answer's first paragraph
        var generation = new GenerationOptions(options.MaxNewTokens, new SamplingOptions(), m.EosTokenIds, SkipSpecialTokens: false);
        var (results, _) = BatchedGeneration.Run(m.CausalLM, m.Tokenizer, ids, generation, options.TokenBudget, options.MaxBatch, stage, progress);
        return results.Select((r, i) => ExtractLetter(r.Text, questions[i].Options.Count)).ToArray();
    }

    /// <summary>The option a generated answer names, read from the first paragraph of the answer part (after any
    /// &lt;/think&gt;; a model that goes on to write the next question stops mattering there): "answer is (C)" /
    /// "Answer: C" first, else the first standalone option letter; -1 when there is none.</summary>
    public static int ExtractLetter(string text, int optionCount)
    {
        var split = ReasoningText.Split(text);
        string answer = split.HasReasoning ? split.Answer : text.Trim();
        int paragraphEnd = answer.IndexOf("\n\n", StringComparison.Ordinal);
        if (paragraphEnd >= 0) answer = answer[..paragraphEnd];
        string letters = $"A-{ChoiceQuestion.Letter(optionCount - 1)}";
        var stated = Regex.Match(answer, $@"[Aa]nswer(?: is)?\s*[:：]?\s*\(?([{letters}])\b");
        var match = stated.Success ? stated : Regex.Match(answer, $@"(?<![A-Za-z])\(?([{letters}])(?![A-Za-z])");
        return match.Success ? match.Groups[1].Value[0] - 'A' : -1;
    }
}
