namespace SharpTune.Jinja;

/// <summary>
/// Binds call arguments to a Python-style parameter list: parameter i is positional argument i or the keyword with
/// its name. Call <see cref="Done"/> after reading every parameter to reject extra arguments.
/// </summary>
internal sealed class Args(string function, List<object?> positional, Dictionary<string, object?> keywords)
{
    public List<object?> Positional => positional;

    public Dictionary<string, object?> Keywords => keywords;

    public object? Get(int index, string name, object? fallback)
    {
        if (index < positional.Count)
        {
            if (keywords.ContainsKey(name))
            {
                throw new JinjaRuntimeException($"{function}() got multiple values for argument '{name}'");
            }

            return positional[index];
        }

        return keywords.Remove(name, out var value) ? value : fallback;
    }

    public object? Required(int index, string name) => index < positional.Count || keywords.ContainsKey(name)
        ? Get(index, name, null)
        : throw new JinjaRuntimeException($"{function}() missing required argument: '{name}'");

    public string? OptionalString(int index, string name)
    {
        var value = Get(index, name, null);
        return value is null ? null : AsString(value, name);
    }

    public string String(int index, string name, string? fallback = null) =>
        AsString(fallback is null ? Required(index, name) : Get(index, name, fallback), name);

    public long Integer(int index, string name, long fallback) => AsInteger(Get(index, name, fallback), name);

    public bool Bool(int index, string name, bool fallback) => Py.Truthy(Get(index, name, fallback));

    public void Done(int parameterCount)
    {
        if (positional.Count > parameterCount)
        {
            throw new JinjaRuntimeException(
                $"{function}() takes at most {parameterCount} argument(s) ({positional.Count} given)");
        }

        if (keywords.Count > 0)
        {
            throw new JinjaRuntimeException($"{function}() got an unexpected keyword argument '{keywords.Keys.First()}'");
        }
    }

    public string AsString(object? value, string name) => Py.Text(value)
        ?? throw new JinjaRuntimeException($"{function}() argument '{name}' must be str, not {Py.TypeName(value)}");

    public long AsInteger(object? value, string name) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new JinjaRuntimeException(
            $"{function}() argument '{name}' must be an integer, not {Py.TypeName(value)}"),
    };
}
