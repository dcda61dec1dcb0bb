using SharpTune.Data;

namespace SharpTune.Evaluation;

/// <summary>One reference row of `sharptune score`: the answer text, and optionally the reasoning to score a
/// generation's &lt;think&gt; block against.</summary>
public sealed record ReferenceRow(string Text, string? Reasoning);

/// <summary>One prediction row: the generated text, and optionally how generation ended ("length" = cut off).</summary>
public sealed record PredictionRow(string Text, string? FinishReason);

/// <summary>Reads the JSONL (or any format the dataset readers take) files of `sharptune score`: one
/// <c>{"text": "..."}</c> per row, row i of the predictions paired with row i of the references.</summary>
public static class ScoreInput
{
    public static (List<PredictionRow> Predictions, List<ReferenceRow> References) Read(string predictionsPath, string referencesPath)
    {
        var predictions = Rows(predictionsPath).Select(r => new PredictionRow(Text(r), Optional(r, "finish_reason"))).ToList();
        var references = Rows(referencesPath).Select(r => new ReferenceRow(Text(r), Optional(r, "reasoning"))).ToList();
        if (predictions.Count == 0) throw new SharpTuneException($"{predictionsPath}: no rows: there is nothing to score");
        if (references.Count == 0) throw new SharpTuneException($"{referencesPath}: no rows: there is nothing to score");
        if (predictions.Count != references.Count)
        {
            var (longer, shorter, n) = predictions.Count > references.Count
                ? (predictionsPath, referencesPath, references.Count) : (referencesPath, predictionsPath, predictions.Count);
            throw new SharpTuneException($"{longer}: row {n + 1} has no partner: {shorter} ends after {n} rows " +
                $"({predictions.Count} predictions, {references.Count} references; row i of one pairs with row i of the other)");
        }
        return (predictions, references);
    }

    static IEnumerable<DatasetRow> Rows(string path)
    {
        // a folder, a symlink loop or no permission: one error naming the path, before the dataset reader looks
        InputFile.Guard(path, () => { using var probe = File.OpenRead(path); return 0; });
        return DatasetReader.Read(new DatasetSource(path));
    }

    static string Text(DatasetRow row)
    {
        if (!row.TryGetValue("text", out var value) || value is not string text)
            throw new SharpTuneException($"{row.Location}: no \"text\" string (expected {{\"text\": \"...\"}}; the row has {row.ColumnList})");
        return text;
    }

    static string? Optional(DatasetRow row, string column) => row.TryGetValue(column, out var v) && v is string s ? s : null;
}
