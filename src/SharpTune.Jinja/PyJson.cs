using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>
/// Python's <c>json.dumps</c>, which Hugging Face's <c>tojson</c> filter calls (with ensure_ascii=False by default):
/// ", " and ": " separators without indent, "," and ": " with indent, floats written like Python's repr.
/// </summary>
internal sealed class PyJson
{
    private readonly bool _ensureAscii;
    private readonly string? _indent;
    private readonly string _itemSeparator;
    private readonly string _keySeparator;
    private readonly bool _sortKeys;
    private readonly StringBuilder _sb = new();

    private PyJson(bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
    {
        _ensureAscii = ensureAscii;
        _indent = indent;
        _itemSeparator = itemSeparator;
        _keySeparator = keySeparator;
        _sortKeys = sortKeys;
    }

    /// <param name="indent">null for a single line, otherwise the text of one indent level.</param>
    /// <param name="separators">(item separator, key separator), or null for Python's defaults.</param>
    public static string Dumps(object? value, bool ensureAscii, string? indent, (string Item, string Key)? separators, bool sortKeys)
    {
        var (item, key) = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        var writer = new PyJson(ensureAscii, indent, item, key, sortKeys);
        writer.Write(value, 0);
        return writer._sb.ToString();
    }

    private void Write(object? value, int depth)
    {
        if (depth > Py.MaxNesting)
        {
            throw Py.TooDeep();
        }

        Py.Size(_sb.Length, "a JSON text of length");   // no unbounded text from repeated references to one big list
        switch (value)
        {
            case null:
                _sb.Append("null");
                break;
            case bool b:
                _sb.Append(b ? "true" : "false");
                break;
            case long l:
                _sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                _sb.Append(Float(d));
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
        if (_indent is null)
        {
            return;
        }

        _sb.Append('\n');
        for (var i = 0; i < depth; i++)
        {
            _sb.Append(_indent);
        }
    }

    private void WriteArray(IReadOnlyList<object?> items, int depth)
    {
        if (items.Count == 0)
        {
            _sb.Append("[]");
            return;
        }

        _sb.Append('[');
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                _sb.Append(_itemSeparator);
            }

            NewLine(depth + 1);
            Write(items[i], depth + 1);
        }

        NewLine(depth);
        _sb.Append(']');
    }

    private void WriteObject(PyDict dict, int depth)
    {
        if (dict.Count == 0)
        {
            _sb.Append("{}");
            return;
        }

        var pairs = dict.Select(p => (Key: KeyText(p.Key), p.Value)).ToList();
        if (_sortKeys)
        {
            pairs.Sort((x, y) => PyString.Compare(x.Key, y.Key));
        }

        _sb.Append('{');
        for (var i = 0; i < pairs.Count; i++)
        {
            if (i > 0)
            {
                _sb.Append(_itemSeparator);
            }

            NewLine(depth + 1);
            WriteString(pairs[i].Key);
            _sb.Append(_keySeparator);
            Write(pairs[i].Value, depth + 1);
        }

        NewLine(depth);
        _sb.Append('}');
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
        _sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': _sb.Append("\\\""); break;
                case '\\': _sb.Append("\\\\"); break;
                case '\n': _sb.Append("\\n"); break;
                case '\r': _sb.Append("\\r"); break;
                case '\t': _sb.Append("\\t"); break;
                case '\b': _sb.Append("\\b"); break;
                case '\f': _sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (_ensureAscii && c > 0x7e))
                    {
                        // Python writes \u escapes in lower case; astral characters become their surrogate pair.
                        _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        _sb.Append(c);
                    }

                    break;
            }
        }

        _sb.Append('"');
    }
}
