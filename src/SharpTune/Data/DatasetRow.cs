namespace SharpTune.Data;

/// <summary>
/// One row as read from a data file. Values are <c>string</c>, <c>long</c>, <c>double</c>, <c>bool</c>, null,
/// a list (<c>IReadOnlyList&lt;object?&gt;</c>) or a nested object (<c>IReadOnlyDictionary&lt;string, object?&gt;</c>),
/// whatever the file format.
/// </summary>
/// <param name="Location">Where the row is, for messages: <c>train.jsonl:17</c>, <c>data.csv:40 (row 12)</c>, <c>part-0.parquet row 5</c>.</param>
/// <param name="Index">0-based position of the row in the split (all files of the split in order).</param>
/// <param name="Values">Column → value, in the file's column order.</param>
public sealed record DatasetRow(string Location, long Index, IReadOnlyDictionary<string, object?> Values)
{
    /// <summary>The column's value; an exact name match first, then a unique case-insensitive one.</summary>
    public bool TryGetValue(string column, out object? value)
    {
        if (Values.TryGetValue(column, out value))
            return true;
        string? match = null;
        foreach (string key in Values.Keys)
        {
            if (!string.Equals(key, column, StringComparison.OrdinalIgnoreCase))
                continue;
            if (match is not null)
            {
                value = null;
                return false;
            }
            match = key;
        }
        if (match is null)
            return false;
        value = Values[match];
        return true;
    }

    public bool HasColumn(string column) => TryGetValue(column, out _);

    /// <summary>The column names, for error messages.</summary>
    public string ColumnList => Values.Count == 0 ? "(none)" : ErrorText.List(Values.Keys);
}

/// <summary>Counts the rows that were skipped under <see cref="BadRowPolicy.Skip"/> and keeps the first messages.</summary>
public sealed class BadRowLog
{
    private readonly List<string> _samples = [];
    private readonly object _lock = new();
    private int _count;

    /// <summary>How many messages are kept (the count goes on past it).</summary>
    public int SampleLimit { get; init; } = 20;

    public int Count
    {
        get { lock (_lock) return _count; }
    }

    /// <summary>The first messages, each naming the file, the row and the problem.</summary>
    public IReadOnlyList<string> Samples
    {
        get { lock (_lock) return _samples.ToArray(); }
    }

    public void Add(string message)
    {
        lock (_lock)
        {
            _count++;
            if (_samples.Count < SampleLimit)
                _samples.Add(message);
        }
    }
}

/// <summary>Thrown inside the data code for a row that cannot be used; the reader turns it into an error or a
/// skipped row according to <see cref="BadRowPolicy"/>. The message already names the file and row.</summary>
internal sealed class BadRowException(string message) : Exception(message);
