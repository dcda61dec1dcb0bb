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
        using var stream = Open(file);
        var (groupCount, columns) = Run(file, async () =>
        {
            stream.BeginPass();
            await using var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: true);
            return (reader.RowGroupCount, reader.Schema.Fields.Select(f => f.Name).ToArray());
        });

        long row = 0;
        for (int group = 0; group < groupCount; group++)
        {
            int index = group;
            var rows = Run(file, async () =>
            {
                stream.BeginPass();
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
        using var stream = Open(file);
        return Run(file, async () =>
        {
            stream.BeginPass();
            await using var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: true);
            return reader.RowGroups.Sum(g => g.RowCount);
        });
    }

    /// <summary>The file as a seekable stream whose footer has been checked, behind Parquet.Net's guards.</summary>
    private static ParquetInput Open(DataFile file)
    {
        var stream = file.Open();
        if (!stream.CanSeek)
        {
            var copy = new MemoryStream();
            using (stream)
                stream.CopyTo(copy);
            copy.Position = 0;
            stream = copy;
        }
        try
        {
            CheckFrame(stream, file.Name);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new ParquetInput(stream, file.Name);
    }

    /// <summary>"PAR1" at both ends, a footer length that fits the file and footer metadata that stays within it:
    /// checked here because Parquet.Net allocates whatever length the footer claims and reads a damaged footer past
    /// its end.</summary>
    private static void CheckFrame(Stream stream, string name)
    {
        long length = stream.Length;
        Span<byte> head = stackalloc byte[4], tail = stackalloc byte[8];
        if (length < 12)
            throw new SharpTuneException($"{name}: cannot read the Parquet file: {length} bytes is too short for one");
        stream.Position = 0;
        stream.ReadExactly(head);
        stream.Position = length - 8;
        stream.ReadExactly(tail);
        stream.Position = 0;
        if (!head.SequenceEqual("PAR1"u8) || !tail[4..].SequenceEqual("PAR1"u8))
            throw new SharpTuneException($"{name}: cannot read the Parquet file: no PAR1 marker at its start and end");
        long footer = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(tail);
        if (footer == 0 || footer > length - 12)
            throw new SharpTuneException($"{name}: cannot read the Parquet file: its footer claims {footer} bytes in a file of {length} (truncated or corrupt)");
        var metadata = new byte[footer];
        stream.Position = length - 8 - footer;
        stream.ReadExactly(metadata);
        stream.Position = 0;
        ParquetFooter.Check(metadata, name);
    }

    /// <summary>Runs Parquet.Net's async API to completion off the caller's synchronization context, and names
    /// the file in any failure.</summary>
    private static T Run<T>(DataFile file, Func<Task<T>> read)
    {
        try
        {
            return Task.Run(read).GetAwaiter().GetResult();
        }
        catch (OutOfMemoryException e)
        {
            // A corrupt size field inside the file asks for an impossible allocation.
            throw new SharpTuneException($"{file.Name}: cannot read the Parquet file: it asks for more memory than is available (a corrupt size field?)", e);
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or NullReferenceException or InvalidCastException
                                      or OverflowException or InvalidOperationException or NotSupportedException or FormatException)
        {
            // Parquet.Net tripping over values a damaged file holds: its words would be about its own code
            throw new SharpTuneException($"{file.Name}: cannot read the Parquet file: it is damaged, or uses a feature this reader does not know (Parquet.Net failed with {e.GetType().Name})", e);
        }
        catch (Exception e) when (e is not SharpTuneException)
        {
            throw new SharpTuneException($"{file.Name}: cannot read the Parquet file: {ErrorText.OneLine(e.Message, 200)}", e);
        }
    }
}
