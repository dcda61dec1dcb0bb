using SharpTune.Hub;

namespace SharpTune.Cli;

/// <summary>Turns --model / --dataset into a local folder: an existing folder as is, otherwise a Hub id
/// (org/name[@revision]) downloaded into the Hugging Face cache, with progress on stderr.</summary>
static class ModelLocator
{
    public static string Resolve(string source) => Fetch(source, dataset: false);

    public static string ResolveDataset(string source) =>
        File.Exists(source) || Directory.Exists(source) || source.StartsWith("sample", StringComparison.Ordinal) || !ModelSource.LooksLikeRepoId(source)
            ? source : Fetch(source, dataset: true);

    static string Fetch(string source, bool dataset)
    {
        if (Directory.Exists(source)) return source;
        if (!ModelSource.LooksLikeRepoId(source))
            throw new SharpTuneException($"{source}: no such folder, and not a Hub id of the form org/name[@revision]");
        var (repo, revision) = ModelSource.Parse(source);
        var client = new HubClient(HubOptions.FromEnvironment());
        long lastReport = 0;
        var progress = new Progress<HubProgress>(p =>
        {
            long now = Environment.TickCount64;
            if (now - lastReport < 500 && p.BytesDone < p.BytesTotal) return;
            lastReport = now;
            Console.Error.Write($"\rdownloading {repo}: {p.FilesDone}/{p.FilesTotal} files, {p.BytesDone / 1e6:0.0}/{p.BytesTotal / 1e6:0.0} MB   ");
        });
        string dir = dataset
            ? client.DownloadDatasetAsync(repo, revision, null, progress).GetAwaiter().GetResult()
            : client.DownloadModelAsync(repo, revision, null, progress).GetAwaiter().GetResult();
        Console.Error.WriteLine();
        return dir;
    }
}
