using System.Text;

namespace SharpTune.Jinja;

/// <summary>Methods callable on values (<c>text.split('x')</c>, <c>dict.items()</c>, <c>list.index(x)</c>), Python semantics.</summary>
internal static class JinjaMethods
{
    private static readonly HashSet<string> StringMethods =
    [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
        "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
        "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip",
        "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ];

    private static readonly HashSet<string> DictMethods = ["copy", "fromkeys", "get", "items", "keys", "values"];

    // The sandbox refuses these: calling them would change a value owned by the caller.
    private static readonly HashSet<string> MutatingDictMethods = ["clear", "pop", "popitem", "setdefault", "update"];

    private static readonly HashSet<string> ListMethods = ["copy", "count", "index"];

    private static readonly HashSet<string> MutatingListMethods =
        ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"];

    /// <summary>The method <paramref name="name"/> of <paramref name="target"/>, an unsafe-attribute undefined, or null if none.</summary>
    public static object? Lookup(object target, string name)
    {
        var known = target switch
        {
            string or Markup => StringMethods.Contains(name),
            PyDict => DictMethods.Contains(name),
            List<object?> => ListMethods.Contains(name),
            object?[] => name is "count" or "index",
            _ => false,
        };
        if (known)
        {
            return new BoundMethod(target, name);
        }

        var mutating = target switch
        {
            PyDict => MutatingDictMethods.Contains(name),
            List<object?> => MutatingListMethods.Contains(name),
            _ => false,
        };
        return mutating
            ? new Undefined($"access to attribute {PyRepr.String(name)} of {PyRepr.String(Py.TypeName(target))} object is unsafe.")
            : null;
    }

    public static object? Call(BoundMethod method, Args args) => method.Receiver switch
    {
        string text => CallString(text, method.Name, args),
        Markup markup => CallMarkup(markup, method.Name, args),
        PyDict dict => CallDict(dict, method.Name, args),
        List<object?> or object?[] => CallSequence((IReadOnlyList<object?>)method.Receiver, method.Name, args),
        LoopContext loop when method.Name == "cycle" => loop.Cycle(args.Positional),
        LoopContext loop => loop.Changed(args.Positional),
        _ => throw new JinjaRuntimeException($"{method.Name}() is not supported"),
    };

    // Markup methods that return Markup (markupsafe wraps them); the first group also escapes their str arguments.
    private static readonly HashSet<string> MarkupEscapingMethods =
    [
        "capitalize", "casefold", "center", "expandtabs", "format", "join", "ljust", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "replace", "rjust", "rpartition", "rstrip", "strip", "swapcase", "title",
        "translate", "upper", "zfill",
    ];

    private static readonly HashSet<string> MarkupSplittingMethods = ["rsplit", "split", "splitlines"];

    private static object? CallMarkup(Markup markup, string name, Args a)
    {
        if (!MarkupEscapingMethods.Contains(name))
        {
            var plain = CallString(markup.Text, name, a);
            return MarkupSplittingMethods.Contains(name) ? ((List<object?>)plain!).Select(p => (object?)new Markup((string)p!)).ToList() : plain;
        }

        object? Escape(object? value) => value is string s ? Markup.EscapeText(s) : value is Markup m ? m.Text : value;
        var positional = a.Positional.Select(Escape).ToList();
        if (name == "join" && positional.Count > 0)
        {
            positional[0] = Py.Iterate(positional[0]).Select(Escape).ToList();
        }

        var keywords = a.Keywords.ToDictionary(p => p.Key, p => Escape(p.Value));
        return CallString(markup.Text, name, new Args(name, positional, keywords)) switch
        {
            string s => new Markup(s),
            object?[] parts => parts.Select(p => (object?)new Markup((string)p!)).ToArray(),
            var other => other,
        };
    }

    private static object? CallString(string text, string name, Args a)
    {
        object? result;
        switch (name)
        {
            case "startswith" or "endswith":
                result = StartsOrEndsWith(text, name == "startswith", a);
                a.Done(3);
                return result;
            case "strip" or "lstrip" or "rstrip":
                var chars = a.OptionalString(0, "chars");
                a.Done(1);
                return name switch
                {
                    "strip" => PyString.Strip(text, chars),
                    "lstrip" => PyString.LStrip(text, chars),
                    _ => PyString.RStrip(text, chars),
                };
            case "split" or "rsplit":
                var separator = a.OptionalString(0, "sep");
                var maxSplit = a.Integer(1, "maxsplit", -1);
                a.Done(2);
                return name == "split" ? PyString.Split(text, separator, maxSplit) : PyString.RSplit(text, separator, maxSplit);
            case "splitlines":
                var keepEnds = a.Bool(0, "keepends", false);
                a.Done(1);
                return PyString.SplitLines(text, keepEnds).Cast<object?>().ToList();
            case "replace":
                var old = a.String(0, "old");
                var replacement = a.String(1, "new");
                var count = a.Integer(2, "count", -1);
                a.Done(3);
                return PyString.Replace(text, old, replacement, count);
            case "upper" or "lower" or "title" or "capitalize" or "swapcase" or "casefold":
                a.Done(0);
                return name switch
                {
                    "upper" => PyString.Upper(text),
                    "lower" or "casefold" => PyString.Lower(text),
                    "title" => PyString.Title(text),
                    "capitalize" => PyString.Capitalize(text),
                    _ => string.Concat(PyString.CodePoints(text).Select(p => PyString.IsUpper(p) ? PyString.Lower(p) : PyString.Upper(p))),
                };
            case "find" or "rfind" or "index" or "rindex" or "count":
                return Search(text, name, a);
            case "join":
                var items = Py.Iterate(a.Required(0, "iterable")).ToList();
                a.Done(1);
                for (var i = 0; i < items.Count; i++)
                {
                    if (Py.Text(items[i]) is null)
                    {
                        throw new JinjaRuntimeException($"sequence item {i}: expected str instance, {Py.TypeName(items[i])} found");
                    }
                }

                return Py.Join(text, items.Select(Py.Str));
            case "partition" or "rpartition":
                var sep = a.String(0, "sep");
                a.Done(1);
                if (sep.Length == 0)
                {
                    throw new JinjaRuntimeException("empty separator");
                }

                var at = name == "partition" ? text.IndexOf(sep, StringComparison.Ordinal) : text.LastIndexOf(sep, StringComparison.Ordinal);
                return at < 0
                    ? name == "partition" ? new object?[] { text, "", "" } : new object?[] { "", "", text }
                    : new object?[] { text[..at], sep, text[(at + sep.Length)..] };
            case "removeprefix":
                var prefix = a.String(0, "prefix");
                a.Done(1);
                return text.StartsWith(prefix, StringComparison.Ordinal) ? text[prefix.Length..] : text;
            case "removesuffix":
                var suffix = a.String(0, "suffix");
                a.Done(1);
                return suffix.Length > 0 && text.EndsWith(suffix, StringComparison.Ordinal) ? text[..^suffix.Length] : text;
            case "center" or "ljust" or "rjust":
                var width = a.AsInteger(a.Required(0, "width"), "width");
                var fill = a.String(1, "fillchar", " ");
                a.Done(2);
                return Justify(text, name, width, fill);
            case "zfill":
                var zwidth = Py.Size(a.AsInteger(a.Required(0, "width"), "width"), "width");
                a.Done(1);
                var sign = text.Length > 0 && text[0] is '+' or '-' ? text[..1] : "";
                var length = PyString.Length(text);
                return length >= zwidth ? text : sign + new string('0', (int)(zwidth - length)) + text[sign.Length..];
            case "isdigit" or "isdecimal" or "isnumeric" or "isalpha" or "isalnum" or "isspace" or "isascii"
                or "islower" or "isupper" or "istitle":
                a.Done(0);
                return Classify(text, name);
            case "format":
                return PyFormat.Format(text, a.Positional, a.Keywords);
            default:
                throw new JinjaRuntimeException($"str.{name}() is not supported");
        }
    }

    private static bool StartsOrEndsWith(string text, bool start, Args a)
    {
        var candidate = a.Required(0, start ? "prefix" : "suffix");
        var candidates = candidate switch
        {
            string or Markup => [Py.Text(candidate)!],
            object?[] tuple => tuple.Select(t => Py.Text(t)
                ?? throw new JinjaRuntimeException($"tuple for {(start ? "startswith" : "endswith")} must only contain str")).ToList(),
            var other => throw new JinjaRuntimeException(
                $"{(start ? "startswith" : "endswith")} first arg must be str or a tuple of str, not {Py.TypeName(other)}"),
        };
        var from = Py.SliceBound(a.Get(1, "start", null));
        var to = Py.SliceBound(a.Get(2, "end", null));
        var length = PyString.Length(text);
        if ((from < 0 ? from + length : from) > length)
        {
            // Python: a start beyond the end never matches, not even an empty prefix.
            return false;
        }

        var (begin, end, _) = Py.SliceIndices(length, from, to, 1);

        var part = PyString.Slice(text, begin, Math.Max(begin, end), 1);
        return candidates.Any(c => start ? part.StartsWith(c, StringComparison.Ordinal) : part.EndsWith(c, StringComparison.Ordinal));
    }

    private static object? Search(string text, string name, Args a)
    {
        var sub = a.String(0, "sub");
        var from = Py.SliceBound(a.Get(1, "start", null));
        var to = Py.SliceBound(a.Get(2, "end", null));
        a.Done(3);
        var points = PyString.CodePoints(text);
        var needle = PyString.CodePoints(sub);
        var (begin, end, _) = Py.SliceIndices(points.Count, from, to, 1);
        if (name == "count")
        {
            if (needle.Count == 0)
            {
                return begin > points.Count ? 0L : Math.Max(0, end - begin) + 1;
            }

            long occurrences = 0;
            for (var i = begin; i + needle.Count <= end;)
            {
                if (MatchesAt(points, needle, (int)i))
                {
                    occurrences++;
                    i += needle.Count;
                }
                else
                {
                    i++;
                }
            }

            return occurrences;
        }

        var found = -1L;
        if (name is "find" or "index")
        {
            for (var i = begin; i + needle.Count <= end; i++)
            {
                if (MatchesAt(points, needle, (int)i))
                {
                    found = i;
                    break;
                }
            }
        }
        else
        {
            for (var i = end - needle.Count; i >= begin; i--)
            {
                if (MatchesAt(points, needle, (int)i))
                {
                    found = i;
                    break;
                }
            }
        }

        if (found < 0 && name is "index" or "rindex")
        {
            throw new JinjaRuntimeException("substring not found");
        }

        return found;
    }

    private static bool MatchesAt(List<string> points, List<string> needle, int at)
    {
        for (var j = 0; j < needle.Count; j++)
        {
            if (!string.Equals(points[at + j], needle[j], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static string Justify(string text, string name, long width, string fill)
    {
        if (PyString.Length(fill) != 1)
        {
            throw new JinjaRuntimeException("The fill character must be exactly one character long");
        }

        var length = PyString.Length(text);
        Py.Size(width, "width");
        if (length >= width)
        {
            return text;
        }

        var margin = (int)(width - length);
        var left = name switch
        {
            "ljust" => 0,
            "rjust" => margin,
            _ => margin / 2 + (margin & (int)width & 1),
        };
        var sb = new StringBuilder();
        for (var i = 0; i < left; i++)
        {
            sb.Append(fill);
        }

        sb.Append(text);
        for (var i = 0; i < margin - left; i++)
        {
            sb.Append(fill);
        }

        return sb.ToString();
    }

    private static bool Classify(string text, string name)
    {
        if (name == "isascii")
        {
            return text.All(c => c < 0x80);
        }

        if (name == "islower")
        {
            return PyString.IsLower(text);
        }

        if (name == "isupper")
        {
            return PyString.IsUpper(text);
        }

        if (name == "istitle")
        {
            return text.Length > 0 && PyString.Title(text) == text && text.Any(char.IsLetter);
        }

        return text.Length > 0 && PyString.CodePoints(text).All(point => name switch
        {
            "isdigit" or "isdecimal" => char.IsDigit(point, 0),
            "isnumeric" => char.IsNumber(point, 0),
            "isalpha" => char.IsLetter(point, 0),
            "isalnum" => char.IsLetterOrDigit(point, 0) || char.IsNumber(point, 0),
            _ => PyString.IsSpace(point[0]),
        });
    }

    private static object? CallDict(PyDict dict, string name, Args a)
    {
        switch (name)
        {
            case "get":
                var key = a.Required(0, "key");
                var fallback = a.Get(1, "default", null);
                a.Done(2);
                if (key is not null)
                {
                    Py.Hash(key);
                }

                return dict.TryGet(key, out var value) ? value : fallback;
            case "keys":
                a.Done(0);
                return new PyView("dict_keys", dict.Keys.ToList());
            case "values":
                a.Done(0);
                return new PyView("dict_values", dict.Values.ToList());
            case "items":
                a.Done(0);
                return new PyView("dict_items", dict.Select(p => (object?)new[] { p.Key, p.Value }).ToList());
            case "copy":
                a.Done(0);
                var copy = new PyDict();
                foreach (var (k, v) in dict)
                {
                    copy.Set(k, v);
                }

                return copy;
            default:
                throw new JinjaRuntimeException($"dict.{name}() is not supported");
        }
    }

    private static object? CallSequence(IReadOnlyList<object?> items, string name, Args a)
    {
        switch (name)
        {
            case "count":
                var counted = a.Required(0, "value");
                a.Done(1);
                return (long)items.Count(item => Py.Equal(item, counted));
            case "index":
                var wanted = a.Required(0, "value");
                var from = Py.SliceBound(a.Get(1, "start", null));
                var to = Py.SliceBound(a.Get(2, "stop", null));
                a.Done(3);
                var (begin, end, _) = Py.SliceIndices(items.Count, from, to, 1);
                for (var i = begin; i < end; i++)
                {
                    if (Py.Equal(items[(int)i], wanted))
                    {
                        return i;
                    }
                }

                throw new JinjaRuntimeException($"{Py.Repr(wanted)} is not in list");
            default:
                a.Done(0);
                return items.ToList();
        }
    }
}
