using System.CommandLine;
using SharpTune.Evaluation;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune score --predictions P.jsonl --references R.jsonl`: text metrics, no model.</summary>
static class ScoreCommand
{
    public static Command Create(TextWriter stdout)
    {
        var predictions = new Option<string>("--predictions") { Description = "JSONL of {\"text\": ...} (optionally \"finish_reason\"), one generation per line", Required = true };
        var references = new Option<string>("--references") { Description = "JSONL of {\"text\": ...} (optionally \"reasoning\"), line i pairs with line i of --predictions", Required = true };
        var metrics = EvalFlags.Metrics();
        var stemmer = EvalFlags.Stemmer();
        var bleuTokenizer = EvalFlags.BleuTokenizer();
        var json = CommonOptions.Json();
        var cmd = new Command("score", "Score predictions against references (ROUGE, BLEU, chrF, exact match, token F1), reasoning-aware")
            { predictions, references, metrics, stemmer, bleuTokenizer, json };
        cmd.SetAction(p =>
        {
            var options = new ScoreOptions(EvalFlags.MetricNames(p, metrics), p.GetValue(stemmer), p.GetValue(bleuTokenizer)!);
            TextMetrics.Resolve(options.Metrics);   // an unknown name fails before the files are read
            var (preds, refs) = ScoreInput.Read(p.GetValue(predictions)!, p.GetValue(references)!);
            var scores = TextScores.Of(preds, refs, options);
            if (p.GetValue(json))
            {
                stdout.WriteLine(EvalJson.Serialize(EvalJson.ToJson(scores)));
                return;
            }
            stdout.WriteLine($"{preds.Count} pairs" + (scores.ReasoningStats is not null ? " (answers after </think> scored against the references)" : ""));
            foreach (var (name, value) in scores.Answer) stdout.WriteLine($"  {name,-12} {value:0.0000}");
            if (scores.Reasoning is not null)
            {
                stdout.WriteLine("reasoning against the references' \"reasoning\":");
                foreach (var (name, value) in scores.Reasoning) stdout.WriteLine($"  {name,-12} {value:0.0000}");
            }
            if (scores.ReasoningStats is { } st)
                stdout.WriteLine($"reasoning: {st.MeanReasoningWords:0.0} words on average, {st.ClosedShare:P1} close </think>, {st.UnfinishedShare:P1} never finish");
        });
        return cmd;
    }
}
