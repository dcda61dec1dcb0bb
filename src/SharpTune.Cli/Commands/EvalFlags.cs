using System.CommandLine;
using SharpTune.Evaluation;

namespace SharpTune.Cli.Commands;

/// <summary>Flags `score` and `eval` share, and the progress line of `eval` and `train`'s closing evaluation.</summary>
static class EvalFlags
{
    public static Option<string[]> Metrics() => new("--metrics")
    {
        Description = $"Metrics, comma-separated or repeated (default all): {string.Join(", ", TextMetrics.Names)}",
        AllowMultipleArgumentsPerToken = true,
    };

    public static Option<bool> Stemmer() => new("--stemmer") { Description = "Porter-stem tokens longer than 3 characters for ROUGE (rouge-score's use_stemmer)" };

    public static Option<string> BleuTokenizer() => new("--bleu-tokenizer")
    {
        Description = "BLEU tokenizer: 13a (default, sacrebleu's), zh (Chinese), none",
        DefaultValueFactory = _ => "13a",
    };

    public static IReadOnlyList<string>? MetricNames(ParseResult p, Option<string[]> metrics)
    {
        var values = p.GetValue(metrics);
        if (values is null || values.Length == 0) return null;
        return values.SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
    }

    /// <summary>A progress bar with samples/s on stderr: redrawn in place on a terminal, a line per update
    /// (at most every 2 s) when redirected.</summary>
    public static IProgress<EvalProgress> Progress()
    {
        bool interactive = !Console.IsErrorRedirected;
        long lastLine = 0;
        string lastStage = "";
        return new SynchronousProgress<EvalProgress>(e =>
        {
            bool done = e.Done == e.Total;
            long now = Environment.TickCount64;
            if (!interactive && !done && e.Stage == lastStage && now - lastLine < 2000) return;
            lastLine = now;
            lastStage = e.Stage;
            int width = 30, filled = e.Total == 0 ? width : (int)((long)width * e.Done / e.Total);
            double eta = e.SamplesPerSecond > 0 ? (e.Total - e.Done) / e.SamplesPerSecond : 0;
            string line = $"{e.Stage,-24} [{new string('#', filled)}{new string('.', width - filled)}] {e.Done}/{e.Total}  {e.SamplesPerSecond:0.00} samples/s" +
                (done ? $"  {e.ElapsedSeconds:0.0}s" : e.Done > 0 ? $"  eta {eta:0}s" : "");
            if (interactive) Console.Error.Write($"\r{line}   " + (done ? "\n" : ""));
            else Console.Error.WriteLine(line);
        });
    }

    /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool, so lines could interleave).</summary>
    sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
