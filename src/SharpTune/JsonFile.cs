using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune;

/// <summary>Reads the JSON files SharpTune takes as input (config.json, tokenizer files, adapter_config.json,
/// trainer state, shard index, safetensors headers) with user-facing errors: a missing file, invalid JSON, a
/// duplicate key or nesting deeper than <see cref="MaxDepth"/> becomes a <see cref="SharpTuneException"/> naming
/// the file. Values are read through <see cref="JsonField"/>, which names the key, the expected type and the value
/// found when they do not match.</summary>
public static class JsonFile
{
    /// <summary>Deeper than any file we read needs; keeps a hostile file from costing stack or time.</summary>
    public const int MaxDepth = 64;

    static readonly JsonDocumentOptions Options = new() { MaxDepth = MaxDepth, AllowDuplicateProperties = false };

    /// <summary>The file's top-level object.</summary>
    public static JsonField Read(string path)
    {
        byte[] bytes = InputFile.ReadAllBytes(path);
        return Parse(bytes, path);
    }

    /// <summary>Parses <paramref name="utf8"/> (named <paramref name="source"/> in errors); the top level must be an object.</summary>
    public static JsonField Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        if (System.Text.Unicode.Utf8.IsValid(utf8.Span) is false)
            throw new SharpTuneException($"{source}: not valid UTF-8 text (at byte {InvalidUtf8At(utf8.Span)})");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, Options);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{source}: invalid JSON ({Describe(e)})");
        }
        var root = new JsonField(source, "", document.RootElement.Clone());
        document.Dispose();
        RequireValidStrings(root);
        if (root.Element.ValueKind != JsonValueKind.Object) throw root.Expected("a JSON object");
        return root;
    }

    /// <summary>The file as a mutable object (for code that edits or re-serializes it), validated as <see cref="Read"/> does.</summary>
    public static JsonObject ReadObject(string path)
    {
        byte[] bytes = InputFile.ReadAllBytes(path);
        Parse(bytes, path);
        return (JsonObject)JsonNode.Parse(bytes, documentOptions: Options)!;
    }

    /// <summary>System.Text.Json accepts escaped lone surrogates ("\ud800") and fails only when the string is read:
    /// every key and string is checked here, so that no later reader meets one.</summary>
    static void RequireValidStrings(JsonField field)
    {
        switch (field.Kind)
        {
            case JsonValueKind.String:
                field.String();
                break;
            case JsonValueKind.Array:
                foreach (var item in field.Items()) RequireValidStrings(item);
                break;
            case JsonValueKind.Object:
                foreach (var (_, value) in field.Properties()) RequireValidStrings(value);
                break;
        }
    }

    static int InvalidUtf8At(ReadOnlySpan<byte> bytes)
    {
        System.Text.Unicode.Utf8.ToUtf16(bytes, new char[bytes.Length], out int read, out _, replaceInvalidSequences: false);
        return read;
    }

    /// <summary>System.Text.Json's message without its "Path: $ | " noise, cut to one short line.</summary>
    static string Describe(JsonException e)
    {
        string message = e.Message;
        // the position is given once, first: System.Text.Json's own " LineNumber: 9 | BytePositionInLine: 13." goes
        foreach (var tail in new[] { " Path: ", " LineNumber: " })
        {
            int cut = message.IndexOf(tail, StringComparison.Ordinal);
            if (cut > 0) message = message[..cut];
        }
        message = message.Replace("The JSON value could not be converted to System.Text.Json.JsonDocument. ", "");
        string where = e.LineNumber is { } line ? $"line {line + 1}, byte {e.BytePositionInLine + 1}: " : "";
        const string duplicate = "Duplicate property '";
        if (message.StartsWith(duplicate, StringComparison.Ordinal) && message.LastIndexOf("' encountered", StringComparison.Ordinal) is var end and > 0)
            return where + $"duplicate key {SharpTuneException.Quote(message[duplicate.Length..end])}";
        return where + ErrorText.Message(message, 200);
    }
}

