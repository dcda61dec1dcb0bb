namespace SharpTune.Tokenization.Jinja;

/// <summary>
/// An error raised while rendering (the equivalent of a Python TypeError, UndefinedError, ...). The renderer turns it
/// into a <see cref="SharpTuneException"/> that names the template line.
/// </summary>
internal sealed class JinjaRuntimeException(string message) : Exception(message);

internal static class JinjaErrors
{
    public static SharpTuneException Syntax(string message, int line, int column) =>
        new($"Chat template syntax error at line {line}, column {column}: {message}");

    public static SharpTuneException Runtime(string message, int line) =>
        new($"Chat template error at line {line}: {message}");
}
