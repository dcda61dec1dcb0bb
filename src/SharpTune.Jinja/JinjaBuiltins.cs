using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>The global functions: jinja2's range, dict and namespace, and Hugging Face's raise_exception and strftime_now.</summary>
internal static class JinjaBuiltins
{
    // jinja2's sandbox refuses ranges longer than this.
    private const long MaxRange = 100_000;

    public static Scope CreateGlobals()
    {
        var globals = new Scope(null);
        foreach (var function in new BuiltinFunction[]
                 {
                     new("range", Range),
                     new("dict", Dict),
                     new("namespace", Namespace),
                     new("raise_exception", RaiseException),
                     new("strftime_now", StrftimeNow),
                 })
        {
            globals.Set(function.Name, function);
        }

        return globals;
    }

    private static object? Range(List<object?> positional, Dictionary<string, object?> keywords)
    {
        if (keywords.Count > 0 || positional.Count is < 1 or > 3)
        {
            throw new JinjaRuntimeException("range expected 1 to 3 integer arguments");
        }

        var numbers = positional.Select(p => p is bool or long
            ? (long)Py.IntegerOrNull(p)!
            : throw new JinjaRuntimeException($"'{Py.TypeName(p)}' object cannot be interpreted as an integer")).ToList();
        var (start, stop, step) = numbers.Count switch
        {
            1 => (0L, numbers[0], 1L),
            2 => (numbers[0], numbers[1], 1L),
            _ => (numbers[0], numbers[1], numbers[2]),
        };
        if (step == 0)
        {
            throw new JinjaRuntimeException("range() arg 3 must not be zero");
        }

        var count = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
        if (count > MaxRange)
        {
            throw new JinjaRuntimeException($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        }

        var result = new List<object?>();
        for (var i = 0L; i < count; i++)
        {
            result.Add(start + i * step);
        }

        return result;
    }

    private static object? Dict(List<object?> positional, Dictionary<string, object?> keywords)
    {
        var result = new PyDict();
        if (positional.Count > 1)
        {
            throw new JinjaRuntimeException($"dict expected at most 1 argument, got {positional.Count}");
        }

        if (positional.Count == 1)
        {
            CopyInto(result, positional[0]);
        }

        foreach (var (key, value) in keywords)
        {
            result.Set(key, value);
        }

        return result;
    }

    private static void CopyInto(PyDict target, object? source)
    {
        if (source is PyDict dict)
        {
            foreach (var (key, value) in dict)
            {
                target.Set(key, value);
            }

            return;
        }

        foreach (var pair in Py.Iterate(source))
        {
            var items = Py.Iterate(pair).ToList();
            if (items.Count != 2)
            {
                throw new JinjaRuntimeException("dictionary update sequence element has the wrong length; 2 is required");
            }

            target.Set(items[0], items[1]);
        }
    }

    private static object? Namespace(List<object?> positional, Dictionary<string, object?> keywords)
    {
        var ns = new JinjaNamespace();
        foreach (var source in positional)
        {
            CopyInto(ns.Attributes, source);
        }

        foreach (var (key, value) in keywords)
        {
            ns.Attributes.Set(key, value);
        }

        return ns;
    }

    /// <summary>A template's own error (e.g. "Conversation roles must alternate"): surfaces with exactly its message.</summary>
    private static object? RaiseException(List<object?> positional, Dictionary<string, object?> keywords)
    {
        var message = positional.Count > 0 ? positional[0] : keywords.GetValueOrDefault("message");
        throw new JinjaException(JinjaErrorKind.Raised, Py.Str(message));
    }

    private static object? StrftimeNow(List<object?> positional, Dictionary<string, object?> keywords)
    {
        var args = new Args("strftime_now", positional, keywords);
        var format = args.String(0, "format");
        args.Done(1);
        return Strftime(DateTime.Now, format);
    }

    /// <summary>Python's <c>datetime.strftime</c> (C locale), including glibc's "%-d" form without padding.</summary>
    public static string Strftime(DateTime time, string format)
    {
        var culture = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }

            var noPad = format[i + 1] == '-' && i + 2 < format.Length;
            var directive = format[noPad ? i + 2 : i + 1];
            i += noPad ? 2 : 1;
            string Number(int value, int width) => noPad ? value.ToString(culture) : value.ToString(new string('0', width), culture);
            sb.Append(directive switch
            {
                'a' => time.ToString("ddd", culture),
                'A' => time.ToString("dddd", culture),
                'w' => ((int)time.DayOfWeek).ToString(culture),
                'd' => Number(time.Day, 2),
                'b' or 'h' => time.ToString("MMM", culture),
                'B' => time.ToString("MMMM", culture),
                'm' => Number(time.Month, 2),
                'y' => Number(time.Year % 100, 2),
                'Y' => time.Year.ToString(culture),
                'H' => Number(time.Hour, 2),
                'I' => Number(time.Hour % 12 == 0 ? 12 : time.Hour % 12, 2),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'M' => Number(time.Minute, 2),
                'S' => Number(time.Second, 2),
                'f' => (time.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", culture),
                'j' => Number(time.DayOfYear, 3),
                'e' => time.Day.ToString(culture).PadLeft(2),
                'D' => time.ToString("MM/dd/yy", culture),
                'F' => time.ToString("yyyy-MM-dd", culture),
                'T' => time.ToString("HH:mm:ss", culture),
                'c' => time.ToString("ddd MMM ", culture) + time.Day.ToString(culture).PadLeft(2) + time.ToString(" HH:mm:ss yyyy", culture),
                'x' => time.ToString("MM/dd/yy", culture),
                'X' => time.ToString("HH:mm:ss", culture),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + directive,
            });
        }

        return sb.ToString();
    }
}
