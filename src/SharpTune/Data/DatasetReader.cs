namespace SharpTune.Data;

/// <summary>
/// Reads rows from a <see cref="DatasetSource"/>: JSON (array or lines), CSV/TSV or Parquet, from a file, a
/// folder or a bundled sample, lazily (reading the first 500 rows of a 1 GB file reads only those rows).
/// </summary>
public static class DatasetReader
{
    /// <summary>The rows of the source's split and slice, in file order. Bad rows throw a
    /// <see cref="SharpTuneException"/> naming the file and row, or are counted in <paramref name="badRows"/>
    /// under <see cref="BadRowPolicy.Skip"/>.</summary>
    public static IEnumerable<DatasetRow> Read(DatasetSource source, BadRowLog? badRows = null)
    {
        var split = SplitSpec.Parse(source.Split);
        var files = DataFiles.Resolve(source.Path, source.Subset, split.Name);
        var (start, end) = split.Resolve(split.NeedsRowCount ? files.Sum(CountRecords) : null);

        long index = 0;
        foreach (var file in files)
        {
            foreach (var record in Records(file, source.MaxRowBytes))
            {
                if (index >= end)
                    yield break;
                if (index >= start)
                {
                    var row = TryParse(record, index, source, badRows);
                    if (row is not null)
                        yield return row;
                }
                index++;
            }
        }
    }

    /// <summary>The examples of the source: rows read as by <see cref="Read"/> and converted by the source's
    /// <see cref="DatasetSource.Format"/> (or the format detected from the first row's columns). A row that
    /// misses a column or has an empty one is a bad row.</summary>
    public static IEnumerable<Example> ReadExamples(DatasetSource source, BadRowLog? badRows = null)
    {
        ExampleFormat? format = null;
        foreach (var row in Read(source, badRows))
        {
            format ??= ExampleFormat.Resolve(source.Format, source.Columns, row);
            Example? example = null;
            try
            {
                example = format.ToExample(row);
            }
            catch (BadRowException e)
            {
                Handle(e, source, badRows);
            }
            if (example is not null)
                yield return example;
        }
    }

    /// <summary>Rows in the source's split, before slicing (from metadata for Parquet, by a scan for text files).</summary>
    public static long CountRows(DatasetSource source)
    {
        var split = SplitSpec.Parse(source.Split);
        return DataFiles.Resolve(source.Path, source.Subset, split.Name).Sum(CountRecords);
    }

    /// <summary>A string that changes when the source's settings or any of its files change (path, size and
    /// modification time), for cache keys.</summary>
    public static string Fingerprint(DatasetSource source)
    {
        var split = SplitSpec.Parse(source.Split);
        var files = DataFiles.Resolve(source.Path, source.Subset, split.Name);
        string columns = source.Columns is null ? "" : string.Join(",", source.Columns.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"));
        return string.Join("\n",
            [$"split={split}", $"subset={source.Subset}", $"format={source.Format}", $"columns={columns}",
             $"bad-rows={source.OnBadRow}", $"max-row-bytes={source.MaxRowBytes}", .. files.Select(f => f.Identity)]);
    }

    internal static void Handle(BadRowException e, DatasetSource source, BadRowLog? badRows)
    {
        if (source.OnBadRow == BadRowPolicy.Fail)
            throw new SharpTuneException(source.SkipHint is null ? e.Message : $"{e.Message} ({source.SkipHint})");
        badRows?.Add(e.Message);
    }

    private static DatasetRow? TryParse(RawRecord record, long index, DatasetSource source, BadRowLog? badRows)
    {
        try
        {
            return new DatasetRow(record.Location, index, record.Parse());
        }
        catch (BadRowException e)
        {
            Handle(e, source, badRows);
            return null;
        }
    }

    private static IEnumerable<RawRecord> Records(DataFile file, int maxRowBytes) => file.Kind switch
    {
        DataFileKind.Json => JsonRecords.Read(file, maxRowBytes),
        DataFileKind.Csv or DataFileKind.Tsv => CsvRecords.Read(file, maxRowBytes),
        DataFileKind.Parquet => ParquetRecords.Read(file),
        _ => throw new InvalidOperationException($"no reader for {file.Kind}"),
    };

    private static long CountRecords(DataFile file) => file.Kind switch
    {
        DataFileKind.Json => JsonRecords.Count(file),
        DataFileKind.Csv or DataFileKind.Tsv => CsvRecords.Count(file),
        DataFileKind.Parquet => ParquetRecords.Count(file),
        _ => throw new InvalidOperationException($"no reader for {file.Kind}"),
    };
}
