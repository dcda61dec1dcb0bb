namespace SharpTune.Jinja;

/// <summary>jinja2's tests: <c>x is defined</c>, <c>x is none</c>, <c>x is string</c>, <c>x is equalto y</c>, ...</summary>
internal static class JinjaTests
{
    private delegate bool Test(object? value, Args args);

    private static readonly Dictionary<string, Test> Tests = new(StringComparer.Ordinal)
    {
        ["boolean"] = (v, a) => Done(a, v is bool),
        ["callable"] = (v, a) => Done(a, v is BoundMethod or BuiltinFunction or Macro),
        ["defined"] = (v, a) => Done(a, v is not Undefined),
        ["divisibleby"] = (v, a) => Py.Equal(Py.Modulo(v, One(a, "num")), 0L),
        ["escaped"] = (v, a) => Done(a, v is Markup),
        ["even"] = (v, a) => Done(a, Py.Equal(Py.Modulo(v, 2L), 0L)),
        ["false"] = (v, a) => Done(a, v is false),
        ["filter"] = (v, a) => Done(a, Py.Text(v) is { } name && JinjaFilters.Exists(name)),
        ["float"] = (v, a) => Done(a, v is double),
        ["in"] = (v, a) => Py.Contains(One(a, "seq"), v),
        ["integer"] = (v, a) => Done(a, v is long),
        ["iterable"] = (v, a) => Done(a, Py.IsIterable(v) || v is LoopContext),
        ["lower"] = (v, a) => Done(a, PyString.IsLower(Py.Str(v))),
        ["mapping"] = (v, a) => Done(a, v is PyDict),
        ["none"] = (v, a) => Done(a, v is null),
        ["number"] = (v, a) => Done(a, Py.IsNumber(v)),
        ["odd"] = (v, a) => Done(a, Py.Equal(Py.Modulo(v, 2L), 1L)),
        ["sameas"] = (v, a) => SameAs(v, One(a, "other")),
        ["sequence"] = (v, a) => Done(a, Py.HasLength(v) && v is not PyView),
        ["string"] = (v, a) => Done(a, v is string or Markup),
        ["test"] = (v, a) => Done(a, Py.Text(v) is { } name && Tests!.ContainsKey(name)),
        ["true"] = (v, a) => Done(a, v is true),
        ["undefined"] = (v, a) => Done(a, v is Undefined),
        ["upper"] = (v, a) => Done(a, PyString.IsUpper(Py.Str(v))),
        ["eq"] = (v, a) => Py.Equal(v, One(a, "other")),
        ["equalto"] = (v, a) => Py.Equal(v, One(a, "other")),
        ["=="] = (v, a) => Py.Equal(v, One(a, "other")),
        ["ne"] = (v, a) => !Py.Equal(v, One(a, "other")),
        ["!="] = (v, a) => !Py.Equal(v, One(a, "other")),
        ["gt"] = (v, a) => Py.Compare(v, One(a, "other"), ">") > 0,
        ["greaterthan"] = (v, a) => Py.Compare(v, One(a, "other"), ">") > 0,
        [">"] = (v, a) => Py.Compare(v, One(a, "other"), ">") > 0,
        ["ge"] = (v, a) => Py.Compare(v, One(a, "other"), ">=") >= 0,
        [">="] = (v, a) => Py.Compare(v, One(a, "other"), ">=") >= 0,
        ["lt"] = (v, a) => Py.Compare(v, One(a, "other"), "<") < 0,
        ["lessthan"] = (v, a) => Py.Compare(v, One(a, "other"), "<") < 0,
        ["<"] = (v, a) => Py.Compare(v, One(a, "other"), "<") < 0,
        ["le"] = (v, a) => Py.Compare(v, One(a, "other"), "<=") <= 0,
        ["<="] = (v, a) => Py.Compare(v, One(a, "other"), "<=") <= 0,
    };

    public static bool Exists(string name) => Tests.ContainsKey(name);

    public static object? Apply(JinjaRenderer renderer, string name, object? value, Args args) =>
        Tests.TryGetValue(name, out var test)
            ? test(value, args)
            : throw new JinjaRuntimeException($"No test named '{name}'.");

    private static bool Done(Args args, bool result)
    {
        args.Done(0);
        return result;
    }

    private static object? One(Args args, string name)
    {
        var value = args.Required(0, name);
        args.Done(1);
        return value;
    }

    /// <summary>Python's <c>is</c>: None, booleans and small integers are singletons; other values compare by identity.</summary>
    private static bool SameAs(object? value, object? other) => (value, other) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y && x is >= -5 and <= 256,
        _ => ReferenceEquals(value, other),
    };
}
