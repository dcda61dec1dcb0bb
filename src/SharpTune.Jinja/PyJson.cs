using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>
/// Python's <c>json.dumps</c>, which Hugging Face's <c>tojson</c> filter calls (with ensure_ascii=False by default):
/// ", " and ": " separators without indent, "," and ": " with indent, floats written like Python's repr.
/// </summary>
internal sealed class PyJson
{
    private readonly bool ensureAscii;
    private readonly string? indent;
    private readonly string itemSeparator;
    private readonly string keySeparator;
    private readonly bool sortKeys;
    private readonly StringBuilder sb = new();

    private PyJson(bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
    {
        this.ensureAscii = ensureAscii;
        this.indent = indent;
        this.itemSeparator = itemSeparator;
        this.keySeparator = keySeparator;
        this.sortKeys = sortKeys;
    }

    /// <param name="indent">null for a single line, otherwise the text of one indent level.</param>
    /// <param name="separators">(item separator, key separator), or null for Python's defaults.</param>
    public static string Dumps(object? value, bool ensureAscii, string? indent, (string Item, string Key)? separators, bool sortKeys)
    {
        var (item, key) = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        var writer = new PyJson(ensureAscii, indent, item, key, sortKeys);
        writer.Write(value, 0);
        return writer.sb.ToString();
    }

    private void Write(object? value, int depth)
    {
        switch (value)
        {
            case null:
                sb.Append("null");
                break;
            case bool b:
                sb.Append(b ? "true" : "false");
                break;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                sb.Append(Float(d));
                break;
            case string s:
                WriteString(s);
                break;
            case Markup m:
                WriteString(m.Text);
                break;
            case List<object?> list:
                WriteArray(list, depth);
                break;
            case object?[] tuple:
                WriteArray(tuple, depth);
                break;
            case PyDict dict:
                WriteObject(dict, depth);
                break;
            default:
                throw new JinjaRuntimeException($"Object of type {Py.TypeName(value)} is not JSON serializable");
        }
    }

    private static string Float(double d) => double.IsNaN(d) ? "NaN"
        : double.IsPositiveInfinity(d) ? "Infinity"
        : double.IsNegativeInfinity(d) ? "-Infinity"
        : PyRepr.Float(d);

    private void NewLine(int depth)
    {
        if (indent is null)
        {
            return;
        }

        sb.Append('\n');
        for (var i = 0; i < depth; i++)
        {
            sb.Append(indent);
        }
    }

    private void WriteArray(IReadOnlyList<object?> items, int depth)
    {
        if (items.Count == 0)
        {
            sb.Append("[]");
            return;
        }

        sb.Append('[');
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(itemSeparator);
            }

            NewLine(depth + 1);
            Write(items[i], depth + 1);
        }

        NewLine(depth);
        sb.Append(']');
    }

    private void WriteObject(PyDict dict, int depth)
    {
        if (dict.Count == 0)
        {
            sb.Append("{}");
            return;
        }

        var pairs = dict.Select(p => (Key: KeyText(p.Key), p.Value)).ToList();
        if (sortKeys)
        {
            pairs.Sort((x, y) => PyString.Compare(x.Key, y.Key));
        }

        sb.Append('{');
        for (var i = 0; i < pairs.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(itemSeparator);
            }

            NewLine(depth + 1);
            WriteString(pairs[i].Key);
            sb.Append(keySeparator);
            Write(pairs[i].Value, depth + 1);
        }

        NewLine(depth);
        sb.Append('}');
    }

    /// <summary>JSON object keys: strings as they are; numbers, booleans and None converted like json.dumps does.</summary>
    private static string KeyText(object? key) => key switch
    {
        string s => s,
        Markup m => m.Text,
        null => "null",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        _ => throw new JinjaRuntimeException($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
    };

    private void WriteString(string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e))
                    {
                        // Python writes \u escapes in lower case; astral characters become their surrogate pair.
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
