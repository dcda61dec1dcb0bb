using System.Text;

namespace SharpTune.Export;

/// <summary>ggml tensor types that we write ourselves (llama.cpp's numbering); K-quants come from llama.cpp's quantizer.</summary>
public enum GgmlType : uint { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 }

/// <summary>A metadata value type of the GGUF format.</summary>
enum GgufValueType : uint { UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12 }

/// <summary>One tensor to write: its GGUF name, its shape as PyTorch lists it (outermost first), its type, and a
/// function that writes exactly <see cref="Bytes"/> bytes of data when the writer reaches it.</summary>
public sealed record GgufTensor(string Name, long[] Shape, GgmlType Type, Action<Stream> WriteData)
{
    public long Bytes => GgufWriter.ByteSize(Type, Shape);
}

/// <summary>
/// Writes a GGUF v3 file (the format llama.cpp reads): magic, version, counts, metadata key/values, tensor infos
/// (dimensions innermost first, as ggml's ne), then the tensors' data, each aligned to 32 bytes. The header is
/// written first from the tensors' declared shapes, then each tensor's data is produced and written in turn, so
/// that only one tensor is in memory at a time. The file appears under its name only when complete.
/// </summary>
public sealed class GgufWriter
{
    public const int Alignment = 32;
    readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    readonly List<GgufTensor> _tensors = [];

    public void Add(string key, string value) => _metadata.Add((key, GgufValueType.String, value));
    public void Add(string key, uint value) => _metadata.Add((key, GgufValueType.UInt32, value));
    public void Add(string key, int value) => _metadata.Add((key, GgufValueType.Int32, value));
    public void Add(string key, float value) => _metadata.Add((key, GgufValueType.Float32, value));
    public void Add(string key, bool value) => _metadata.Add((key, GgufValueType.Bool, value));
    public void Add(string key, IReadOnlyList<string> values) => _metadata.Add((key, GgufValueType.Array, (GgufValueType.String, (object)values)));
    public void Add(string key, IReadOnlyList<int> values) => _metadata.Add((key, GgufValueType.Array, (GgufValueType.Int32, (object)values)));

    public void AddTensor(GgufTensor tensor)
    {
        if (_tensors.Any(t => t.Name == tensor.Name)) throw new InvalidOperationException($"tensor {tensor.Name} added twice");
        _tensors.Add(tensor);
    }

    public IReadOnlyList<GgufTensor> Tensors => _tensors;

    /// <summary>Bytes of a tensor's data: Q8_0 stores blocks of 32 values as an f16 scale and 32 int8.</summary>
    public static long ByteSize(GgmlType type, long[] shape)
    {
        long n = shape.Aggregate(1L, (a, d) => a * d);
        return type switch
        {
            GgmlType.F32 => n * 4,
            GgmlType.F16 or GgmlType.BF16 => n * 2,
            GgmlType.Q8_0 => n / 32 * 34,
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
    }

    /// <summary>Writes the file atomically; <paramref name="progress"/> gets (tensors done, tensors total).</summary>
    public void Write(string path, Action<int, int>? progress = null) => AtomicFile.Write(path, stream =>
    {
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write(0x46554747u);            // "GGUF"
        w.Write(3u);                     // version
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, type, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)type);
            WriteValue(w, type, value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Shape.Length);
            for (int d = t.Shape.Length - 1; d >= 0; d--) w.Write((ulong)t.Shape[d]);   // ggml's ne: innermost first
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset = Align(offset + t.Bytes);
        }
        w.Flush();
        Pad(stream);
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            long start = stream.Position;
            t.WriteData(stream);
            long written = stream.Position - start;
            if (written != t.Bytes) throw new InvalidOperationException($"tensor {t.Name}: wrote {written} bytes, expected {t.Bytes}");
            Pad(stream);
            progress?.Invoke(i + 1, _tensors.Count);
        }
    });

    static long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;

    static void Pad(Stream s)
    {
        long pad = Align(s.Position) - s.Position;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.Array:
                var (elementType, items) = ((GgufValueType, object))value;
                w.Write((uint)elementType);
                if (items is IReadOnlyList<string> strings)
                {
                    w.Write((ulong)strings.Count);
                    foreach (var s in strings) WriteString(w, s);
                }
                else
                {
                    var ints = (IReadOnlyList<int>)items;
                    w.Write((ulong)ints.Count);
                    foreach (var i in ints) w.Write(i);
                }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Little-endian is what GGUF and BinaryWriter use; a big-endian host would need byte swaps.</summary>
    static GgufWriter() { if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("GGUF writing needs a little-endian machine"); }
}
