using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Jinja;

/// <summary>
/// Turns the caller's .NET values into template values: strings, booleans, integers, floats, null, lists,
/// dictionaries, and System.Text.Json nodes or elements (JSON numbers keep Python's int/float distinction).
/// </summary>
internal static class JinjaConvert
{
    public static object? FromClr(object? value, string path) => value switch
    {
        null => null,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        sbyte sb => (long)sb,
        byte b => (long)b,
        ushort us => (long)us,
        uint ui => (long)ui,
        ulong ul when ul <= long.MaxValue => (long)ul,
        float f => (double)f,
        decimal m => (double)m,
        JsonElement element => FromJsonElement(element, path),
        JsonNode node => FromJsonNode(node, path),
        IReadOnlyDictionary<string, object?> dictionary => FromPairs(dictionary.Select(p => (p.Key, p.Value)), path),
        IDictionary dictionary => FromPairs(Entries(dictionary, path), path),
        IEnumerable sequence => sequence.Cast<object?>().Select((item, i) => FromClr(item, $"{path}[{i}]")).ToList(),
        _ => throw new JinjaException(JinjaErrorKind.Variable,
            $"'{path}' has unsupported type {value.GetType().Name}; expected string, bool, number, "
            + "null, list, dictionary or System.Text.Json node"),
    };

    private static IEnumerable<(string Key, object? Value)> Entries(IDictionary dictionary, string path)
    {
        var entries = dictionary.GetEnumerator();
        while (entries.MoveNext())
        {
            yield return (entries.Key as string ?? throw BadKey(entries.Key, path), entries.Value);
        }
    }

    private static JinjaException BadKey(object key, string path) =>
        new(JinjaErrorKind.Variable, $"'{path}' has a key of type {key.GetType().Name}; dictionary keys must be strings");

    private static PyDict FromPairs(IEnumerable<(string Key, object? Value)> pairs, string path)
    {
        var dict = new PyDict();
        foreach (var (key, item) in pairs)
        {
            dict.Set(key, FromClr(item, $"{path}.{key}"));
        }

        return dict;
    }

    private static object? FromJsonNode(JsonNode node, string path)
    {
        switch (node)
        {
            case JsonObject obj:
                var dict = new PyDict();
                foreach (var (key, item) in obj)
                {
                    dict.Set(key, item is null ? null : FromJsonNode(item, $"{path}.{key}"));
                }

                return dict;
            case JsonArray array:
                return array.Select((item, i) => item is null ? null : FromJsonNode(item, $"{path}[{i}]")).ToList();
            default:
                var value = node.AsValue();
                return value.GetValueKind() switch
                {
                    JsonValueKind.String => value.TryGetValue<string>(out var text) ? text : JsonSerializer.Deserialize<string>(value.ToJsonString()),
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    JsonValueKind.Number => ParseNumber(value.ToJsonString()),
                    _ => null,
                };
        }
    }

    private static object? FromJsonElement(JsonElement element, string path) => element.ValueKind switch
    {
        JsonValueKind.Object => FromPairs(element.EnumerateObject().Select(p => (p.Name, (object?)p.Value)), path),
        JsonValueKind.Array => element.EnumerateArray().Select((item, i) => FromJsonElement(item, $"{path}[{i}]")).ToList(),
        JsonValueKind.String => element.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => ParseNumber(element.GetRawText()),
        _ => null,
    };

    /// <summary>Like Python's json module: a number with a fraction or exponent is a float, otherwise an int.</summary>
    private static object ParseNumber(string text)
    {
        if (text.IndexOfAny(['.', 'e', 'E']) < 0 && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return integer;
        }

        return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
