namespace SharpTune;

/// <summary>Reads input files with one kind of error for every way the file system can refuse: missing, a folder
/// where a file is expected, no permission, a symlink loop, a read error. Each becomes a <see cref="SharpTuneException"/>
/// that names the path.</summary>
public static class InputFile
{
    public static byte[] ReadAllBytes(string path) => Guard(path, () => File.ReadAllBytes(path));

    public static string ReadAllText(string path) => Guard(path, () => File.ReadAllText(path));

    public static FileStream OpenRead(string path, FileOptions options = FileOptions.None) =>
        Guard(path, () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 4096, options));

    /// <summary>Runs <paramref name="read"/>, turning a file-system error into one that names <paramref name="path"/>.</summary>
    public static T Guard<T>(string path, Func<T> read)
    {
        if (Directory.Exists(path)) throw new SharpTuneException($"{path}: is a folder, expected a file");
        try
        {
            return read();
        }
        catch (Exception e) when (Describe(e) is { } problem)
        {
            throw new SharpTuneException($"{path}: {problem}", e);
        }
    }

    /// <summary>A short description of a file-system error (null when <paramref name="e"/> is not one).</summary>
    public static string? Describe(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "not found",
        UnauthorizedAccessException => "permission denied",
        PathTooLongException => "path too long",
        IOException io when io.HResult == 28 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) => "no space left on the device",
        IOException io => ErrorText.OneLine(StripPath(io.Message), 160),
        _ => null,
    };

    /// <summary>.NET appends " : 'path'" to OS errors; the caller names the path itself.</summary>
    static string StripPath(string message)
    {
        int cut = message.IndexOf(" : '", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
