using System.Text;
using System.Text.Json;

namespace SharpTune.Training;

/// <summary>Everything a metrics file holds about a run, in file order. <see cref="Start"/> and <see cref="End"/>
/// are the last ones written (a resumed run has several starts).</summary>
public sealed record RunHistory(
    TrainStart? Start,
    IReadOnlyList<StepMetrics> Steps,
    IReadOnlyList<EvalMetrics> Evals,
    IReadOnlyList<CheckpointEvent> Checkpoints,
    TrainSummary? End);

public sealed record CheckpointEvent(int Step, string Dir);

/// <summary>
/// Appends one JSON object per event to a JSONL file ("event": start|step|eval|checkpoint|end, then the event's
/// fields in snake_case), flushed line by line so that a killed run keeps every metric written before it died.
/// A resumed run appends to the same file: <see cref="OnStart"/> first drops the lines of steps after the resume
/// step (they will be trained again); a fresh run (start step 0) starts the file anew.
/// </summary>
public sealed class MetricsLog : ITrainingSink, IDisposable
{
    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        // A diverged run logs NaN/Infinity losses; they are worth keeping.
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        RespectRequiredConstructorParameters = true,
    };

    FileStream? _stream;

    public string FilePath { get; }

    /// <summary>Nothing is created until the first event: a run that fails while setting up leaves no file.</summary>
    public MetricsLog(string path)
    {
        FilePath = Path.GetFullPath(path);
    }

    FileStream Stream
    {
        get
        {
            if (_stream is null)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
                _stream = OpenForAppend(FilePath);
            }
            return _stream;
        }
    }

    public void OnStart(TrainStart start)
    {
        if (start.StartStep == 0)
            Rewrite([]);
        else
            TruncateAfter(start.StartStep);
        Append("start", start);
    }

    public void OnStep(StepMetrics step) => Append("step", step);

    public void OnEval(EvalMetrics eval) => Append("eval", eval);

    public void OnCheckpoint(int step, string dir) => Append("checkpoint", new CheckpointEvent(step, dir));

    public void OnEnd(TrainSummary summary) => Append("end", summary);

    /// <summary>Drops every line about a step after <paramref name="step"/> (steps, evals, checkpoints, starts and
    /// ends) and a last line torn by a kill mid-write. The file is replaced atomically.</summary>
    public void TruncateAfter(int step)
    {
        var kept = new List<string>();
        if (!File.Exists(FilePath)) return;
        foreach (var (line, _, json) in ReadLines(FilePath))
        {
            int? lineStep = json is null ? null : StepOf(json.RootElement);
            json?.Dispose();
            // A line that is not JSON is kept: it is not ours to judge here, Read reports it.
            if (lineStep is null || lineStep <= step)
                kept.Add(line);
        }
        Rewrite(kept);
    }

    public void Dispose() => _stream?.Dispose();

    public static List<StepMetrics> ReadSteps(string path) => [.. Read(path).Steps];

    public static List<EvalMetrics> ReadEvals(string path) => [.. Read(path).Evals];

    /// <summary>Reads a metrics file. A last line without its newline that does not parse is a write cut short
    /// by a kill and is skipped; any other bad line is an error naming the file and line.</summary>
    public static RunHistory Read(string path)
    {
        if (!File.Exists(path))
            throw new SharpTuneException($"Metrics file {path} does not exist.");
        TrainStart? start = null;
        TrainSummary? end = null;
        var steps = new List<StepMetrics>();
        var evals = new List<EvalMetrics>();
        var checkpoints = new List<CheckpointEvent>();
        foreach (var (line, number, json) in ReadLines(path))
        {
            if (json is null)
                throw new SharpTuneException($"{path}:{number}: expected a JSON object, got: {Shorten(line)}");
            using (json)
            {
                var root = json.RootElement;
                string? kind = root.TryGetProperty("event", out var e) && e.ValueKind == JsonValueKind.String
                    ? e.GetString() : null;
                try
                {
                    switch (kind)
                    {
                        case "start": start = root.Deserialize<TrainStart>(Json); break;
                        case "step": steps.Add(root.Deserialize<StepMetrics>(Json)!); break;
                        case "eval": evals.Add(root.Deserialize<EvalMetrics>(Json)!); break;
                        case "checkpoint": checkpoints.Add(root.Deserialize<CheckpointEvent>(Json)!); break;
                        case "end": end = root.Deserialize<TrainSummary>(Json); break;
                        default:
                            throw new SharpTuneException(
                                $"{path}:{number}: \"event\" must be start, step, eval, checkpoint or end, got: {Shorten(line)}");
                    }
                }
                catch (JsonException ex)
                {
                    throw new SharpTuneException($"{path}:{number}: bad \"{kind}\" line: {ex.Message}", ex);
                }
            }
        }
        return new RunHistory(start, steps, evals, checkpoints, end);
    }

    void Append(string kind, object record)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("event", kind);
            foreach (var property in JsonSerializer.SerializeToElement(record, record.GetType(), Json).EnumerateObject())
                property.WriteTo(writer);
            writer.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        // One write per line, flushed to the OS, so that the file only ever ends mid-line if the process is
        // killed inside this call.
        Stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        Stream.Flush();
    }

    void Rewrite(IReadOnlyList<string> lines)
    {
        _stream?.Dispose();
        _stream = null;
        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        try
        {
            AtomicFile.Write(FilePath, s =>
            {
                foreach (string line in lines)
                {
                    s.Write(Encoding.UTF8.GetBytes(line));
                    s.WriteByte((byte)'\n');
                }
            });
        }
        finally
        {
            _stream = OpenForAppend(FilePath);
        }
    }

    /// <summary>The step a line is about, for truncation; null for a line that names none.</summary>
    static int? StepOf(JsonElement line)
    {
        string? key = line.TryGetProperty("event", out var e) && e.ValueKind == JsonValueKind.String
            ? e.GetString() switch
            {
                "start" => "start_step",
                "end" => "steps",
                _ => "step",
            }
            : null;
        return key is not null && line.TryGetProperty(key, out var value) && value.TryGetInt32(out int step)
            ? step : null;
    }

    /// <summary>Opens the file for appending, first cutting off a last line that a kill left without its
    /// newline, so that the next line does not glue onto it.</summary>
    static FileStream OpenForAppend(string path)
    {
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        long end = stream.Length;
        if (end > 0)
        {
            long lineEnd = end;
            while (lineEnd > 0)
            {
                stream.Position = lineEnd - 1;
                if (stream.ReadByte() == '\n')
                    break;
                lineEnd--;
            }
            if (lineEnd != end)
                stream.SetLength(lineEnd);
        }
        stream.Seek(0, SeekOrigin.End);
        return stream;
    }

    /// <summary>The file's non-blank lines with their 1-based numbers, each parsed as a JSON object (null when it
    /// is not one). A torn last line (no newline, not JSON) is left out.</summary>
    static IEnumerable<(string Line, int Number, JsonDocument? Json)> ReadLines(string path)
    {
        string text;
        // The writer may still have the file open.
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        using (var reader = new StreamReader(stream, Encoding.UTF8))
            text = reader.ReadToEnd();
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Trim().Length == 0)
                continue;
            JsonDocument? json = Parse(line);
            bool torn = i == lines.Length - 1; // no newline after it
            if (json is null && torn)
                yield break;
            yield return (line, i + 1, json);
        }
    }

    static JsonDocument? Parse(string line)
    {
        try
        {
            var json = JsonDocument.Parse(line);
            if (json.RootElement.ValueKind == JsonValueKind.Object)
                return json;
            json.Dispose();
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    static string Shorten(string line) => line.Length <= 80 ? line : line[..80] + "…";
}
