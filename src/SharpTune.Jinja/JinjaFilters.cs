using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Jinja;

/// <summary>jinja2's built-in filters (those chat templates use), with Hugging Face's <c>tojson</c>.</summary>
internal static partial class JinjaFilters
{
    private delegate object? Filter(JinjaRenderer renderer, object? value, Args args);

    private static readonly Dictionary<string, Filter> Filters = new(StringComparer.Ordinal)
    {
        ["abs"] = Abs,
        ["attr"] = Attr,
        ["capitalize"] = (_, v, a) => Text(v, a, PyString.Capitalize),
        ["center"] = Center,
        ["count"] = Length,
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = (_, v, a) => Done(a, 0, Markup.Escape(v)),
        ["escape"] = (_, v, a) => Done(a, 0, Markup.Escape(v)),
        ["first"] = First,
        ["float"] = Float,
        ["forceescape"] = (_, v, a) => Done(a, 0, new Markup(Markup.EscapeText(Py.Str(v)))),
        ["format"] = Format,
        ["indent"] = Indent,
        ["int"] = Int,
        ["items"] = Items,
        ["join"] = Join,
        ["last"] = Last,
        ["length"] = Length,
        ["list"] = (_, v, a) => Done(a, 0, Py.Iterate(v).ToList()),
        ["lower"] = (_, v, a) => Text(v, a, PyString.Lower),
        ["map"] = Map,
        ["max"] = (_, v, a) => MinMax(v, a, max: true),
        ["min"] = (_, v, a) => MinMax(v, a, max: false),
        ["reject"] = (r, v, a) => SelectOrReject(r, v, a, byAttribute: false, select: false),
        ["rejectattr"] = (r, v, a) => SelectOrReject(r, v, a, byAttribute: true, select: false),
        ["replace"] = Replace,
        ["reverse"] = Reverse,
        ["round"] = Round,
        ["safe"] = (_, v, a) => Done(a, 0, v as Markup ?? new Markup(Py.Str(v))),
        ["select"] = (r, v, a) => SelectOrReject(r, v, a, byAttribute: false, select: true),
        ["selectattr"] = (r, v, a) => SelectOrReject(r, v, a, byAttribute: true, select: true),
        ["sort"] = Sort,
        ["string"] = (_, v, a) => Done(a, 0, v as Markup ?? (object)Py.Str(v)),
        ["sum"] = Sum,
        ["title"] = (_, v, a) => Done(a, 0, JinjaTitle(Py.Str(v))),
        ["tojson"] = ToJson,
        ["trim"] = Trim,
        ["unique"] = Unique,
        ["upper"] = (_, v, a) => Text(v, a, PyString.Upper),
        ["wordcount"] = (_, v, a) => Done(a, 0, (long)WordRegex().Matches(Py.Str(v)).Count),
    };

    public static bool Exists(string name) => Filters.ContainsKey(name);

    public static object? Apply(JinjaRenderer renderer, string name, object? value, Args args) =>
        Filters.TryGetValue(name, out var filter)
            ? filter(renderer, value, args)
            : throw new JinjaRuntimeException($"No filter named '{name}'.");

    private static object? Done(Args args, int parameterCount, object? result)
    {
        args.Done(parameterCount);
        return result;
    }

    /// <summary>A str method applied through a filter; on Markup the result stays Markup, as markupsafe's methods return.</summary>
    private static object? Text(object? value, Args args, Func<string, string> transform) =>
        Done(args, 0, KeepMarkup(value, transform(Py.Str(value))));

    private static object KeepMarkup(object? input, string result) => input is Markup ? new Markup(result) : result;

    private static object? Abs(JinjaRenderer renderer, object? value, Args args)
    {
        args.Done(0);
        return value switch
        {
            bool b => b ? 1L : 0L,
            long l => l == long.MinValue ? throw new JinjaRuntimeException("integer overflow") : (object)Math.Abs(l),
            double d => Math.Abs(d),
            _ => throw new JinjaRuntimeException($"bad operand type for abs(): '{Py.TypeName(value)}'"),
        };
    }

