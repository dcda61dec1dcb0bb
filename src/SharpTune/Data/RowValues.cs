using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace SharpTune.Data;

/// <summary>Turns parsed JSON and Parquet values into the plain value model of <see cref="DatasetRow"/>.</summary>
internal static class RowValues
{
    public static object? FromJson(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => element.TryGetInt64(out long l) ? l
            : element.TryGetDouble(out double d) ? d
            : element.GetRawText(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => element.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => ObjectFromJson(element),
        _ => null,
    };

    public static OrderedDictionary<string, object?> ObjectFromJson(JsonElement element)
    {
        var values = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
            values[property.Name] = FromJson(property.Value); // a repeated key keeps its last value, as Python's json does
        return values;
    }

    /// <summary>Parquet.Net's untyped values: nulls are left out of the dictionaries, strings are strings,
    /// lists are lists, structs are dictionaries.</summary>
    public static object? FromParquet(object? value) => value switch
    {
        null => null,
        string s => s,
        ReadOnlyMemory<char> m => m.ToString(),
        bool b => b,
        byte or sbyte or short or ushort or int or uint or long => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        ulong u => u <= long.MaxValue ? (long)u : (double)u,
        float f => (double)f,
        double d => d,
        decimal m => (double)m,
        DateTime t => t.ToString("o", CultureInfo.InvariantCulture),
        DateTimeOffset t => t.ToString("o", CultureInfo.InvariantCulture),
        byte[] bytes => Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : Convert.ToBase64String(bytes),
        IDictionary<string, object> map => ObjectFromParquet(map, map.Keys),
        System.Collections.IEnumerable items => items.Cast<object?>().Select(FromParquet).ToList(),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    public static OrderedDictionary<string, object?> ObjectFromParquet(IDictionary<string, object> map, IEnumerable<string> columns)
    {
        var values = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (string column in columns)
            values[column] = map.TryGetValue(column, out object? v) ? FromParquet(v) : null;
        return values;
    }

    /// <summary>A scalar as text (numbers in invariant culture); null for null; lists and objects are not text.</summary>
    public static bool TryGetText(object? value, out string? text)
    {
        text = value switch
        {
            null => null,
            string s => s,
            long l => l.ToString(CultureInfo.InvariantCulture),
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            bool b => b ? "true" : "false",
            _ => null,
        };
        return value is null || text is not null;
    }

    /// <summary>Fails with the byte offset of the first invalid UTF-8 sequence.</summary>
    public static void RequireUtf8(ReadOnlySpan<byte> bytes, string location)
    {
        if (Utf8.IsValid(bytes))
            return;
        int offset = 0;
        while (offset < bytes.Length)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes[offset..], out _, out int consumed);
            if (status != System.Buffers.OperationStatus.Done)
                break;
            offset += consumed;
        }
        throw new BadRowException($"{location}: invalid UTF-8 at byte {offset} of the row (byte 0x{bytes[offset]:X2})");
    }
}
