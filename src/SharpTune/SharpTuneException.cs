namespace SharpTune;

/// <summary>A user-facing error: bad input, missing file, unsupported feature. The CLI prints its message
/// on one line without a stack trace.</summary>
public sealed class SharpTuneException(string message, Exception? inner = null) : Exception(message, inner);
