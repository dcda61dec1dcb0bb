using System.Globalization;
using SharpTune.Data;

namespace SharpTune.Evaluation;

/// <summary>A multiple-choice question: options A, B, C… and the index of the right one.</summary>
public sealed record ChoiceQuestion(string Location, string Question, IReadOnlyList<string> Options, int Answer, string Subject)
{
    public static string Letter(int index) => ((char)('A' + index)).ToString();
}

/// <summary>
/// Reads multiple-choice rows through the dataset readers (JSONL, CSV, Parquet, Hub folders). Layouts:
/// <c>cais/mmlu</c> (question, subject, choices [list], answer [index]); MedMCQA (question, opa…opd, cop [index
/// 0–3 as on the Hub], subject_name); and a plain one (question, options [list, or object keyed A/B/…, or
/// columns A, B, C, D], answer [letter or index], subject optional).
/// </summary>
public static class ChoiceReader
{
    public static List<ChoiceQuestion> Read(DatasetSource source, int limit = 0)
    {
        var questions = new List<ChoiceQuestion>();
        foreach (var row in DatasetReader.Read(source))
        {
            if (limit > 0 && questions.Count >= limit) break;
            questions.Add(Parse(row));
        }
        if (questions.Count == 0) throw new SharpTuneException($"{source}: no questions: the set is empty");
        return questions;
    }

    public static ChoiceQuestion Parse(DatasetRow row)
    {
        string question = Text(row, "question") ?? throw Bad(row, "no \"question\" text");
        var options = Options(row);
        if (options.Count < 2) throw Bad(row, $"needs at least two options (found {options.Count}); columns: {row.ColumnList}");
        object? answerValue = Value(row, "answer") ?? Value(row, "cop") ?? Value(row, "label")
            ?? throw Bad(row, "no \"answer\" (a letter such as B, or an option index)");
        int answer = AnswerIndex(row, answerValue, options.Count);
        string subject = Text(row, "subject") ?? Text(row, "subject_name") ?? "all";
        return new ChoiceQuestion(row.Location, question, options, answer, subject);
    }

    static List<string> Options(DatasetRow row)
    {
        if ((Value(row, "choices") ?? Value(row, "options")) is { } list)
        {
            if (list is IReadOnlyList<object?> items) return items.Select(i => Convert.ToString(i, CultureInfo.InvariantCulture) ?? "").ToList();
            if (list is IReadOnlyDictionary<string, object?> byLetter)
                return byLetter.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Convert.ToString(kv.Value, CultureInfo.InvariantCulture) ?? "").ToList();
            throw Bad(row, "\"choices\"/\"options\" must be a list or an object keyed by letter");
        }
        string[] medmcqa = ["opa", "opb", "opc", "opd", "ope"];
        var found = medmcqa.Select(c => Text(row, c)).TakeWhile(t => t is not null).ToList();
        if (found.Count > 0) return found!;
        return Enumerable.Range(0, 10).Select(i => Text(row, ChoiceQuestion.Letter(i))).TakeWhile(t => t is not null).ToList()!;
    }

    static int AnswerIndex(DatasetRow row, object value, int optionCount)
    {
        string range = $"A–{ChoiceQuestion.Letter(optionCount - 1)}";
        switch (value)
        {
            case long index:
                if (index < 0 || index >= optionCount)
                    throw Bad(row, $"answer index {index} is outside the {optionCount} options (0–{optionCount - 1}, i.e. {range})");
                return (int)index;
            case string s:
                string t = s.Trim().TrimEnd('.', ')').TrimStart('(');
                if (t.Length == 1 && char.IsAsciiLetter(t[0]))
                {
                    int i = char.ToUpperInvariant(t[0]) - 'A';
                    if (i >= optionCount) throw Bad(row, $"answer letter '{s}' is not one of the options {range}");
                    return i;
                }
                if (int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)) return AnswerIndex(row, (long)n, optionCount);
                throw Bad(row, $"answer '{s}' is not an option letter ({range}) or index");
            default:
                throw Bad(row, $"answer must be a letter or an index, got {value}");
        }
    }

    static object? Value(DatasetRow row, string column) => row.TryGetValue(column, out var v) ? v : null;

    static string? Text(DatasetRow row, string column) => Value(row, column) switch
    {
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => null,
    };

    static SharpTuneException Bad(DatasetRow row, string problem) => new($"{row.Location}: {problem}");
}