    private static object? Attr(JinjaRenderer renderer, object? value, Args args)
    {
        var name = args.String(0, "name");
        args.Done(1);
        return value switch
        {
            Undefined undefined => throw undefined.Error(),
            JinjaNamespace or LoopContext => JinjaRenderer.GetAttribute(value, name),
            not null when JinjaMethods.Lookup(value, name) is { } method => method,
            _ => Undefined.ForAttribute(value, name),
        };
    }

    private static object? Center(JinjaRenderer renderer, object? value, Args args)
    {
        var width = args.Integer(0, "width", 80);
        args.Done(1);
        return JinjaMethods.Call(new BoundMethod(value as Markup ?? (object)Py.Str(value), "center"), new Args("center", [width], []));
    }

    private static object? Default(JinjaRenderer renderer, object? value, Args args)
    {
        var fallback = args.Get(0, "default_value", "");
        var boolean = args.Bool(1, "boolean", false);
        args.Done(2);
        return value is Undefined || (boolean && !Py.Truthy(value)) ? fallback : value;
    }

    /// <summary>The key function of jinja's sorting filters: lower-cases strings unless case_sensitive.</summary>
    private static object? IgnoreCase(object? value, bool caseSensitive) =>
        !caseSensitive && value is string s ? PyString.Lower(s) : value;

    private static List<object?> StableSort(List<object?> items, Func<object?, object?> key, bool reverse)
    {
        var keyed = items.Select((item, index) => (Key: key(item), Item: item, Index: index)).ToList();
        keyed.Sort((x, y) =>
        {
            var order = Py.Equal(x.Key, y.Key) ? 0 : Py.Compare(x.Key, y.Key, "<");
            if (reverse)
            {
                order = -order;
            }

            return order != 0 ? order : x.Index.CompareTo(y.Index);
        });
        return keyed.Select(k => k.Item).ToList();
    }

    private static object? DictSort(JinjaRenderer renderer, object? value, Args args)
    {
        var caseSensitive = args.Bool(0, "case_sensitive", false);
        var by = args.String(1, "by", "key");
        var reverse = args.Bool(2, "reverse", false);
        args.Done(3);
        if (value is not PyDict dict)
        {
            throw new JinjaRuntimeException($"'{Py.TypeName(value)}' object has no attribute 'items'");
        }

