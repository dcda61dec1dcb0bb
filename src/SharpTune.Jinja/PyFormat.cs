using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>The common subset of Python's string formatting: <c>"%s" % x</c> and <c>"{}".format(x)</c>.</summary>
internal static class PyFormat
{
    /// <summary><c>format % arguments</c> with the s, r, d, i, f, x and % conversions, flags, width and precision.</summary>
    public static string Percent(string format, object? arguments)
    {
        var positional = arguments is object?[] tuple ? tuple : [arguments];
        var mapping = arguments as PyDict;
        var next = 0;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%')
            {
                sb.Append(format[i]);
                continue;
            }

            if (++i >= format.Length)
            {
                throw new JinjaRuntimeException("incomplete format");
            }

            object? value = null;
            var hasValue = false;
            if (format[i] == '(')
            {
                var close = format.IndexOf(')', i);
                if (close < 0 || mapping is null)
                {
                    throw new JinjaRuntimeException("format requires a mapping");
                }

                var key = format[(i + 1)..close];
                if (!mapping.TryGet(key, out value))
                {
                    throw new JinjaRuntimeException($"KeyError: {PyRepr.String(key)}");
                }

                hasValue = true;
                i = close + 1;
            }

            var flags = "";
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '#' or '0')
            {
                flags += format[i++];
            }

            var width = ReadNumber(format, ref i);
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = ReadNumber(format, ref i) ?? 0;
            }

            if (i >= format.Length)
            {
                throw new JinjaRuntimeException("incomplete format");
            }

            var conversion = format[i];
            if (conversion == '%')
            {
                sb.Append('%');
                continue;
            }

            if (!hasValue)
            {
                if (next >= positional.Length)
                {
                    throw new JinjaRuntimeException("not enough arguments for format string");
                }

                value = positional[next++];
            }

            var text = conversion switch
            {
                's' => Py.Str(value),
                'r' or 'a' => Py.Repr(value),
                'd' or 'i' or 'u' => FormatInteger(value, flags),
                'f' or 'F' => FormatFloat(value, precision ?? 6, flags),
                'x' or 'X' => FormatHex(value, conversion),
                _ => throw new JinjaRuntimeException(
                    $"unsupported format character '{conversion}' (0x{(int)conversion:x}) at index {i}"),
            };
            if (conversion is 's' or 'r' && precision is not null && text.Length > precision)
            {
                text = text[..precision.Value];
            }

            Py.Append(sb, Pad(text, width, flags));
        }

        if (mapping is null && next < positional.Length)
        {
            throw new JinjaRuntimeException("not all arguments converted during string formatting");
        }

        return sb.ToString();
    }

    private static int? ReadNumber(string format, ref int i)
    {
        var start = i;
        while (i < format.Length && char.IsAsciiDigit(format[i]))
        {
            i++;
        }

        // a width over the limit fails here rather than overflowing an int or padding to gigabytes
        return i > start ? Py.Size(i - start > 18 ? long.MaxValue : long.Parse(format[start..i], CultureInfo.InvariantCulture), "width") : null;
    }

    private static string Pad(string text, int? width, string flags)
    {
        if (width is null || text.Length >= width)
        {
            return text;
        }

        if (flags.Contains('-'))
        {
            return text.PadRight(width.Value);
        }

        if (flags.Contains('0') && text.Length > 0 && (char.IsAsciiDigit(text[^1]) || text[^1] == '.'))
        {
            var sign = text[0] is '-' or '+' ? text[..1] : "";
            return sign + text[sign.Length..].PadLeft(width.Value - sign.Length, '0');
        }

        return text.PadLeft(width.Value);
    }

    private static string FormatInteger(object? value, string flags)
    {
        var number = value switch
        {
            bool b => b ? 1 : 0,
            long l => l,
            double d when double.IsFinite(d) => (long)Math.Truncate(d),
            _ => throw new JinjaRuntimeException($"%d format: a real number is required, not {Py.TypeName(value)}"),
        };
        var text = number.ToString(CultureInfo.InvariantCulture);
        return number >= 0 && flags.Contains('+') ? "+" + text : text;
    }

    private static string FormatFloat(object? value, int precision, string flags)
    {
        var number = value switch
        {
            bool b => b ? 1 : 0,
            long l => l,
            double d => d,
            _ => throw new JinjaRuntimeException($"must be real number, not {Py.TypeName(value)}"),
        };
        var text = number.ToString("F" + precision.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return number >= 0 && flags.Contains('+') ? "+" + text : text;
    }

    private static string FormatHex(object? value, char conversion)
    {
        if (value is not (bool or long))
        {
            throw new JinjaRuntimeException($"%{conversion} format: an integer is required, not {Py.TypeName(value)}");
        }

        var number = value is bool b ? (b ? 1 : 0) : (long)value;
        var text = Math.Abs(number).ToString(conversion == 'x' ? "x" : "X", CultureInfo.InvariantCulture);
        return number < 0 ? "-" + text : text;
    }

    /// <summary><c>str.format</c> with automatic, numbered and named fields, <c>!r</c>/<c>!s</c> and no format specs.</summary>
    public static string Format(string format, List<object?> positional, Dictionary<string, object?> named)
    {
        var sb = new StringBuilder();
        var automatic = 0;
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}')
                {
                    sb.Append('}');
                    i++;
                    continue;
                }

                throw new JinjaRuntimeException("Single '}' encountered in format string");
            }

            if (c != '{')
            {
                sb.Append(c);
                continue;
            }

            if (i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i++;
                continue;
            }

            var close = format.IndexOf('}', i);
            if (close < 0)
            {
                throw new JinjaRuntimeException("Single '{' encountered in format string");
            }

            var field = format[(i + 1)..close];
            i = close;
            var conversion = 's';
            var bang = field.IndexOf('!');
            if (bang >= 0)
            {
                conversion = field.Length > bang + 1 ? field[bang + 1] : 's';
                field = field[..bang];
            }

            if (field.Contains(':') || field.Contains('.') || field.Contains('['))
            {
                throw new JinjaRuntimeException($"format field '{{{field}}}' is not supported (only plain fields)");
            }

            object? value;
            if (field.Length == 0)
            {
                value = automatic < positional.Count
                    ? positional[automatic++]
                    : throw new JinjaRuntimeException($"Replacement index {automatic} out of range for positional args tuple");
            }
            else if (int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var position))
            {
                value = position < positional.Count
                    ? positional[position]
                    : throw new JinjaRuntimeException($"Replacement index {position} out of range for positional args tuple");
            }
            else if (!named.TryGetValue(field, out value))
            {
                throw new JinjaRuntimeException($"KeyError: {PyRepr.String(field)}");
            }

            Py.Append(sb, conversion == 'r' ? Py.Repr(value) : Py.Str(value));
        }

        return sb.ToString();
    }
}
