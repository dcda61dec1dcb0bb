using SharpTune.Hub;

namespace SharpTune.Cli;

/// <summary>Turns --model / --dataset into a local path (<see cref="ModelSource"/>), with download progress on
/// stderr.</summary>
static class ModelLocator
{
    public static string Resolve(string source) => WithProgress(source, progress => ModelSource.ResolveModel(source, progress));

    public static string ResolveDataset(string source) => WithProgress(source, progress => ModelSource.ResolveDataset(source, progress));

    static string WithProgress(string source, Func<IProgress<HubProgress>, string> resolve)
    {
        var progress = new DownloadProgress(source);
        string path = resolve(progress);
        progress.Finish();
        return path;
    }

    /// <summary>One stderr line, rewritten at most twice a second, ended when every file is present.</summary>
    public sealed class DownloadProgress(string source) : IProgress<HubProgress>
    {
        readonly Lock _lock = new();
        long _lastReport;
        bool _written;

        public void Report(HubProgress p)
        {
            lock (_lock)
            {
                long now = Environment.TickCount64;
                bool done = p.FilesDone == p.FilesTotal;
                if (now - _lastReport < 500 && !done) return;
                _lastReport = now;
                _written = !done;
                Console.Error.Write($"\rdownloading {source}: {p.FilesDone}/{p.FilesTotal} files, {p.BytesDone / 1e6:0.0}/{p.BytesTotal / 1e6:0.0} MB   ");
                if (done) Console.Error.WriteLine();
            }
        }

        public void Finish()
        {
            lock (_lock)
                if (_written) Console.Error.WriteLine();
        }
    }
}
