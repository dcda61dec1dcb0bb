using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>Python's semantics for the runtime values: truthiness, str(), ==, ordering, arithmetic, iteration, len().</summary>
internal static class Py
{
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        Markup => "Markup",
        List<object?> => "list",
        object?[] => "tuple",
        PyDict => "dict",
        Undefined => "Undefined",
        JinjaNamespace => "Namespace",
        LoopContext => "LoopContext",
        Macro => "Macro",
        BoundMethod or BuiltinFunction => "builtin_function_or_method",
        PyGenerator generator => generator.TypeName,
        PyView view => view.TypeName,
        _ => value.GetType().Name,
    };

    /// <summary>jinja2's <c>object_type_repr</c>, used in "'dict object' has no attribute 'x'".</summary>
    public static string ObjectTypeRepr(object? value) => value is null ? "None" : $"{TypeName(value)} object";

    public static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        Markup m => m.Text.Length > 0,
        List<object?> list => list.Count > 0,
        object?[] tuple => tuple.Length > 0,
        PyDict dict => dict.Count > 0,
        PyView view => view.Items.Count > 0,
        Undefined => false,
        _ => true,
    };

    /// <summary>Python's <c>str(value)</c>, which is what <c>{{ value }}</c> prints.</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        Markup m => m.Text,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Containers nested deeper than this cannot be printed, compared or written as JSON (Python's
    /// recursion limit raises there too); a loop can build such a list with <c>set ns.x = [ns.x]</c>.</summary>
    public const int MaxNesting = 200;

    public static string Repr(object? value) => Repr(value, 0);

    private static string Repr(object? value, int depth)
    {
        if (depth > MaxNesting)
        {
            throw TooDeep();
        }

        string Inner(object? item) => Repr(item, depth + 1);
        switch (value)
        {
            case null:
                return "None";
            case bool b:
                return b ? "True" : "False";
            case long l:
                return l.ToString(CultureInfo.InvariantCulture);
            case double d:
                return PyRepr.Float(d);
            case string s:
                return PyRepr.String(s);
            case Markup m:
                return $"Markup({PyRepr.String(m.Text)})";
            case List<object?> list:
                return "[" + Join(", ", list.Select(Inner)) + "]";
            case object?[] tuple:
                return tuple.Length == 1 ? $"({Inner(tuple[0])},)" : "(" + Join(", ", tuple.Select(Inner)) + ")";
            case PyDict dict:
                return "{" + Join(", ", dict.Select(p => $"{Inner(p.Key)}: {Inner(p.Value)}")) + "}";
            case Undefined:
                return "Undefined";
            case JinjaNamespace ns:
                return $"<Namespace {Inner(ns.Attributes)}>";
            case PyView view:
                return $"{view.TypeName}({Inner(view.Items)})";
            case PyGenerator generator:
                return $"<{generator.TypeName} object>";
            case BoundMethod method:
                return $"<built-in method {method.Name} of {TypeName(method.Receiver)} object>";
            case BuiltinFunction function:
                return $"<built-in function {function.Name}>";
            case Macro macro:
                return $"<Macro {PyRepr.String(macro.Node.Name)}>";
            case LoopContext loop:
                return loop.ToString();
            default:
                return value.ToString() ?? "";
        }
    }

    public static bool IsNumber(object? value) => value is bool or long or double;

    /// <summary>The text of a str value (a string or Markup, which Python treats as a str), else null.</summary>
    public static string? Text(object? value) => value switch
    {
        string s => s,
        Markup m => m.Text,
        _ => null,
    };

    private static bool IsInteger(object? value) => value is bool or long;

    private static long ToLong(object? value) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        _ => throw new InvalidOperationException("not an integer"),
    };

    private static double ToDouble(object? value) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        _ => throw new InvalidOperationException("not a number"),
    };

    /// <summary>How deep the current comparison has gone into nested containers (per thread: templates render
    /// concurrently).</summary>
    [ThreadStatic] private static int _comparing;

    /// <summary>Compares the items of two containers one level deeper, stopping at <see cref="MaxNesting"/>.</summary>
    private static T Deeper<T>(Func<T> compare)
    {
        if (_comparing >= MaxNesting)
        {
            throw TooDeep();
        }

        _comparing++;
        try
        {
            return compare();
        }
        finally
        {
            _comparing--;
        }
    }

    public static bool Equal(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? ToLong(a) == ToLong(b) : ToDouble(a) == ToDouble(b);
        }

        if (Text(a) is { } textA && Text(b) is { } textB)
        {
            return string.Equals(textA, textB, StringComparison.Ordinal);
        }

        return (a, b) switch
        {
            (null, null) => true,
            (List<object?> x, List<object?> y) => Deeper(() => SequenceEqual(x, y)),
            (object?[] x, object?[] y) => Deeper(() => SequenceEqual(x, y)),
            (PyDict x, PyDict y) => x.Count == y.Count && Deeper(() => x.All(p => y.TryGet(p.Key, out var v) && Equal(p.Value, v))),
            (Undefined, Undefined) => true,
            _ => ReferenceEquals(a, b),
        };
    }

    private static bool SequenceEqual(IReadOnlyList<object?> x, IReadOnlyList<object?> y)
    {
        if (x.Count != y.Count)
        {
            return false;
        }

        for (var i = 0; i < x.Count; i++)
        {
            if (!Equal(x[i], y[i]))
            {
                return false;
            }
        }

        return true;
    }

    public static int Hash(object value) => value switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && Math.Abs(d) < 9e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        Markup m => StringComparer.Ordinal.GetHashCode(m.Text),
        object?[] tuple => Deeper(() => tuple.Aggregate(17, (h, item) => (h * 31) + (item is null ? 0 : Hash(item)))),
        List<object?> or PyDict or PyView => throw new JinjaRuntimeException($"unhashable type: '{TypeName(value)}'"),
        _ => value.GetHashCode(),
    };

    /// <summary>Python ordering (&lt;, &lt;=, &gt;, &gt;=): numbers, strings by code point, lists and tuples element by element.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (a is Undefined undefinedA)
        {
            throw undefinedA.Error();
        }

        if (b is Undefined undefinedB)
        {
            throw undefinedB.Error();
        }

        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? ToLong(a).CompareTo(ToLong(b)) : ToDouble(a).CompareTo(ToDouble(b));
        }

        if (Text(a) is { } textA && Text(b) is { } textB)
        {
            return PyString.Compare(textA, textB);
        }

        return (a, b) switch
        {
            (List<object?> x, List<object?> y) => Deeper(() => CompareSequences(x, y, op)),
            (object?[] x, object?[] y) => Deeper(() => CompareSequences(x, y, op)),
            _ => throw new JinjaRuntimeException(
                $"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'"),
        };
    }

    private static int CompareSequences(IReadOnlyList<object?> x, IReadOnlyList<object?> y, string op)
    {
        for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
        {
            if (!Equal(x[i], y[i]))
            {
                return Compare(x[i], y[i], op);
            }
        }

        return x.Count.CompareTo(y.Count);
    }

    private static void ThrowIfUndefined(object? a, object? b)
    {
        if (a is Undefined undefinedA)
        {
            throw undefinedA.Error();
        }

        if (b is Undefined undefinedB)
        {
            throw undefinedB.Error();
        }
    }

    private static JinjaRuntimeException Unsupported(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    public static object? Add(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? Checked(() => checked(ToLong(a) + ToLong(b))) : ToDouble(a) + ToDouble(b);
        }

        // Markup + str escapes the str; str + Markup escapes the left str.
        if (a is Markup markup && Text(b) is not null)
        {
            return new Markup(markup.Text + Markup.Escape(b).Text);
        }

        if (b is Markup right && a is string left)
        {
            return new Markup(Markup.EscapeText(left) + right.Text);
        }

        return (a, b) switch
        {
            (string x, string y) when WithinLimit(x.Length, y.Length) => x + y,
            (List<object?> x, List<object?> y) when WithinLimit(x.Count, y.Count) => x.Concat(y).ToList(),
            (object?[] x, object?[] y) when WithinLimit(x.Length, y.Length) => x.Concat(y).ToArray(),
            (string, _) => throw new JinjaRuntimeException($"can only concatenate str (not \"{TypeName(b)}\") to str"),
            (List<object?>, _) => throw new JinjaRuntimeException($"can only concatenate list (not \"{TypeName(b)}\") to list"),
            _ => throw Unsupported("+", a, b),
        };
    }

    /// <summary>True when a concatenation stays within <see cref="MaxRepeat"/>; throws otherwise.</summary>
    private static bool WithinLimit(int first, int second) => Size((long)first + second, "a concatenation of length") >= 0;

    public static object? Subtract(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? Checked(() => checked(ToLong(a) - ToLong(b))) : ToDouble(a) - ToDouble(b);
        }

        throw Unsupported("-", a, b);
    }

    /// <summary>The largest string or list that <c>*</c> may build.</summary>
    public const long MaxRepeat = 16 * 1024 * 1024;

    public static JinjaRuntimeException TooDeep() => new($"values nested more than {MaxNesting} levels deep");

    /// <summary>Appends to a string being built, failing once it would grow past <see cref="MaxRepeat"/>: no single
    /// operation (join, repr, formatting) builds an unbounded string.</summary>
    public static StringBuilder Append(StringBuilder sb, string text)
    {
        Size((long)sb.Length + text.Length, "a string of length");
        return sb.Append(text);
    }

    /// <summary><c>separator.join(parts)</c> within <see cref="MaxRepeat"/>.</summary>
    public static string Join(string separator, IEnumerable<string> parts)
    {
        var sb = new StringBuilder();
        var first = true;
        foreach (var part in parts)
        {
            if (!first)
            {
                Append(sb, separator);
            }

            Append(sb, part);
            first = false;
        }

        return sb.ToString();
    }

    /// <summary>A width or count that would build a string or list larger than <see cref="MaxRepeat"/> fails here.</summary>
    public static int Size(long n, string what) => n <= MaxRepeat ? (int)Math.Max(0, n)
        : throw new JinjaRuntimeException($"{what} {n} exceeds the limit of {MaxRepeat}");

    public static object? Multiply(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return IsInteger(a) && IsInteger(b) ? Checked(() => checked(ToLong(a) * ToLong(b))) : ToDouble(a) * ToDouble(b);
        }

        return (a, b) switch
        {
            (string s, _) when IsInteger(b) => Repeat(s, ToLong(b)),
            (Markup m, _) when IsInteger(b) => new Markup(Repeat(m.Text, ToLong(b))),
            (_, Markup m) when IsInteger(a) => new Markup(Repeat(m.Text, ToLong(a))),
            (_, string s) when IsInteger(a) => Repeat(s, ToLong(a)),
            (List<object?> list, _) when IsInteger(b) => RepeatList(list, ToLong(b)),
            (_, List<object?> list) when IsInteger(a) => RepeatList(list, ToLong(a)),
            _ => throw Unsupported("*", a, b),
        };

        static string Repeat(string s, long n) => n <= 0 || s.Length == 0 ? ""
            : n > MaxRepeat / s.Length ? throw TooLarge(s.Length, n) : new StringBuilder().Insert(0, s, (int)n).ToString();

        static List<object?> RepeatList(List<object?> list, long n) => n <= 0 || list.Count == 0 ? []
            : n > MaxRepeat / list.Count ? throw TooLarge(list.Count, n) : Enumerable.Range(0, (int)n).SelectMany(_ => list).ToList();

        static JinjaRuntimeException TooLarge(int length, long n) =>
            new($"repeating {length} items {n} times exceeds the limit of {MaxRepeat} (a rendering that large is a mistake)");
    }

    public static object? Divide(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b))
        {
            throw Unsupported("/", a, b);
        }

        var divisor = ToDouble(b);
        if (divisor == 0)
        {
            throw new JinjaRuntimeException("division by zero");
        }

        return ToDouble(a) / divisor;
    }

    public static object? FloorDivide(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b))
        {
            throw Unsupported("//", a, b);
        }

        if (IsInteger(a) && IsInteger(b))
        {
            var (x, y) = (ToLong(a), ToLong(b));
            if (y == 0)
            {
                throw new JinjaRuntimeException("integer division or modulo by zero");
            }

            var quotient = x / y;
            return (x % y != 0 && ((x < 0) != (y < 0))) ? quotient - 1 : quotient;
        }

        var divisor = ToDouble(b);
        if (divisor == 0)
        {
            throw new JinjaRuntimeException("float floor division by zero");
        }

        return Math.Floor(ToDouble(a) / divisor);
    }

    public static object? Modulo(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (a is string format)
        {
            return PyFormat.Percent(format, b);
        }

        if (a is Markup markupFormat)
        {
            object? EscapeArgument(object? value) => IsNumber(value) ? value : Markup.Escape(value);
            var arguments = b is object?[] tuple ? tuple.Select(EscapeArgument).ToArray() : EscapeArgument(b);
            return new Markup(PyFormat.Percent(markupFormat.Text, arguments));
        }

        if (!IsNumber(a) || !IsNumber(b))
        {
            throw Unsupported("%", a, b);
        }

        if (IsInteger(a) && IsInteger(b))
        {
            var (x, y) = (ToLong(a), ToLong(b));
            if (y == 0)
            {
                throw new JinjaRuntimeException("integer division or modulo by zero");
            }

            var remainder = x % y;
            return remainder != 0 && ((remainder < 0) != (y < 0)) ? remainder + y : remainder;
        }

        var (p, q) = (ToDouble(a), ToDouble(b));
        if (q == 0)
        {
            throw new JinjaRuntimeException("float modulo");
        }

        var mod = p % q;
        return mod != 0 && ((mod < 0) != (q < 0)) ? mod + q : mod;
    }

    public static object? Power(object? a, object? b)
    {
        ThrowIfUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b))
        {
            throw Unsupported("** or pow()", a, b);
        }

        if (IsInteger(a) && IsInteger(b) && ToLong(b) >= 0)
        {
            var (x, n) = (ToLong(a), ToLong(b));
            return Checked(() =>
            {
                long result = 1;
                for (long i = 0; i < n; i++)
                {
                    result = checked(result * x);
                }

                return result;
            });
        }

        return Math.Pow(ToDouble(a), ToDouble(b));
    }

    public static object? Negate(object? value) => value switch
    {
        Undefined undefined => throw undefined.Error(),
        bool or long => Checked(() => checked(-ToLong(value))),
        double d => -d,
        _ => throw new JinjaRuntimeException($"bad operand type for unary -: '{TypeName(value)}'"),
    };

    public static object? Plus(object? value) => value switch
    {
        Undefined undefined => throw undefined.Error(),
        bool or long => (object)ToLong(value),
        double d => d,
        _ => throw new JinjaRuntimeException($"bad operand type for unary +: '{TypeName(value)}'"),
    };

    private static object Checked(Func<long> compute)
    {
        try
        {
            return compute();
        }
        catch (OverflowException)
        {
            throw new JinjaRuntimeException("integer overflow (values beyond 64 bits are not supported)");
        }
    }

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string or Markup:
                var text = Text(container)!;
                return Text(item) is { } part
                    ? text.Contains(part, StringComparison.Ordinal)
                    : throw new JinjaRuntimeException($"'in <string>' requires string as left operand, not {TypeName(item)}");
            case PyDict dict:
                if (item is not null)
                {
                    Hash(item);
                }

                return dict.ContainsKey(item);
            case List<object?> or object?[] or PyView or PyGenerator or Undefined:
                return Iterate(container).Any(element => Equal(element, item));
            default:
                throw new JinjaRuntimeException($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    /// <summary>Python's <c>iter(value)</c>: strings give code points, dicts give keys, undefined gives nothing.</summary>
    public static IEnumerable<object?> Iterate(object? value) => value switch
    {
        string s => PyString.CodePoints(s),
        Markup m => PyString.CodePoints(m.Text),
        List<object?> list => list,
        object?[] tuple => tuple,
        PyDict dict => dict.Keys,
        PyView view => view.Items,
        PyGenerator generator => generator.Consume(),
        Undefined => [],
        _ => throw new JinjaRuntimeException($"'{TypeName(value)}' object is not iterable"),
    };

    public static bool IsIterable(object? value) => value is string or Markup or List<object?> or object?[] or PyDict or PyView or PyGenerator or Undefined;

    /// <summary>Python's <c>len(value)</c>; jinja's undefined has length 0.</summary>
    public static long Length(object? value) => value switch
    {
        string s => PyString.Length(s),
        Markup m => PyString.Length(m.Text),
        List<object?> list => list.Count,
        object?[] tuple => tuple.Length,
        PyDict dict => dict.Count,
        PyView view => view.Items.Count,
        Undefined => 0,
        _ => throw new JinjaRuntimeException($"object of type '{TypeName(value)}' has no len()"),
    };

    public static bool HasLength(object? value) => value is string or Markup or List<object?> or object?[] or PyDict or PyView or Undefined;

    /// <summary>Python's <c>slice.indices</c>: clamps start and stop for a sequence of <paramref name="length"/> items.</summary>
    public static (long Start, long Stop, long Step) SliceIndices(long length, long? start, long? stop, long? step)
    {
        var s = step ?? 1;
        if (s == 0)
        {
            throw new JinjaRuntimeException("slice step cannot be zero");
        }

        long Clamp(long? index, long whenMissing)
        {
            if (index is null)
            {
                return whenMissing;
            }

            var i = index.Value < 0 ? index.Value + length : index.Value;
            return s > 0 ? Math.Clamp(i, 0, length) : Math.Clamp(i, -1, length - 1);
        }

        return s > 0 ? (Clamp(start, 0), Clamp(stop, length), s) : (Clamp(start, length - 1), Clamp(stop, -1), s);
    }

    public static IEnumerable<int> SliceRange(int length, long? start, long? stop, long? step)
    {
        var (from, to, s) = SliceIndices(length, start, stop, step);
        for (var i = from; s > 0 ? i < to : i > to; i += s)
        {
            yield return (int)i;
        }
    }

    /// <summary>Converts an index or slice bound to an integer (ints and bools; None means "not given").</summary>
    public static long? SliceBound(object? value) => value switch
    {
        null => null,
        bool or long => ToLong(value),
        _ => throw new JinjaRuntimeException("slice indices must be integers or None"),
    };

    public static object? IntegerOrNull(object? value) => IsInteger(value) ? ToLong(value) : null;
}
