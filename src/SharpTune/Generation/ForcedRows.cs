using SharpTune.Data;

namespace SharpTune.Generation;

/// <summary>The rows of a teacher-forced decode (<see cref="TokenGenerator.ForcedLogits"/>): per row the prompt's
/// token ids and the continuation fed after it, read from JSONL (or any format the dataset readers take), one
/// <c>{"prompt_ids": [...], "continuation_ids": [...]}</c> per row, every continuation of one length.</summary>
public sealed record ForcedRows(IReadOnlyList<int[]> Prompts, IReadOnlyList<int[]> Continuations)
{
    public static ForcedRows Read(string path)
    {
        InputFile.Guard(path, () => { using var probe = File.OpenRead(path); return 0; });
        var prompts = new List<int[]>();
        var continuations = new List<int[]>();
        foreach (var row in DatasetReader.Read(new DatasetSource(path)))
        {
            prompts.Add(Ids(row, "prompt_ids"));
            continuations.Add(Ids(row, "continuation_ids"));
            if (continuations[^1].Length != continuations[0].Length)
                throw new SharpTuneException($"{row.Location}: \"continuation_ids\" has {continuations[^1].Length} tokens, the first row {continuations[0].Length}: every row is fed the same number of steps");
        }
        if (prompts.Count == 0) throw new SharpTuneException($"{path}: no rows: there is nothing to decode");
        return new ForcedRows(prompts, continuations);
    }

    static int[] Ids(DatasetRow row, string column)
    {
        string expected = $"expected {{\"prompt_ids\": [token ids], \"continuation_ids\": [token ids]}}";
        if (!row.TryGetValue(column, out var value) || value is not IReadOnlyList<object?> list)
            throw new SharpTuneException($"{row.Location}: no \"{column}\" list ({expected}; the row has {row.ColumnList})");
        if (list.Count == 0) throw new SharpTuneException($"{row.Location}: \"{column}\" is empty: it needs at least one token id");
        var ids = new int[list.Count];
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not long id || id < 0 || id > int.MaxValue)
                throw new SharpTuneException($"{row.Location}: \"{column}\"[{i}] is {list[i] ?? "null"}, not a token id (a non-negative integer)");
            ids[i] = (int)id;
        }
        return ids;
    }
}
