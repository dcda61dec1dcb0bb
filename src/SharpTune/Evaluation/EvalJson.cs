using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Evaluation;

/// <summary>eval.json: the scores of an evaluation in a stable, snake_case layout (documented in docs/evaluation.md).</summary>
public static class EvalJson
{
    public const string FileName = "eval.json";

    static readonly JsonSerializerOptions Options = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Serialize(JsonNode node) => node.ToJsonString(Options);

    /// <summary>Writes eval.json into <paramref name="dir"/> atomically and returns its path.</summary>
    public static string Write(EvalResult result, string dir)
    {
        string path = Path.Combine(dir, FileName);
        AtomicFile.WriteAllText(path, Serialize(ToJson(result)) + "\n");
        return path;
    }

    public static JsonObject ToJson(EvalResult r)
    {
        var models = new JsonObject();
        foreach (var m in r.Models) models[m.Name] = ToJson(m);
        return new JsonObject
        {
            ["model"] = r.Model,
            ["adapter"] = r.Adapter,
            ["data"] = r.Data,
            ["task"] = r.Task,
            ["choice_mode"] = r.ChoiceMode,
            ["count"] = r.Count,
            ["created_utc"] = r.CreatedUtc.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["models"] = models,
            ["samples"] = new JsonArray(r.Samples.Select(s => (JsonNode)new JsonObject
            {
                ["question"] = s.Question,
                ["reference"] = s.Reference,
                ["answers"] = new JsonObject(s.Answers.Select(a => KeyValuePair.Create(a.Key, (JsonNode?)a.Value))),
            }).ToArray()),
        };
    }

    /// <summary>The object `sharptune score --json` prints: the answer metrics at top level, then the reasoning's.</summary>
    public static JsonObject ToJson(TextScores s)
    {
        var o = Metrics(s.Answer);
        if (s.Reasoning is not null) o["reasoning"] = Metrics(s.Reasoning);
        if (s.ReasoningStats is { } st)
            o["reasoning_stats"] = new JsonObject
            {
                ["mean_reasoning_words"] = st.MeanReasoningWords,
                ["closed_think_share"] = st.ClosedShare,
                ["unfinished_share"] = st.UnfinishedShare,
                ["count"] = st.Count,
            };
        return o;
    }

    static JsonObject ToJson(ModelScores m)
    {
        var o = new JsonObject();
        if (m.Text is not null) o["text"] = ToJson(m.Text);
        if (m.Choice is not null) o["choice"] = ToJson(m.Choice);
        if (m.General is not null) o["general"] = ToJson(m.General);
        if (m.Bias is not null)
            o["bias"] = new JsonArray(m.Bias.Select(b => (JsonNode)new JsonObject
            {
                ["attribute"] = b.Attribute, ["templates"] = b.Templates, ["answer_gap"] = b.AnswerGap, ["likelihood_gap"] = b.LikelihoodGap,
            }).ToArray());
        if (m.Throughput is { } t)
            o["throughput"] = new JsonObject
            {
                ["samples"] = t.Samples, ["batches"] = t.Batches, ["generated_tokens"] = t.GeneratedTokens, ["seconds"] = t.Seconds,
                ["samples_per_second"] = t.SamplesPerSecond, ["tokens_per_second"] = t.TokensPerSecond,
            };
        return o;
    }

    static JsonObject ToJson(ChoiceResult c) => new()
    {
        ["accuracy"] = c.Accuracy,
        ["correct"] = c.Correct,
        ["count"] = c.Count,
        ["per_subject"] = new JsonObject(c.PerSubject.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)new JsonObject
        {
            ["accuracy"] = s.Value.Accuracy, ["correct"] = s.Value.Correct, ["count"] = s.Value.Count,
        }))),
    };

    static JsonObject Metrics(IReadOnlyDictionary<string, double> metrics) =>
        new(metrics.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
}
