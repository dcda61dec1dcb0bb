using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// Reads a .safetensors file (8-byte little-endian header length, JSON header, raw little-endian data)
/// one tensor at a time, straight from the file into the tensor's memory: a checkpoint is never held
/// twice in RAM. The header is validated up front, so a truncated or inconsistent file fails before any
/// tensor is made.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    const long MaxHeaderBytes = 100_000_000;   // the format's own limit
    readonly FileStream _stream;
    readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path, FileStream stream, long dataStart, Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path; _stream = stream; _dataStart = dataStart; Entries = entries; Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: file not found");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        try
        {
            long fileLength = stream.Length;
            Span<byte> lengthBytes = stackalloc byte[8];
            if (fileLength < 8 || stream.Read(lengthBytes) != 8)
                throw Bad(path, $"file is {fileLength} bytes, too short for a safetensors header");
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > fileLength)
                throw Bad(path, $"header length {headerLength} does not fit a file of {fileLength} bytes (truncated or not a safetensors file)");
            var headerBytes = new byte[headerLength];
            stream.ReadExactly(headerBytes);
            long dataStart = 8 + headerLength;
            var (entries, metadata) = ParseHeader(path, headerBytes, fileLength - dataStart);
            return new SafetensorsFile(path, stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    static SharpTuneException Bad(string path, string problem) => new($"{path}: {problem}");

    static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(header) as JsonObject ?? throw Bad(path, "header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad(path, $"header is not valid JSON ({e.Message})");
        }

        var entries = new Dictionary<string, SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v?.ToString() ?? "";
                continue;
            }
            if (node is not JsonObject info || info["dtype"] is not JsonValue dtypeNode || info["shape"] is not JsonArray shapeNode
                || info["data_offsets"] is not JsonArray offsets || offsets.Count != 2)
                throw Bad(path, $"tensor '{name}' needs dtype, shape and data_offsets [begin, end]");
            string dtype = dtypeNode.ToString();
            long[] shape = shapeNode.Select(d => d?.GetValue<long>() ?? -1).ToArray();
            long begin = offsets[0]!.GetValue<long>(), end = offsets[1]!.GetValue<long>();
            if (shape.Any(d => d < 0)) throw Bad(path, $"tensor '{name}' has a negative dimension in shape [{string.Join(", ", shape)}]");
            if (begin < 0 || end < begin) throw Bad(path, $"tensor '{name}' has data_offsets [{begin}, {end}], expected 0 <= begin <= end");
            if (end > dataLength) throw Bad(path, $"tensor '{name}' data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes): the file is truncated or corrupt");
            long expected = shape.Aggregate(1L, (a, d) => a * d) * ElementSize(path, name, dtype);
            if (end - begin != expected) throw Bad(path, $"tensor '{name}' ({dtype}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but data_offsets give {end - begin}");
            entries[name] = new SafetensorsEntry(name, dtype, shape, begin, end);
        }

        var sorted = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw Bad(path, $"tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap (data_offsets [{sorted[i - 1].Begin}, {sorted[i - 1].End}] and [{sorted[i].Begin}, {sorted[i].End}])");
        return (entries, metadata);
    }

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["F64"] = (ScalarType.Float64, 8), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    static int ElementSize(string path, string name, string dtype) => DTypes.TryGetValue(dtype, out var t) ? t.Size
        : throw Bad(path, $"tensor '{name}' has dtype {dtype}, which is not supported (supported: {string.Join(", ", DTypes.Keys)})");

    public static string DTypeName(ScalarType type) =>
        DTypes.FirstOrDefault(kv => kv.Value.Type == type).Key ?? throw new SharpTuneException($"dtype {type} cannot be stored in safetensors");

    public static ScalarType ScalarTypeOf(string dtype) => DTypes[dtype].Type;

    /// <summary>Reads one tensor into a new CPU tensor of the file's dtype.</summary>
    public Tensor Read(string name)
    {
        if (!Entries.TryGetValue(name, out var e)) throw Bad(Path, $"no tensor named '{name}'");
        var t = torch.empty(e.Shape, DTypes[e.DType].Type);
        try
        {
            var span = t.bytes;   // the tensor's own memory, for a contiguous CPU tensor
            _stream.Position = _dataStart + e.Begin;
            _stream.ReadExactly(span);
            return t;
        }
        catch (EndOfStreamException)
        {
            t.Dispose();
            throw Bad(Path, $"file ended while reading tensor '{name}' (truncated?)");
        }
    }

    public void Dispose() => _stream.Dispose();

    /// <summary>Writes tensors (any device; copied to the CPU one at a time) to <paramref name="path"/>
    /// atomically: a temp file is renamed into place when complete.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            long bytes = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;   // data starts 8-byte aligned, padded with spaces as HF does

        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, padded);
            stream.Write(len);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var (_, t) in tensors)
            {
                using var scope = torch.NewDisposeScope();
                var cpu = t.detach().cpu().contiguous();
                stream.Write(cpu.bytes);
            }
        });
    }
}
