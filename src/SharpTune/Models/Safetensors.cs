using System.Buffers.Binary;
using System.Text;
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
        var stream = InputFile.OpenRead(path, FileOptions.RandomAccess);
        try
        {
            var header = InputFile.Guard(path, () => ReadHeader(stream, path));
            return new SafetensorsFile(path, stream, header.DataStart, header.Entries, header.Metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The parsed, validated header of a safetensors stream.</summary>
    public sealed record Header(long DataStart, Dictionary<string, SafetensorsEntry> Entries, Dictionary<string, string> Metadata);

    /// <summary>Reads and validates the header at the start of <paramref name="stream"/> as the reference
    /// implementation does: a header of at most 100 MB holding one JSON object without duplicate names; every tensor
    /// has a known dtype, a shape of whole numbers whose byte size does not overflow, and data_offsets that tile the
    /// data section exactly (no gap, no overlap, nothing past the end). <paramref name="source"/> names it in errors.</summary>
    public static Header ReadHeader(Stream stream, string source)
    {
        long fileLength = stream.Length;
        Span<byte> lengthBytes = stackalloc byte[8];
        if (fileLength < 8 || stream.Read(lengthBytes) != 8)
            throw Bad(source, $"file is {fileLength} bytes, too short for a safetensors header");
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes)
            throw Bad(source, $"header length {headerLength} is not between 1 and {MaxHeaderBytes} bytes (not a safetensors file?)");
        if (8 + headerLength > fileLength)
            throw Bad(source, $"header length {headerLength} does not fit a file of {fileLength} bytes (truncated or not a safetensors file)");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + headerLength;
        var (entries, metadata) = ParseHeader(source, headerBytes, fileLength - dataStart);
        return new Header(dataStart, entries, metadata);
    }

    static SharpTuneException Bad(string path, string problem) => new($"{path}: {problem}");

    static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        if (header[0] != (byte)'{') throw Bad(path, "header does not start with '{' (not a safetensors file?)");
        var root = JsonFile.Parse(header, $"{path} (header)");

        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, info) in root.Properties())
        {
            if (name == "__metadata__")
            {
                foreach (var (k, v) in info.Properties()) metadata[k] = v.String();
                continue;
            }
            string shown = SharpTuneException.Quote(name);
            info.Object();
            string dtype = info["dtype"].String();
            int elementSize = DTypes.TryGetValue(dtype, out var t) ? t.Size
                : throw Bad(path, $"tensor {shown} has dtype {SharpTuneException.Quote(dtype)}, which is not supported (supported: {string.Join(", ", DTypes.Keys)})");
            long[] shape = info["shape"].Items().Select(d => d.Long()).ToArray();
            if (shape.Any(d => d < 0)) throw Bad(path, $"tensor {shown} has a negative dimension in shape [{string.Join(", ", shape)}]");
            var offsets = info["data_offsets"];
            if (offsets.Count != 2) throw offsets.Expected("[begin, end]");
            long begin = offsets[0].Long(), end = offsets[1].Long();
            if (begin < 0 || end < begin) throw Bad(path, $"tensor {shown} has data_offsets [{begin}, {end}], expected 0 <= begin <= end");
            if (end > dataLength) throw Bad(path, $"tensor {shown} data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes): the file is truncated or corrupt");
            long expected;
            try { expected = checked(shape.Aggregate(1L, (a, d) => a * d) * elementSize); }
            catch (OverflowException) { throw Bad(path, $"tensor {shown} has shape [{string.Join(", ", shape)}], whose size overflows 64 bits"); }
            if (end - begin != expected) throw Bad(path, $"tensor {shown} ({dtype}, shape [{string.Join(", ", shape)}]) needs {expected} bytes but data_offsets give {end - begin}");
            entries[name] = new SafetensorsEntry(name, dtype, shape, begin, end);
        }

        long covered = 0;
        SafetensorsEntry? previous = null;
        foreach (var e in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < covered)
                throw Bad(path, $"tensors {SharpTuneException.Quote(previous!.Name)} and {SharpTuneException.Quote(e.Name)} overlap (data_offsets [{previous.Begin}, {previous.End}] and [{e.Begin}, {e.End}])");
            if (e.Begin > covered)
                throw Bad(path, $"tensor {SharpTuneException.Quote(e.Name)} starts at {e.Begin}, leaving bytes {covered}..{e.Begin} of the data unused (corrupt offsets)");
            covered = e.End;
            previous = e;
        }
        if (covered != dataLength)
            throw Bad(path, $"the tensors cover {covered} bytes of data but the file holds {dataLength} after the header (corrupt offsets or extra bytes)");
        return (entries, metadata);
    }

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["F64"] = (ScalarType.Float64, 8), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

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
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        WriteStreamed(path, tensors.Select(t => (t.Name, DTypeName(t.Tensor.dtype), t.Tensor.shape, t.Tensor.NumberOfElements * t.Tensor.ElementSize)).ToList(),
            (stream, i) =>
            {
                using var scope = torch.NewDisposeScope();
                stream.Write(tensors[i].Tensor.detach().cpu().contiguous().bytes);
            }, metadata);

    /// <summary>Writes a safetensors file from its header entries, asking <paramref name="writeTensor"/>(stream, i) for
    /// entry i's bytes in order, so that tensors can be made one at a time (an export never holds the model);
    /// atomically: a temp file is renamed into place when complete.</summary>
    public static void WriteStreamed(string path, IReadOnlyList<(string Name, string DType, long[] Shape, long Bytes)> entries,
        Action<Stream, int> writeTensor, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, dtype, shape, bytes) in entries)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
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
            for (int i = 0; i < entries.Count; i++) writeTensor(stream, i);
        });
    }
}
