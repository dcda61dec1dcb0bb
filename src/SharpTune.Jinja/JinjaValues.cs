namespace SharpTune.Jinja;

// Runtime values. Python's types map onto: None = null, bool, int = long, float = double, str = string,
// list = List<object?>, tuple = object?[], dict = PyDict, plus the jinja-specific kinds below.

/// <summary>jinja2's default Undefined: prints as "", is falsy, iterates as empty; any other use raises <see cref="Hint"/>.</summary>
internal sealed class Undefined(string hint)
{
    public string Hint => hint;

    public static Undefined ForName(string name) => new($"{PyRepr.String(name)} is undefined");

    public static Undefined ForAttribute(object? owner, string name) =>
        new($"{PyRepr.String(Py.ObjectTypeRepr(owner))} has no attribute {PyRepr.String(name)}");

    public static Undefined ForItem(object? owner, object? key) => key is string name
        ? ForAttribute(owner, name)
        : new($"{Py.ObjectTypeRepr(owner)} has no element {Py.Repr(key)}");

    public JinjaRuntimeException Error() => new(hint);
}

/// <summary>
/// markupsafe's Markup, made by the <c>safe</c> and <c>escape</c> filters: text marked as safe HTML. Adding a plain
/// string to it HTML-escapes that string, as some templates rely on (<c>"f('"|safe + name</c>).
/// </summary>
internal sealed record Markup(string Text)
{
    public static string EscapeText(string text) =>
        text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("'", "&#39;").Replace("\"", "&#34;");

    /// <summary>markupsafe's <c>escape</c>: Markup stays as it is, anything else is converted to str and escaped.</summary>
    public static Markup Escape(object? value) => value as Markup ?? new Markup(EscapeText(Py.Str(value)));
}

/// <summary>An insertion-ordered Python dict with Python key equality (1 == 1.0 == True).</summary>
internal sealed class PyDict : IEnumerable<KeyValuePair<object?, object?>>
{
    private static readonly object NoneKey = new();

    private readonly List<object?> _keys = [];
    private readonly List<object?> _values = [];
    private readonly Dictionary<object, int> _positions = new(PyKeyComparer.Instance);

    public int Count => _keys.Count;

    public IReadOnlyList<object?> Keys => _keys;

    public IReadOnlyList<object?> Values => _values;

    public void Set(object? key, object? value)
    {
        var storedKey = key ?? NoneKey;
        if (_positions.TryGetValue(storedKey, out var position))
        {
            _values[position] = value;
            return;
        }

        _positions.Add(storedKey, _keys.Count);
        _keys.Add(key);
        _values.Add(value);
    }

    public bool TryGet(object? key, out object? value)
    {
        if (_positions.TryGetValue(key ?? NoneKey, out var position))
        {
            value = _values[position];
            return true;
        }

        value = null;
        return false;
    }

    public bool ContainsKey(object? key) => _positions.ContainsKey(key ?? NoneKey);

    public IEnumerator<KeyValuePair<object?, object?>> GetEnumerator()
    {
        for (var i = 0; i < _keys.Count; i++)
        {
            yield return new KeyValuePair<object?, object?>(_keys[i], _values[i]);
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    private sealed class PyKeyComparer : IEqualityComparer<object>
    {
        public static readonly PyKeyComparer Instance = new();

        public new bool Equals(object? x, object? y) =>
            ReferenceEquals(x, y) || (!ReferenceEquals(x, NoneKey) && !ReferenceEquals(y, NoneKey) && Py.Equal(x, y));

        public int GetHashCode(object obj) => ReferenceEquals(obj, NoneKey) ? 0 : Py.Hash(obj);
    }
}

/// <summary>The object made by <c>namespace(...)</c>: attributes that <c>{% set ns.x = ... %}</c> may change from inner scopes.</summary>
internal sealed class JinjaNamespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>A method looked up on a value (<c>text.split</c>, <c>dict.items</c>), waiting to be called.</summary>
internal sealed record BoundMethod(object Receiver, string Name);

/// <summary>A global function such as <c>range</c> or <c>raise_exception</c>.</summary>
internal sealed record BuiltinFunction(string Name, Func<List<object?>, Dictionary<string, object?>, object?> Invoke);

internal sealed record Macro(MacroNode Node, Scope Closure);

/// <summary>A one-shot lazy iterator (a Python generator or iterator object): truthy, has no length, consumed once.</summary>
internal sealed class PyGenerator(IEnumerable<object?> source, string typeName)
{
    private IEnumerator<object?>? _enumerator;

    public string TypeName => typeName;

    public IEnumerable<object?> Consume()
    {
        _enumerator ??= source.GetEnumerator();
        while (_enumerator.MoveNext())
        {
            yield return _enumerator.Current;
        }
    }
}

/// <summary>The result of <c>dict.keys()</c>, <c>.values()</c> or <c>.items()</c>.</summary>
internal sealed record PyView(string TypeName, List<object?> Items);

/// <summary>Variables visible at one point of the template; a for-loop iteration, macro call or with-block opens a child scope.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public bool TryLookup(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }

        value = null;
        return false;
    }

    public Scope? Parent => parent;

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>
/// The <c>loop</c> variable of a for loop. Items passing the loop's <c>if</c> filter are fetched lazily, so
/// <c>loop.last</c> and <c>loop.length</c> look ahead only when asked, as jinja2 does.
/// </summary>
internal sealed class LoopContext(IEnumerator<object?> source, Func<object?, bool>? accept)
{
    private readonly List<object?> _items = [];
    private bool _exhausted;
    private object?[]? _lastChangedValue;

    public int Index0 { get; private set; } = -1;

    public object? Current => _items[Index0];

    public bool MoveNext()
    {
        Index0++;
        return Fetch(Index0);
    }

    private bool Fetch(int position)
    {
        while (_items.Count <= position && !_exhausted)
        {
            if (!source.MoveNext())
            {
                _exhausted = true;
            }
            else if (accept is null || accept(source.Current))
            {
                _items.Add(source.Current);
            }
        }

        return _items.Count > position;
    }

    public int Length
    {
        get
        {
            Fetch(int.MaxValue);
            return _items.Count;
        }
    }

    public static bool HasAttribute(string name) => name is "index" or "index0" or "revindex" or "revindex0"
        or "first" or "last" or "length" or "previtem" or "nextitem" or "depth" or "depth0" or "cycle" or "changed";

    public object? Attribute(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Length - Index0),
        "revindex0" => (long)(Length - Index0 - 1),
        "first" => Index0 == 0,
        "last" => !Fetch(Index0 + 1),
        "length" => (long)Length,
        "previtem" => Index0 > 0 ? _items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Fetch(Index0 + 1) ? _items[Index0 + 1] : new Undefined("there is no next item"),
        "depth" => 1L,
        "depth0" => 0L,
        "cycle" or "changed" => new BoundMethod(this, name),
        _ => Undefined.ForAttribute(this, name),
    };

    public object? Cycle(List<object?> arguments)
    {
        if (arguments.Count == 0)
        {
            throw new JinjaRuntimeException("no items for cycling given");
        }

        return arguments[Index0 % arguments.Count];
    }

    public bool Changed(List<object?> arguments)
    {
        var value = arguments.ToArray();
        if (_lastChangedValue is not null && Py.Equal(_lastChangedValue, value))
        {
            return false;
        }

        _lastChangedValue = value;
        return true;
    }

    public override string ToString() => $"<LoopContext {Index0 + 1}/{Length}>";
}
