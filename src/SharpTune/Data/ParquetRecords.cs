using Parquet;
using Parquet.Serialization;

namespace SharpTune.Data;

/// <summary>
/// Streams the rows of a Parquet file one row group at a time. Parquet.Net's untyped reader is used because
/// its typed reader fails when a column's nullability differs from the declared type, which is common in
/// files written by pyarrow.
/// </summary>
internal static class ParquetRecords
{
    public static IEnumerable<RawRecord> Read(DataFile file)
    {
        using var stream = Seekable(file);
        var (groupCount, columns) = Run(file, async () =>
        {
            await using var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: true);
            return (reader.RowGroupCount, reader.Schema.Fields.Select(f => f.Name).ToArray());
        });

        long row = 0;
        for (int group = 0; group < groupCount; group++)
        {
            int index = group;
            var rows = Run(file, async () =>
            {
                stream.Position = 0;
                var result = await ParquetSerializer.DeserializeUntypedAsync(stream, null, index);
                return result.Data;
            });
            foreach (var values in rows)
            {
                row++;
                var map = values;
                yield return new RawRecord($"{file.Name} row {row}", () => RowValues.ObjectFromParquet(map, columns));
            }
        }
    }

    /// <summary>The row count from the file's metadata, without reading any data.</summary>
    public static long Count(DataFile file)
    {
        using var stream = Seekable(file);
        return Run(file, async () =>
        {
            await using var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: true);
            return reader.RowGroups.Sum(g => g.RowCount);
        });
    }

    private static Stream Seekable(DataFile file)
    {
        var stream = file.Open();
        if (stream.CanSeek)
            return stream;
        var copy = new MemoryStream();
        using (stream)
            stream.CopyTo(copy);
        copy.Position = 0;
        return copy;
    }

    /// <summary>Runs Parquet.Net's async API to completion off the caller's synchronization context, and names
    /// the file in any failure.</summary>
    private static T Run<T>(DataFile file, Func<Task<T>> read)
    {
        try
        {
            return Task.Run(read).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not SharpTuneException and not OutOfMemoryException)
        {
            throw new SharpTuneException($"{file.Name}: cannot read the Parquet file: {e.Message}", e);
        }
    }
}
