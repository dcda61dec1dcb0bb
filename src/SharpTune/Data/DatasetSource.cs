namespace SharpTune.Data;

/// <summary>What to do with a row that cannot be used (malformed JSON, invalid UTF-8, missing or empty column).</summary>
public enum BadRowPolicy
{
    /// <summary>Stop with an error naming the file, the row and the problem.</summary>
    Fail,
    /// <summary>Leave the row out and count it in the <see cref="BadRowLog"/>.</summary>
    Skip,
}

/// <summary>
/// One dataset to read: a file, a folder (a Hugging Face dataset snapshot or any folder of data files), or a
/// bundled sample (<c>sample:medical-calculations</c>).
/// </summary>
/// <param name="Path">A .json/.jsonl/.csv/.tsv/.parquet file (optionally .gz for the text formats), a folder, or a sample name.</param>
public sealed record DatasetSource(string Path)
{
    /// <summary>Subset (Hugging Face "config"), e.g. <c>en</c> for medical-o1-reasoning-SFT. Needed only when the folder has several.</summary>
    public string? Subset { get; init; }

    /// <summary>Split with an optional slice: <c>train</c>, <c>train[:500]</c>, <c>train[100:200]</c>, <c>test[:10%]</c>, <c>train[-50:]</c>.</summary>
    public string Split { get; init; } = "train";

    /// <summary>Example format name (see <see cref="ExampleFormat.Names"/>); null detects it from the columns.</summary>
    public string? Format { get; init; }

    /// <summary>Column mapping, field → column, e.g. <c>question=Question</c>. Fields: question, context, reasoning, answer, messages, system.</summary>
    public IReadOnlyDictionary<string, string>? Columns { get; init; }

    public BadRowPolicy OnBadRow { get; init; } = BadRowPolicy.Fail;

    /// <summary>How the user can have bad rows skipped, added to a bad-row error; null where the command has no such
    /// setting (eval and score always stop at a bad row).</summary>
    public string? SkipHint { get; init; }

    /// <summary>Largest row accepted from a text file, in bytes. Longer rows are bad rows (an error, or skipped).</summary>
    public int MaxRowBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>Share of this source when several are mixed (weights are normalised over the sources).</summary>
    public double Weight { get; init; } = 1.0;

    public override string ToString() =>
        Path + (Subset is null ? "" : $" [{Subset}]") + $" {Split}";
}

/// <summary>A split name and an optional Hugging Face style slice, parsed from e.g. <c>train[:500]</c>.</summary>
public sealed record SplitSpec(string Name, SliceBound? Start = null, SliceBound? End = null)
{
    /// <summary>True when the slice needs the split's row count (percentages, negative indices).</summary>
    public bool NeedsRowCount =>
        Start is { } s && (s.Percent || s.Value < 0) || End is { } e && (e.Percent || e.Value < 0);

    public static SplitSpec Parse(string text)
    {
        string s = text.Trim();
        int open = s.IndexOf('[');
        if (open < 0)
            return new SplitSpec(RequireName(s, text));
        if (!s.EndsWith(']'))
            throw new SharpTuneException($"split '{text}': a slice must end with ']', e.g. train[:500]");
        string name = RequireName(s[..open].Trim(), text);
        string inner = s[(open + 1)..^1];
        int colon = inner.IndexOf(':');
        if (colon < 0)
            throw new SharpTuneException($"split '{text}': a slice needs ':', e.g. train[:500] or train[100:200]");
        return new SplitSpec(name, ParseBound(inner[..colon], text), ParseBound(inner[(colon + 1)..], text));
    }

    /// <summary>The row range [start, end) that the slice selects; <paramref name="rowCount"/> may be null when
    /// <see cref="NeedsRowCount"/> is false (the end is then open).</summary>
    public (long Start, long End) Resolve(long? rowCount)
    {
        long start = Start is { } s ? s.Resolve(rowCount, Name) : 0;
        long end = End is { } e ? e.Resolve(rowCount, Name) : rowCount ?? long.MaxValue;
        if (rowCount is { } n)
        {
            start = Math.Clamp(start, 0, n);
            end = Math.Clamp(end, 0, n);
        }
        return (start, Math.Max(start, end));
    }

    public override string ToString() =>
        Start is null && End is null ? Name : $"{Name}[{Start}:{End}]";

    private static string RequireName(string name, string text) =>
        name.Length > 0 ? name : throw new SharpTuneException($"split '{text}': the split name is missing, e.g. train[:500]");

    private static SliceBound? ParseBound(string part, string text)
    {
        part = part.Trim();
        if (part.Length == 0)
            return null;
        bool percent = part.EndsWith('%');
        string number = percent ? part[..^1].Trim() : part;
        if (!long.TryParse(number, System.Globalization.NumberStyles.AllowLeadingSign,
                System.Globalization.CultureInfo.InvariantCulture, out long value))
            throw new SharpTuneException($"split '{text}': '{part}' is not a row number or a percentage");
        if (percent && (value < -100 || value > 100))
            throw new SharpTuneException($"split '{text}': {part} is not a percentage between -100% and 100%");
        return new SliceBound(value, percent);
    }
}

/// <summary>One end of a slice: a row index (negative counts from the end) or a percentage of the rows.</summary>
public readonly record struct SliceBound(long Value, bool Percent)
{
    internal long Resolve(long? rowCount, string split)
    {
        if (!Percent && Value >= 0)
            return Value;
        long n = rowCount ?? throw new InvalidOperationException($"slice of '{split}' needs the row count");
        long rows = Percent ? (long)Math.Round(Math.Abs(Value) * n / 100.0, MidpointRounding.AwayFromZero) : Math.Abs(Value);
        return Value < 0 ? n - rows : rows;
    }

    public override string ToString() => Percent ? $"{Value}%" : Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