/// <summary>A value inside a JSON input, with the file and the path that lead to it (<c>model.vocab["a"]</c>),
/// so that every type or range error names both. A missing key is a field whose <see cref="Exists"/> is false;
/// JSON null counts as missing for optional reads.</summary>
public readonly struct JsonField
{
    public string File { get; }
    public string Path { get; }
    public JsonElement Element { get; }

    public JsonField(string file, string path, JsonElement element)
    {
        File = file; Path = path; Element = element;
    }

    public JsonValueKind Kind => Element.ValueKind;
    /// <summary>Present and not null.</summary>
    public bool Exists => Element.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null);

    public JsonField this[string key]
    {
        get
        {
            string path = Path.Length == 0 ? key : $"{Path}.{key}";
            if (Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(key, out var value)) return new(File, path, value);
            return new(File, path, default);
        }
    }

    public JsonField this[int index] => Element.ValueKind == JsonValueKind.Array && index < Element.GetArrayLength()
        ? new(File, $"{Path}[{index}]", Element[index]) : new(File, $"{Path}[{index}]", default);

    public SharpTuneException Error(string problem) => new($"{File}: {Name}: {problem}");

    /// <summary>"expected X, got Y" for this field.</summary>
    public SharpTuneException Expected(string what) => Error($"expected {what}, got {Shown}");

    string Name => Path.Length == 0 ? "top level" : $"\"{Path}\"";

    /// <summary>The value as it appears in the file, escaped and cut short for a message.</summary>
    public string Shown => Element.ValueKind switch
    {
        JsonValueKind.Undefined => "nothing (missing)",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => $"a list of {Element.GetArrayLength()}",
        JsonValueKind.String => SharpTuneException.Quote(StringOf(Element) ?? Element.GetRawText()),
        _ => ErrorText.OneLine(Element.GetRawText(), 80),
    };

    // ---- required values (missing is an error)

    public int Int() => Element.ValueKind == JsonValueKind.Number && Element.TryGetInt32(out int v) ? v
        : throw Expected(Element.ValueKind == JsonValueKind.Number ? "a whole number from -2147483648 to 2147483647" : "a whole number");

    public long Long() => Element.ValueKind == JsonValueKind.Number && Element.TryGetInt64(out long v) ? v
        : throw Expected(Element.ValueKind == JsonValueKind.Number ? "a whole number that fits 64 bits" : "a whole number");

    /// <summary>A finite number.</summary>
    public double Double() => Element.ValueKind == JsonValueKind.Number && Element.TryGetDouble(out double v) && double.IsFinite(v) ? v
        : throw Expected("a finite number");

    public string String() => Element.ValueKind != JsonValueKind.String ? throw Expected("a string")
        : StringOf(Element) ?? throw Error($"expected text, got {ErrorText.Message(Element.GetRawText(), 80)}, which holds a lone surrogate escape (not valid Unicode)");

    /// <summary>The string, or null when it holds an escaped lone surrogate (System.Text.Json refuses those).</summary>
    static string? StringOf(JsonElement element)
    {
        try
        {
            return element.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    public bool Bool() => Element.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Expected("true or false"),
    };

    public int Int(int min, int max)
    {
        int v = Int();
        return v >= min && v <= max ? v : throw Expected($"a whole number from {min} to {max}");
    }

    // ---- optional values (missing or null gives the fallback; a wrong type is still an error)

    public int? IntOrNull() => Exists ? Int() : null;
    public long? LongOrNull() => Exists ? Long() : null;
    public double? DoubleOrNull() => Exists ? Double() : null;
    public string? StringOrNull() => Exists ? String() : null;
    public bool? BoolOrNull() => Exists ? Bool() : null;

    // ---- containers

    public bool IsObject => Element.ValueKind == JsonValueKind.Object;
    public bool IsArray => Element.ValueKind == JsonValueKind.Array;

    public JsonField Object() => IsObject ? this : throw Expected("an object");

    /// <summary>The elements of a list (an error for anything else).</summary>
    public IEnumerable<JsonField> Items()
    {
        if (!IsArray) throw Expected("a list");
        return ItemsOf(this);

        static IEnumerable<JsonField> ItemsOf(JsonField list)
        {
            int i = 0;
            foreach (var item in list.Element.EnumerateArray()) yield return new(list.File, $"{list.Path}[{i++}]", item);
        }
    }

    /// <summary>The key/value pairs of an object (an error for anything else).</summary>
    public IEnumerable<(string Key, JsonField Value)> Properties()
    {
        if (!IsObject) throw Expected("an object");
        return PropertiesOf(this);

        static IEnumerable<(string, JsonField)> PropertiesOf(JsonField obj)
        {
            foreach (var p in obj.Element.EnumerateObject())
            {
                string name;
                try { name = p.Name; }
                catch (InvalidOperationException) { throw obj.Error($"a key holds a lone surrogate escape (not valid Unicode): {ErrorText.OneLine(p.ToString())}"); }
                yield return (name, new(obj.File, obj.Path.Length == 0 ? name : $"{obj.Path}[{SharpTuneException.Quote(name)}]", p.Value));
            }
        }
    }

    public int Count => IsArray ? Element.GetArrayLength() : throw Expected("a list");

    /// <summary>A token id or a list of them (config.json's eos_token_id); missing or null is none.</summary>
    public int[] IntOrInts() => Kind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => [],
        JsonValueKind.Array => Items().Select(i => i.Int()).ToArray(),
        _ => [Int()],
    };

    public override string ToString() => $"{File}: {Name}";
}
