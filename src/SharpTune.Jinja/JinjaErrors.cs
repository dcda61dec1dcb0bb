namespace SharpTune.Jinja;

/// <summary>What went wrong in a template.</summary>
public enum JinjaErrorKind
{
    /// <summary>The template does not parse; <see cref="JinjaException.Line"/> and <see cref="JinjaException.Column"/> say where.</summary>
    Syntax,
    /// <summary>Rendering failed (the equivalent of a Python TypeError, UndefinedError, ...) at <see cref="JinjaException.Line"/>.</summary>
    Render,
    /// <summary>The template called <c>raise_exception(message)</c>; the message is exactly the template's.</summary>
    Raised,
    /// <summary>A variable passed to <see cref="JinjaTemplate.Render"/> has a type the engine does not take.</summary>
    Variable,
}

/// <summary>An error of a template or its variables. <see cref="Exception.Message"/> names the template line.</summary>
public sealed class JinjaException(JinjaErrorKind kind, string detail, int line = 0, int column = 0)
    : Exception(Describe(kind, detail, line, column, "Template"))
{
    public JinjaErrorKind Kind { get; } = kind;

    /// <summary>The error without its position, e.g. "unexpected end of template".</summary>
    public string Detail { get; } = detail;

    public int Line { get; } = line;

    public int Column { get; } = column;

    /// <summary>The message with the template named as <paramref name="subject"/>, e.g. "Chat template error at line 3: ...".</summary>
    public string Describe(string subject) => Describe(Kind, Detail, Line, Column, subject);

    private static string Describe(JinjaErrorKind kind, string detail, int line, int column, string subject) => kind switch
    {
        JinjaErrorKind.Syntax => $"{subject} syntax error at line {line}, column {column}: {detail}",
        JinjaErrorKind.Render => $"{subject} error at line {line}: {detail}",
        JinjaErrorKind.Variable => $"{subject} variable {detail}",
        _ => detail,
    };
}

/// <summary>
/// An error raised while rendering (the equivalent of a Python TypeError, UndefinedError, ...). The renderer turns it
/// into a <see cref="JinjaException"/> that names the template line.
/// </summary>
internal sealed class JinjaRuntimeException(string message) : Exception(message);

internal static class JinjaErrors
{
    public static JinjaException Syntax(string message, int line, int column) => new(JinjaErrorKind.Syntax, message, line, column);

    public static JinjaException Runtime(string message, int line) => new(JinjaErrorKind.Render, message, line);
}
