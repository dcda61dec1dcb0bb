namespace SharpTune;

/// <summary>Checks that a folder can be written to before a command writes anything there: an output path that
/// is a file, lies under a file, or sits in a read-only place is refused with its name, up front.</summary>
public static class OutputFolder
{
    public static void RequireWritable(string dir, string what = "output folder")
    {
        string full = Path.GetFullPath(dir);
        if (File.Exists(full)) throw new SharpTuneException($"{dir}: the {what} is a file; choose a folder");
        // The nearest part of the path that exists must be a folder we may create files in.
        string? existing = full;
        while (existing is not null && !Directory.Exists(existing))
        {
            if (File.Exists(existing)) throw new SharpTuneException($"{dir}: cannot create the {what}: {existing} is a file");
            existing = Path.GetDirectoryName(existing);
        }
        if (existing is null) throw new SharpTuneException($"{dir}: cannot create the {what}: no part of the path exists");
        string probe = Path.Combine(existing, $".sharptune-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (InputFile.Describe(e) is { } problem)
        {
            throw new SharpTuneException($"{dir}: cannot write the {what} in {existing}: {problem}");
        }
    }
}