        var position = by switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw new JinjaRuntimeException("You can only sort by either \"key\" or \"value\""),
        };
        var pairs = dict.Select(p => (object?)new[] { p.Key, p.Value }).ToList();
        return StableSort(pairs, pair => IgnoreCase(((object?[])pair!)[position], caseSensitive), reverse);
    }

    private static object? First(JinjaRenderer renderer, object? value, Args args)
    {
        args.Done(0);
        foreach (var item in Py.Iterate(value))
        {
            return item;
        }

        return new Undefined("No first item, sequence was empty.");
    }

    private static object? Last(JinjaRenderer renderer, object? value, Args args)
    {
        args.Done(0);
        var items = value switch
        {
            PyGenerator generator => throw new JinjaRuntimeException($"'{generator.TypeName}' object is not reversible"),
            _ => Py.Iterate(value).ToList(),
        };
        return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
    }

    private static object? Float(JinjaRenderer renderer, object? value, Args args)
    {
        var fallback = args.Get(0, "default", 0.0);
        args.Done(1);
        return ParseFloat(value) ?? fallback;
    }

    /// <summary>Python's <c>float(value)</c>, or null where it would raise.</summary>
    private static double? ParseFloat(object? value)
    {
        switch (value)
        {
            case bool b:
                return b ? 1 : 0;
            case long l:
                return l;
            case double d:
                return d;
            case string s:
                var text = PyString.Strip(s, null);
                for (var i = 0; i < text.Length; i++)
                {
                    // Python accepts '_' only between two digits.
                    if (text[i] == '_' && (i == 0 || i == text.Length - 1 || !char.IsAsciiDigit(text[i - 1]) || !char.IsAsciiDigit(text[i + 1])))
                    {
                        return null;
                    }
                }

                text = text.Replace("_", "");
                if (text.Length == 0)
                {
                    return null;
                }

                var negative = text[0] == '-';
                var lower = (text[0] is '+' or '-' ? text[1..] : text).ToLowerInvariant();
                if (lower is "inf" or "infinity")
                {
                    return negative ? double.NegativeInfinity : double.PositiveInfinity;
                }

                if (lower == "nan")
                {
                    return double.NaN;
                }

                return lower.All(c => char.IsAsciiDigit(c) || c is '.' or 'e' or '+' or '-')
                    && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)
                    ? parsed
                    : null;
            default:
                return null;
        }
    }

    private static object? Format(JinjaRenderer renderer, object? value, Args args)
    {
        if (args.Positional.Count > 0 && args.Keywords.Count > 0)
        {
            throw new JinjaRuntimeException("can't handle positional and keyword arguments at the same time");
        }

        object? arguments;
        if (args.Keywords.Count > 0)
        {
            var mapping = new PyDict();
            foreach (var (key, item) in args.Keywords)
            {
                mapping.Set(key, item);
            }

            arguments = mapping;
        }
        else
        {
            arguments = args.Positional.ToArray();
        }

        return PyFormat.Percent(Py.Str(value), arguments);
    }

    private static object? Indent(JinjaRenderer renderer, object? value, Args args)
    {
        var width = args.Get(0, "width", 4L);
        var first = args.Bool(1, "first", false);
        var blank = args.Bool(2, "blank", false);
        args.Done(3);
        var indention = width is string text ? text : new string(' ', Py.Size(args.AsInteger(width, "width"), "width"));
        var lines = PyString.SplitLines(Py.Str(value) + "\n", keepEnds: false);
        string result;
        if (blank)
        {
            result = Py.Join("\n" + indention, lines);
        }
        else
        {
            var sb = new StringBuilder(lines[0]);
            if (lines.Count > 1)
            {
                Py.Append(sb.Append('\n'), Py.Join("\n", lines.Skip(1).Select(line => line.Length > 0 ? indention + line : line)));
            }

            result = sb.ToString();
        }

        return KeepMarkup(value, first ? indention + result : result);
    }

    private static object? Int(JinjaRenderer renderer, object? value, Args args)
    {
        var fallback = args.Get(0, "default", 0L);
        var numberBase = args.Integer(1, "base", 10);
        args.Done(2);
        switch (value)
        {
            case bool b:
                return b ? 1L : 0L;
            case long l:
                return l;
            case double d:
                return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)Math.Truncate(d) : fallback;
            case string s:
                if (ParseInteger(s, numberBase) is long parsed)
                {
                    return parsed;
                }

                return ParseFloat(s) is double f && double.IsFinite(f) && Math.Abs(f) < 9.2e18 ? (long)Math.Truncate(f) : fallback;
            default:
                return fallback;
        }
    }

    /// <summary>Python's <c>int(text, base)</c>: optional sign, base prefix when it matches the base, '_' between digits.</summary>
    private static long? ParseInteger(string s, long numberBase)
    {
        var text = PyString.Strip(s, null);
        var negative = text.StartsWith('-');
        if (text.StartsWith('-') || text.StartsWith('+'))
        {
            text = text[1..];
        }

        var prefixBase = text.Length > 1 && text[0] == '0' ? char.ToLowerInvariant(text[1]) switch { 'x' => 16, 'o' => 8, 'b' => 2, _ => 0 } : 0;
        if (prefixBase != 0 && (numberBase == prefixBase || numberBase == 0))
        {
            numberBase = prefixBase;
            text = text[2..].TrimStart('_');
        }
        else if (numberBase == 0)
        {
            numberBase = 10;
        }

        if (text.Length == 0 || text.StartsWith('_') || text.EndsWith('_') || text.Contains("__") || numberBase is < 2 or > 36)
        {
            return null;
        }

        long result = 0;
        foreach (var c in text.Replace("_", ""))
        {
            var digit = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetter(c) ? char.ToLowerInvariant(c) - 'a' + 10 : 99;
            if (digit >= numberBase)
            {
                return null;
            }

            try
            {
                result = checked(result * numberBase + digit);
            }
            catch (OverflowException)
            {
                return null;
            }
        }

        return negative ? -result : result;
    }

    private static object? Items(JinjaRenderer renderer, object? value, Args args)
    {
        args.Done(0);
        return value switch
        {
            Undefined => new PyGenerator([], "generator"),
            PyDict dict => new PyGenerator(dict.Select(p => (object?)new[] { p.Key, p.Value }).ToList(), "generator"),
            _ => throw new JinjaRuntimeException("Can only get item pairs from a mapping."),
        };
    }

    private static object? Join(JinjaRenderer renderer, object? value, Args args)
    {
        var separator = Py.Str(args.Get(0, "d", ""));
        var attribute = args.Get(1, "attribute", null);
        args.Done(2);
        var items = Py.Iterate(value);
        if (attribute is not null)
        {
            var getter = AttributeGetter(attribute, null);
            items = items.Select(getter);
        }

        return Py.Join(separator, items.Select(Py.Str));
    }

    private static object? Length(JinjaRenderer renderer, object? value, Args args) => Done(args, 0, Py.Length(value));

    /// <summary>jinja's make_attrgetter: "a.b.0" looks up a, then b, then item 0 (digit parts are integers).</summary>
    private static Func<object?, object?> AttributeGetter(object? attribute, object? fallback)
    {
        var parts = attribute switch
        {
            string s => s.Split('.').Select(p => p.Length > 0 && p.All(char.IsAsciiDigit) ? (object?)long.Parse(p, CultureInfo.InvariantCulture) : p).ToList(),
            long or bool => [attribute],
            null => [],
            _ => throw new JinjaRuntimeException($"invalid attribute {Py.Repr(attribute)}"),
        };
        return item =>
        {
            foreach (var part in parts)
            {
                item = JinjaRenderer.GetItem(item, part);
                if (fallback is not null && item is Undefined)
                {
                    item = fallback;
                }
            }

            return item;
        };
    }

    private static object? Map(JinjaRenderer renderer, object? value, Args args)
    {
        Func<object?, object?> transform;
        if (args.Positional.Count == 0 && args.Keywords.ContainsKey("attribute"))
        {
            var attribute = args.Get(0, "attribute", null);
            var fallback = args.Get(1, "default", null);
            args.Done(0);
            transform = AttributeGetter(attribute, fallback);
        }
        else
        {
            if (args.Positional.Count == 0)
            {
                throw new JinjaRuntimeException("map requires a filter argument");
            }

            var name = args.AsString(args.Positional[0], "name");
            if (!Exists(name))
            {
                throw new JinjaRuntimeException($"No filter named '{name}'.");
            }

            var rest = args.Positional.Skip(1).ToList();
            transform = item => Apply(renderer, name, item, new Args(name, [.. rest], new Dictionary<string, object?>(args.Keywords)));
        }

        return new PyGenerator(Py.Truthy(value) ? Py.Iterate(value).Select(transform) : [], "generator");
    }

    private static object? MinMax(object? value, Args args, bool max)
    {
        var caseSensitive = args.Bool(0, "case_sensitive", false);
        var attribute = args.Get(1, "attribute", null);
        args.Done(2);
        var items = Py.Iterate(value).ToList();
        if (items.Count == 0)
        {
            return new Undefined("No aggregated item, sequence was empty.");
        }

        var getter = AttributeGetter(attribute, null);
        var best = items[0];
        var bestKey = IgnoreCase(getter(best), caseSensitive);
        foreach (var item in items.Skip(1))
        {
            var key = IgnoreCase(getter(item), caseSensitive);
            if (max ? Py.Compare(key, bestKey, ">") > 0 : Py.Compare(key, bestKey, "<") < 0)
            {
                (best, bestKey) = (item, key);
            }
        }

        return best;
    }

    private static object? SelectOrReject(JinjaRenderer renderer, object? value, Args args, bool byAttribute, bool select)
    {
        if (!Py.Truthy(value))
        {
            return new PyGenerator([], "generator");
        }

        var offset = 0;
        Func<object?, object?> transform = item => item;
        if (byAttribute)
        {
            if (args.Positional.Count == 0)
            {
                throw new JinjaRuntimeException("Missing parameter for attribute name");
            }

            transform = AttributeGetter(args.Positional[0], null);
            offset = 1;
        }

        Func<object?, bool> test;
        if (args.Positional.Count > offset)
        {
            var testName = args.AsString(args.Positional[offset], "test");
            if (!JinjaTests.Exists(testName))
            {
                throw new JinjaRuntimeException($"No test named '{testName}'.");
            }

            var testArguments = args.Positional.Skip(offset + 1).ToList();
            test = item => Py.Truthy(JinjaTests.Apply(
                renderer, testName, item, new Args(testName, [.. testArguments], new Dictionary<string, object?>(args.Keywords))));
        }
        else
        {
            test = Py.Truthy;
        }

        return new PyGenerator(Py.Iterate(value).Where(item => test(transform(item)) == select), "generator");
    }

    private static object? Replace(JinjaRenderer renderer, object? value, Args args)
    {
        var old = Py.Str(args.Required(0, "old"));
        var replacement = Py.Str(args.Required(1, "new"));
        var count = args.Get(2, "count", null);
        args.Done(3);
        return PyString.Replace(Py.Str(value), old, replacement, count is null ? -1 : args.AsInteger(count, "count"));
    }

    private static object? Reverse(JinjaRenderer renderer, object? value, Args args)
    {
        args.Done(0);
        switch (value)
        {
            case string s:
                return PyString.Slice(s, null, null, -1);
            case List<object?> or object?[] or PyDict or Undefined:
                var items = Py.Iterate(value).ToList();
                items.Reverse();
                return new PyGenerator(items, value is PyDict ? "dict_reversekeyiterator" : "list_reverseiterator");
            default:
                var list = Py.Iterate(value).ToList();
                list.Reverse();
                return list;
        }
    }

    private static object? Round(JinjaRenderer renderer, object? value, Args args)
    {
        var precision = args.Integer(0, "precision", 0);
        var method = args.String(1, "method", "common");
        args.Done(2);
        if (method is not ("common" or "ceil" or "floor"))
        {
            throw new JinjaRuntimeException("method must be common, ceil or floor");
        }

        if (method == "common" && value is long or bool)
        {
            return value is bool b ? (b ? 1L : 0L) : value;
        }

        var number = value switch
        {
            bool b => b ? 1.0 : 0.0,
            long l => l,
            double d => d,
            _ => throw new JinjaRuntimeException($"type {Py.TypeName(value)} doesn't define __round__ method"),
        };
        var scale = Math.Pow(10, precision);
        return method switch
        {
            "ceil" => Math.Ceiling(number * scale) / scale,
            "floor" => Math.Floor(number * scale) / scale,
            _ => PyRound(number, precision),
        };
    }

    /// <summary>
    /// Python's <c>round(x, ndigits)</c>: rounds the exact binary value of x half-to-even at ndigits decimals
    /// (so round(2.675, 2) is 2.67, because 2.675 is stored as 2.67499999...).
    /// </summary>
    private static double PyRound(double x, long ndigits)
    {
        if (!double.IsFinite(x) || x == 0 || ndigits > 308)
        {
            return x;
        }

        if (ndigits < -308)
        {
            return 0.0 * x;
        }

        var bits = BitConverter.DoubleToInt64Bits(x);
        var exponent = (int)((bits >> 52) & 0x7FF);
        var mantissa = bits & 0xF_FFFF_FFFF_FFFFL;
        if (exponent == 0)
        {
            exponent = 1;
        }
        else
        {
            mantissa |= 1L << 52;
        }

        exponent -= 1075;
        BigInteger numerator = mantissa;
        BigInteger denominator = BigInteger.One;
        if (exponent >= 0)
        {
            numerator <<= exponent;
        }
        else
        {
            denominator <<= -exponent;
        }

        var power = BigInteger.Pow(10, (int)Math.Abs(ndigits));
        if (ndigits >= 0)
        {
            numerator *= power;
        }
        else
        {
            denominator *= power;
        }

        var quotient = BigInteger.DivRem(numerator, denominator, out var remainder);
        var twice = remainder * 2;
        if (twice > denominator || (twice == denominator && !quotient.IsEven))
        {
            quotient += 1;
        }

        var digits = quotient.ToString(CultureInfo.InvariantCulture);
        string text;
        if (ndigits > 0)
        {
            var padded = digits.PadLeft((int)ndigits + 1, '0');
            text = padded[..^(int)ndigits] + "." + padded[^(int)ndigits..];
        }
        else
        {
            text = digits + new string('0', (int)-ndigits);
        }

        var magnitude = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        return x < 0 ? -magnitude : magnitude;
    }

    private static object? Sort(JinjaRenderer renderer, object? value, Args args)
    {
        var reverse = args.Bool(0, "reverse", false);
        var caseSensitive = args.Bool(1, "case_sensitive", false);
        var attribute = args.Get(2, "attribute", null);
        args.Done(3);
        Func<object?, object?> key;
        if (attribute is string names && names.Contains(','))
        {
            var getters = names.Split(',').Select(n => AttributeGetter(n, null)).ToList();
            key = item => getters.Select(g => IgnoreCase(g(item), caseSensitive)).ToList();
        }
        else
        {
            var getter = AttributeGetter(attribute, null);
            key = item => IgnoreCase(getter(item), caseSensitive);
        }

        return StableSort(Py.Iterate(value).ToList(), key, reverse);
    }

    private static object? Sum(JinjaRenderer renderer, object? value, Args args)
    {
        var attribute = args.Get(0, "attribute", null);
        var total = args.Get(1, "start", 0L);
        args.Done(2);
        var items = Py.Iterate(value);
        if (attribute is not null)
        {
            items = items.Select(AttributeGetter(attribute, null));
        }

        foreach (var item in items)
        {
            total = Py.Add(total, item);
        }

        return total;
    }

    /// <summary>Hugging Face's tojson: <c>json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)</c>.</summary>
    private static object? ToJson(JinjaRenderer renderer, object? value, Args args)
    {
        var ensureAscii = args.Bool(0, "ensure_ascii", false);
        var indent = args.Get(1, "indent", null);
        var separators = args.Get(2, "separators", null);
        var sortKeys = args.Bool(3, "sort_keys", false);
        args.Done(4);
        string? indentText = indent switch
        {
            null => null,
            string s => s,
            _ => new string(' ', Py.Size(args.AsInteger(indent, "indent"), "indent")),
        };
        (string, string)? separatorPair = null;
        if (separators is not null)
        {
            var parts = Py.Iterate(separators).ToList();
            if (parts.Count != 2 || parts[0] is not string item || parts[1] is not string key)
            {
                throw new JinjaRuntimeException("separators must be a pair of strings");
            }

            separatorPair = (item, key);
        }

        return PyJson.Dumps(value, ensureAscii, indentText, separatorPair, sortKeys);
    }

    private static object? Trim(JinjaRenderer renderer, object? value, Args args)
    {
        var chars = args.OptionalString(0, "chars");
        args.Done(1);
        return KeepMarkup(value, PyString.Strip(Py.Str(value), chars));
    }

    private static object? Unique(JinjaRenderer renderer, object? value, Args args)
    {
        var caseSensitive = args.Bool(0, "case_sensitive", false);
        var attribute = args.Get(1, "attribute", null);
        args.Done(2);
        var getter = AttributeGetter(attribute, null);
        return new PyGenerator(Distinct(), "generator");

        IEnumerable<object?> Distinct()
        {
            var seen = new PyDict();
            foreach (var item in Py.Iterate(value))
            {
                var key = IgnoreCase(getter(item), caseSensitive);
                if (!seen.ContainsKey(key))
                {
                    seen.Set(key, null);
                    yield return item;
                }
            }
        }
    }

    /// <summary>jinja's title filter: upper-cases the first letter after a space, '-', or an opening bracket.</summary>
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder();
        foreach (var part in WordBeginningRegex().Split(s))
        {
            if (part.Length > 0)
            {
                var first = PyString.CodePoints(part)[0];
                sb.Append(PyString.Upper(first)).Append(PyString.Lower(part[first.Length..]));
            }
        }

        return sb.ToString();
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginningRegex();

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();
}
