namespace SharpTune.Jinja;

/// <summary>
/// A Jinja template rendered byte for byte like jinja2 with Hugging Face's chat-template settings: trim_blocks,
/// lstrip_blocks, the sandbox's attribute rules, <c>raise_exception</c>, <c>strftime_now</c> and a <c>tojson</c> that
/// keeps non-ASCII text. Parse once, render many times (a template is immutable and thread-safe).
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Node> _body;

    private JinjaTemplate(string source, IReadOnlyList<Node> body)
    {
        Source = source;
        _body = body;
    }

    public string Source { get; }

    /// <summary>Parses a template. A syntax error is a <see cref="JinjaException"/> naming the line and column.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new JinjaTemplate(source, JinjaParser.Parse(source));
    }

    /// <summary>
    /// Renders with the given variables: strings, booleans, integers, floats, null, lists, dictionaries with string
    /// keys, or System.Text.Json nodes and elements. <c>raise_exception('x')</c> in the template throws a
    /// <see cref="JinjaException"/> of kind <see cref="JinjaErrorKind.Raised"/> with message "x"; other errors name the
    /// template line.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return JinjaRenderer.Render(_body, variables);
    }
}
