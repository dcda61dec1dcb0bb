using System.Buffers;
using System.Text.Json;

namespace SharpTune.Data;

/// <summary>
/// Streams the records of a JSON file: a top-level array of objects, or JSON lines (one object per line). Only
/// the bytes of one record are held at a time; a record is parsed when asked for, so a malformed record is a
/// bad row that can be skipped while the scan goes on.
/// </summary>
internal static class JsonRecords
{
    private static readonly SearchValues<byte> Structural = SearchValues.Create("\"{}[],"u8);

    /// <param name="withData">false when only counting: the records then carry no bytes.</param>
    public static IEnumerable<RawRecord> Read(DataFile file, int maxRowBytes, bool withData = true)
    {
        using var stream = file.Open();
        var reader = new ByteReader(stream);
        reader.SkipByteOrderMark(file.Name);
        SkipWhitespace(reader);
        int first = reader.Peek();
        if (first == '[')
        {
            reader.Read();
            foreach (var record in ArrayElements(file, reader, maxRowBytes, withData))
                yield return record;
        }
        else if (first == '{' || first == -1)
        {
            foreach (var record in Lines(file, reader, maxRowBytes, withData))
                yield return record;
        }
        else
        {
            throw new SharpTuneException(
                $"{file.Name}:{reader.Line}: expected a JSON array of objects or JSON lines, found '{(char)first}'");
        }
    }

    /// <summary>Counts the records without parsing them (for percentage and negative slices).</summary>
    public static long Count(DataFile file) => Read(file, 0, withData: false).LongCount();

    private static IEnumerable<RawRecord> Lines(DataFile file, ByteReader reader, int maxRowBytes, bool withData)
    {
        var line = new RowBuffer(maxRowBytes);
        while (true)
        {
            long lineNumber = reader.Line;
            line.Clear();
            bool ended = false;
            bool blank = true;
            for (var span = reader.Buffered; !span.IsEmpty; span = reader.Buffered)
            {
                int newline = span.IndexOf((byte)'\n');
                var chunk = newline >= 0 ? span[..newline] : span;
                blank &= chunk.IndexOfAnyExcept(" \t\r"u8) < 0;
                line.AddRange(chunk);
                reader.Skip(newline >= 0 ? newline + 1 : span.Length);
                if (newline >= 0)
                {
                    ended = true;
                    break;
                }
            }
            if (!blank)
                yield return Record(file, line, lineNumber, $"{file.Name}:{lineNumber}", withData);
            if (!ended)
                yield break;
        }
    }

    private static IEnumerable<RawRecord> ArrayElements(DataFile file, ByteReader reader, int maxRowBytes, bool withData)
    {
        var element = new RowBuffer(maxRowBytes);
        long row = 0;
        while (true)
        {
            SkipWhitespace(reader);
            int next = reader.Peek();
            if (next == ']')
            {
                reader.Read();
                SkipWhitespace(reader);
                if (reader.Peek() != -1)
                    throw new SharpTuneException($"{file.Name}:{reader.Line}: unexpected content after the end of the JSON array");
                yield break;
            }
            if (next == -1)
                throw new SharpTuneException($"{file.Name}:{reader.Line}: the JSON array is not closed (missing ']')");

            row++;
            long startLine = reader.Line;
            element.Clear();
            int end = ScanElement(reader, element);
            string location = $"{file.Name}:{startLine} (row {row})";
            if (end == -1)
            {
                // The array ends inside this element: report it as a bad row, nothing after it can be read.
                string message = $"{location}: the file ends inside this element (unbalanced brackets or an unclosed string)";
                yield return new RawRecord(location, () => throw new BadRowException(message));
                yield break;
            }
            yield return Record(file, element, startLine, location, withData);
            if (end == ']')
            {
                SkipWhitespace(reader);
                if (reader.Peek() != -1)
                    throw new SharpTuneException($"{file.Name}:{reader.Line}: unexpected content after the end of the JSON array");
                yield break;
            }
        }
    }

    /// <summary>Copies one array element into <paramref name="element"/> and consumes the ',' or ']' after it,
    /// which it returns (-1 at the end of the file). Strings and nesting are tracked so that commas inside the
    /// element do not end it; runs of ordinary bytes are skipped with vectorised searches.</summary>
    private static int ScanElement(ByteReader reader, RowBuffer element)
    {
        int depth = 0;
        bool inString = false, escaped = false;
        for (var span = reader.Buffered; !span.IsEmpty; span = reader.Buffered)
        {
            int i = 0;
            while (i < span.Length)
            {
                if (escaped)
                {
                    escaped = false;
                    i++;
                    continue;
                }
                if (inString)
                {
                    int quoteOrEscape = span[i..].IndexOfAny((byte)'"', (byte)'\\');
                    if (quoteOrEscape < 0)
                    {
                        i = span.Length;
                        break;
                    }
                    i += quoteOrEscape;
                    if (span[i] == '\\')
                        escaped = true;
                    else
                        inString = false;
                    i++;
                    continue;
                }
                int structural = span[i..].IndexOfAny(Structural);
                if (structural < 0)
                {
                    i = span.Length;
                    break;
                }
                i += structural;
                byte b = span[i];
                if (b == '"')
                {
                    inString = true;
                }
                else if (b == '{' || b == '[')
                {
                    depth++;
                }
                else if ((b == '}' || b == ']') && depth > 0)
                {
                    depth--;
                }
                else if (b == ']' || b == ',' && depth == 0)
                {
                    element.AddRange(span[..i]);
                    reader.Skip(i + 1);
                    return b; // the end of the element: the array's ',' or ']'
                }
                i++;
            }
            element.AddRange(span[..i]);
            reader.Skip(i);
        }
        return -1;
    }

    private static RawRecord Record(DataFile file, RowBuffer bytes, long firstLine, string location, bool withData)
    {
        if (!withData)
            return new RawRecord(location, () => throw new InvalidOperationException("the record was read for counting only"));
        if (bytes.Overflowed)
        {
            string message = bytes.OversizeMessage(location);
            return new RawRecord(location, () => throw new BadRowException(message));
        }
        byte[] copy = bytes.ToArray();
        return new RawRecord(location, () => ParseObject(copy, file.Name, firstLine, location));
    }

    private static IReadOnlyDictionary<string, object?> ParseObject(byte[] bytes, string fileName, long firstLine, string location)
    {
        RowValues.RequireUtf8(bytes, location);
        try
        {
            using var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 256 });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new BadRowException($"{location}: expected a JSON object, found {Describe(root.ValueKind)}");
            return RowValues.ObjectFromJson(root);
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json refuses to turn an escaped lone surrogate ("\ud800") into a string.
            throw new BadRowException($"{location}: a string holds a lone surrogate escape (such as \\ud800), which is not valid Unicode text");
        }
        catch (JsonException e)
        {
            long line = firstLine + (e.LineNumber ?? 0);
            throw new BadRowException($"{fileName}:{line}: malformed JSON: {ParserMessage(e)}");
        }
    }

    /// <summary>The parser's own words without its position suffix (the position is made absolute by the caller).</summary>
    private static string ParserMessage(JsonException e)
    {
        string message = e.Message;
        int at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        string text = at >= 0 ? message[..at] : message;
        return e.BytePositionInLine is { } column ? $"{text} (byte {column} of the line)" : text;
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Null => "null",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static void SkipWhitespace(ByteReader reader)
    {
        while (reader.Peek() is ' ' or '\t' or '\r' or '\n')
            reader.Read();
    }
}
