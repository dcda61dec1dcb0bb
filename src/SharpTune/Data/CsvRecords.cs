using System.Text;

namespace SharpTune.Data;

/// <summary>
/// Streams the records of a CSV or TSV file (RFC 4180: fields in double quotes may hold the delimiter, line
/// breaks and doubled quotes). The first record is the header. The scan works on bytes, so invalid UTF-8 in one
/// field makes only that row bad. Blank lines are skipped. A quote after a closing quote's text is kept as text,
/// as Python's csv module does.
/// </summary>
internal static class CsvRecords
{
    public static IEnumerable<RawRecord> Read(DataFile file, int maxRowBytes)
    {
        byte delimiter = file.Kind == DataFileKind.Tsv ? (byte)'\t' : (byte)',';
        using var stream = file.Open();
        var reader = new ByteReader(stream);
        reader.SkipByteOrderMark(file.Name);
        var scanner = new Scanner(reader, delimiter, maxRowBytes);

        if (!scanner.Next(out long headerLine, out string? headerError))
            yield break; // empty file: no rows
        if (headerError is not null)
            throw new SharpTuneException($"{file.Name}:{headerLine}: cannot read the header: {headerError}");
        string[] columns = Header(file, scanner.Fields, headerLine);

        long row = 0;
        while (scanner.Next(out long line, out string? error))
        {
            row++;
            string location = $"{file.Name}:{line} (row {row})";
            if (error is not null)
            {
                string message = $"{location}: {error}";
                yield return new RawRecord(location, () => throw new BadRowException(message));
                continue;
            }
            var fields = scanner.Fields.ToArray();
            yield return new RawRecord(location, () => ToRow(fields, columns, location, file.Kind));
        }
    }

    public static long Count(DataFile file)
    {
        long count = 0;
        foreach (var _ in Read(file, int.MaxValue))
            count++;
        return count;
    }

    private static string[] Header(DataFile file, List<byte[]> fields, long line)
    {
        var columns = new string[fields.Count];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < fields.Count; i++)
        {
            try
            {
                RowValues.RequireUtf8(fields[i], $"{file.Name}:{line} (header)");
            }
            catch (BadRowException e)
            {
                throw new SharpTuneException(e.Message);
            }
            columns[i] = Encoding.UTF8.GetString(fields[i]);
            if (!seen.Add(columns[i]))
                throw new SharpTuneException($"{file.Name}:{line}: the header names column '{ErrorText.OneLine(columns[i])}' twice");
        }
        return columns;
    }

    private static IReadOnlyDictionary<string, object?> ToRow(byte[][] fields, string[] columns, string location, DataFileKind kind)
    {
        if (fields.Length != columns.Length)
        {
            throw new BadRowException(
                $"{location}: expected {columns.Length} fields as in the header ({ErrorText.List(columns)}), found {fields.Length}" +
                (kind == DataFileKind.Csv ? " (is a field with a comma not in double quotes?)" : ""));
        }
        var values = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        for (int i = 0; i < fields.Length; i++)
        {
            RowValues.RequireUtf8(fields[i], $"{location} column '{ErrorText.OneLine(columns[i])}'");
            values[columns[i]] = Encoding.UTF8.GetString(fields[i]);
        }
        return values;
    }

    /// <summary>The byte-level state machine; <see cref="Fields"/> holds the last record's unquoted fields.</summary>
    private sealed class Scanner(ByteReader reader, byte delimiter, int maxRowBytes)
    {
        private readonly RowBuffer _field = new(int.MaxValue);
        private long _recordBytes;
        private bool _fieldStarted;

        public List<byte[]> Fields { get; } = [];

        /// <summary>Reads the next non-blank record; false at the end of the file. <paramref name="error"/> is set
        /// for a record that was read to its end but cannot be used (too long, an unclosed quote).</summary>
        public bool Next(out long line, out string? error)
        {
            while (true)
            {
                line = reader.Line;
                error = null;
                if (reader.Peek() == -1)
                    return false;
                bool blank = ReadRecord(out bool unclosedQuote);
                if (unclosedQuote)
                    error = "a quoted field is not closed before the end of the file";
                else if (_recordBytes > maxRowBytes)
                    error = $"the row is {RowBuffer.FormatBytes(_recordBytes)}, over the limit of {RowBuffer.FormatBytes(maxRowBytes)} (raise DatasetSource.MaxRowBytes to read it)";
                if (!blank || error is not null)
                    return true;
            }
        }

        private bool ReadRecord(out bool unclosedQuote)
        {
            Fields.Clear();
            _field.Clear();
            _fieldStarted = false;
            _recordBytes = 0;
            unclosedQuote = false;
            bool quoted = false, afterQuote = false, any = false;
            int b;
            while ((b = reader.Read()) != -1)
            {
                if (quoted)
                {
                    if (b == '"')
                    {
                        quoted = false;
                        afterQuote = true;
                    }
                    else
                    {
                        Add(b);
                    }
                    continue;
                }
                if (b == '"')
                {
                    any = true;
                    if (afterQuote)
                    {
                        Add('"'); // a doubled quote inside a quoted field
                        quoted = true;
                        afterQuote = false;
                    }
                    else if (!_fieldStarted)
                    {
                        quoted = true;
                        _fieldStarted = true;
                    }
                    else
                    {
                        Add(b); // a quote in the middle of an unquoted field is text
                    }
                    continue;
                }
                afterQuote = false;
                if (b == delimiter)
                {
                    any = true;
                    EndField();
                }
                else if (b == '\n')
                {
                    break;
                }
                else if (b == '\r' && reader.Peek() == '\n')
                {
                    reader.Read();
                    break;
                }
                else
                {
                    any = true;
                    Add(b);
                }
            }
            unclosedQuote = quoted;
            EndField();
            return !any;
        }

        private void Add(int b)
        {
            _fieldStarted = true;
            _recordBytes++;
            if (_recordBytes <= maxRowBytes)
                _field.Add((byte)b);
        }

        private void EndField()
        {
            Fields.Add(_field.ToArray());
            _field.Clear();
            _fieldStarted = false;
        }
    }
}
