using System.IO.Compression;

namespace SharpTune.Data;

internal enum DataFileKind
{
    /// <summary>A JSON array of objects or JSON lines; which one is decided from the first character.</summary>
    Json,
    Csv,
    Tsv,
    Parquet,
}

/// <summary>One data file of a split: its name for messages, how to open it, and an identity for cache keys.</summary>
internal sealed record DataFile(string Name, DataFileKind Kind, Func<Stream> Open, string Identity)
{
    private static readonly (string Suffix, DataFileKind Kind)[] Suffixes =
    [
        (".jsonl", DataFileKind.Json), (".ndjson", DataFileKind.Json), (".json", DataFileKind.Json),
        (".csv", DataFileKind.Csv), (".tsv", DataFileKind.Tsv), (".parquet", DataFileKind.Parquet),
    ];

    public static string SupportedExtensions => ".json, .jsonl, .ndjson, .csv, .tsv, .parquet (text formats also as .gz)";

    /// <summary>The kind of a file from its name, or null when it is not a data file we read.</summary>
    public static DataFileKind? KindOf(string fileName)
    {
        string name = fileName.ToLowerInvariant();
        bool gz = name.EndsWith(".gz");
        if (gz)
            name = name[..^3];
        foreach (var (suffix, kind) in Suffixes)
        {
            if (name.EndsWith(suffix))
                return gz && kind == DataFileKind.Parquet ? null : kind;
        }
        return null;
    }

    /// <summary>A file on disk; <paramref name="displayName"/> is the name used in messages.</summary>
    public static DataFile FromPath(string path, string displayName)
    {
        var info = new FileInfo(path);
        var kind = KindOf(info.Name)
            ?? throw new SharpTuneException($"{path}: not a supported data file (expected {SupportedExtensions})");
        bool gz = info.Name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);
        // A Hugging Face cache snapshot links its files to blobs: identify the file by what the link points to.
        var target = info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
        if (!target.Exists)
            throw new SharpTuneException($"{path}: the file links to {target.FullName}, which is missing (an incomplete download?)");
        string identity = $"{target.FullName}|{target.Length}|{target.LastWriteTimeUtc.Ticks}";
        return new DataFile(displayName, kind, () => OpenFile(info.FullName, displayName, gz), identity);
    }

    private static Stream OpenFile(string path, string name, bool gz)
    {
        Stream stream = InputFile.Guard(path, () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16));
        return new NamedReadStream(gz ? new GZipStream(stream, CompressionMode.Decompress) : stream, name);
    }
}

/// <summary>A read-only stream whose read errors (a corrupt .gz, a disk error, a bad byte order mark) become one
/// <see cref="SharpTuneException"/> naming the file, whichever reader was using it.</summary>
internal sealed class NamedReadStream(Stream inner, string name) : ReadOnlyWrapperStream(inner)
{
    public override int Read(Span<byte> buffer)
    {
        try
        {
            return Inner.Read(buffer);
        }
        catch (Exception e) when (Describe(e) is { } problem)
        {
            throw new SharpTuneException($"{name}: {problem}", e);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        try
        {
            return await Inner.ReadAsync(buffer, ct);
        }
        catch (Exception e) when (Describe(e) is { } problem)
        {
            throw new SharpTuneException($"{name}: {problem}", e);
        }
    }

    public override long Seek(long offset, SeekOrigin origin) => Guard(() => Inner.Seek(offset, origin));

    T Guard<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (Describe(e) is { } problem)
        {
            throw new SharpTuneException($"{name}: {problem}", e);
        }
    }

    static string? Describe(Exception e) => e switch
    {
        InvalidDataException => $"corrupt compressed data ({ErrorText.OneLine(e.Message, 120)})",
        _ => InputFile.Describe(e),
    };
}

/// <summary>A record found in a data file, parsed only when <see cref="Parse"/> is called so that rows before a
/// slice's start cost no parsing. Parse throws <see cref="BadRowException"/> for a bad row.</summary>
internal readonly record struct RawRecord(string Location, Func<IReadOnlyDictionary<string, object?>> Parse);

/// <summary>Buffered byte-at-a-time reading with a 1-based line counter, for the JSON and CSV scanners.</summary>
internal sealed class ByteReader(Stream stream)
{
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _position;
    private int _length;

    /// <summary>Line of the next byte to be read.</summary>
    public long Line { get; private set; } = 1;

    public int Peek()
    {
        if (_position == _length && !Fill())
            return -1;
        return _buffer[_position];
    }

    public int Read()
    {
        if (_position == _length && !Fill())
            return -1;
        byte b = _buffer[_position++];
        if (b == (byte)'\n')
            Line++;
        return b;
    }

    /// <summary>The bytes read from the stream but not yet consumed (refilled when empty; empty at the end).</summary>
    public ReadOnlySpan<byte> Buffered
    {
        get
        {
            if (_position == _length)
                Fill();
            return _buffer.AsSpan(_position, _length - _position);
        }
    }

    /// <summary>Consumes <paramref name="count"/> bytes of <see cref="Buffered"/>.</summary>
    public void Skip(int count)
    {
        Line += _buffer.AsSpan(_position, count).Count((byte)'\n');
        _position += count;
    }

    /// <summary>Skips a UTF-8 byte order mark at the start of the file.</summary>
    public void SkipByteOrderMark(string fileName)
    {
        if (Peek() != 0xEF)
            return;
        Read();
        if (Read() != 0xBB || Read() != 0xBF)
            throw new SharpTuneException($"{fileName}: the file starts with an incomplete UTF-8 byte order mark");
    }

    private bool Fill()
    {
        _length = stream.Read(_buffer, 0, _buffer.Length);
        _position = 0;
        return _length > 0;
    }
}

/// <summary>A growable byte buffer that stops storing past a limit but keeps counting, so that an oversized row
/// can be reported with its size and skipped while the scanner goes on to the next row.</summary>
internal sealed class RowBuffer(int limit)
{
    private byte[] _bytes = new byte[4096];

    public int Count { get; private set; }
    public long TotalBytes { get; private set; }
    public bool Overflowed => TotalBytes > limit;

    public void Add(byte b)
    {
        TotalBytes++;
        if (TotalBytes > limit)
            return;
        if (Count == _bytes.Length)
            Array.Resize(ref _bytes, (int)Math.Min((long)_bytes.Length * 2, Array.MaxLength));
        _bytes[Count++] = b;
    }

    public void AddRange(ReadOnlySpan<byte> bytes)
    {
        long total = TotalBytes + bytes.Length;
        int room = (int)Math.Clamp(limit - TotalBytes, 0, bytes.Length);
        if (room > 0)
        {
            if (Count + room > _bytes.Length)
                Array.Resize(ref _bytes, (int)Math.Min(Math.Max((long)_bytes.Length * 2, Count + room), Array.MaxLength));
            bytes[..room].CopyTo(_bytes.AsSpan(Count));
            Count += room;
        }
        TotalBytes = total;
    }

    public void Clear()
    {
        Count = 0;
        TotalBytes = 0;
    }

    public byte[] ToArray() => _bytes.AsSpan(0, Count).ToArray();

    public string OversizeMessage(string location) =>
        $"{location}: the row is {FormatBytes(TotalBytes)}, over the limit of {FormatBytes(limit)} " +
        $"(raise DatasetSource.MaxRowBytes to read it)";

    internal static string FormatBytes(long bytes) =>
        bytes >= 1 << 20 ? $"{bytes / (double)(1 << 20):0.#} MiB" : bytes >= 1024 ? $"{bytes / 1024.0:0.#} KiB" : $"{bytes} bytes";
}
