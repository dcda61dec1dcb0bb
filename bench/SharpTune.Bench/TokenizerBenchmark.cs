using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Bench;

/// <summary>Single-thread encode throughput, measured the way the Hugging Face reference numbers were: one cold pass
/// (empty word cache), then the best of several warm passes, plus EncodeBatch over all cores.</summary>
public static class TokenizerBenchmark
{
    /// <param name="WarmCpuMBps">Warm throughput per second of process CPU time: steadier than wall time on a
    /// machine shared with other work.</param>
    public sealed record Result(double Megabytes, long Tokens, double ColdMBps, double WarmMBps, double WarmTokensPerSecond,
        double WarmCpuMBps, double BatchMBps);

    /// <param name="corpusFile">A JSON array of strings (optionally .gz), or a text file with one document per line.</param>
    public static Result Run(string modelDir, string corpusFile, int warmPasses = 3, TextWriter? output = null)
    {
        output ??= Console.Out;
        var documents = ReadCorpus(corpusFile);
        double megabytes = documents.Sum(d => (double)System.Text.Encoding.UTF8.GetByteCount(d)) / 1e6;
        var tokenizer = Tokenizer.Load(modelDir);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        foreach (string document in documents)
        {
            tokens += tokenizer.Encode(document, addSpecialTokens: false).Length;
        }
        double cold = clock.Elapsed.TotalSeconds;
        double warm = double.MaxValue;
        double warmCpu = double.MaxValue;
        var process = Process.GetCurrentProcess();
        for (int pass = 0; pass < warmPasses; pass++)
        {
            process.Refresh();
            var cpuBefore = process.TotalProcessorTime;
            clock.Restart();
            foreach (string document in documents)
            {
                tokenizer.Encode(document, addSpecialTokens: false);
            }
            warm = Math.Min(warm, clock.Elapsed.TotalSeconds);
            process.Refresh();
            warmCpu = Math.Min(warmCpu, (process.TotalProcessorTime - cpuBefore).TotalSeconds);
        }
        clock.Restart();
        tokenizer.EncodeBatch(documents, addSpecialTokens: false);
        double batch = clock.Elapsed.TotalSeconds;
        var result = new Result(megabytes, tokens, megabytes / cold, megabytes / warm, tokens / warm, megabytes / warmCpu,
            megabytes / batch);
        output.WriteLine($"{Path.GetFileName(Path.GetFullPath(modelDir))}: {documents.Count} docs, {megabytes:F2} MB, " +
            $"{tokens} tokens | single thread: cold {result.ColdMBps:F2} MB/s; warm {result.WarmMBps:F2} MB/s " +
            $"({result.WarmTokensPerSecond:F0} tok/s), per CPU second {result.WarmCpuMBps:F2} MB/s | " +
            $"EncodeBatch on {Environment.ProcessorCount} cores " +
            $"{result.BatchMBps:F2} MB/s");
        return result;
    }

    private static List<string> ReadCorpus(string path)
    {
        if (!File.Exists(path))
        {
            throw new SharpTuneException($"{path}: corpus file not found");
        }
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
            || path.EndsWith(".json.gz", StringComparison.OrdinalIgnoreCase))
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
                ? new GZipStream(file, CompressionMode.Decompress)
                : file;
            return JsonSerializer.Deserialize<List<string>>(stream)
                ?? throw new SharpTuneException($"{path}: expected a JSON array of strings");
        }
        return [.. File.ReadLines(path)];
    }
}
