namespace SharpTune.Data;

/// <summary>
/// The stream Parquet.Net reads a file through, with two guards against damaged files that would otherwise never
/// finish, found by fuzzing Parquet.Net's readers:
/// - a one-byte read at the end of the file fails: Parquet.Net's Thrift reader (page headers are read byte by byte
///   from the file) takes the -1 that marks the end for a continuation byte and reads on forever;
/// - each pass over the file may read at most a few times the file's size: a page size or offset that points back
///   makes Parquet.Net read the same pages again and again.
/// </summary>
internal sealed class ParquetInput(Stream inner, string name) : ReadOnlyWrapperStream(inner)
{
    private long _budget;

    /// <summary>Starts a pass over the file (one reader's work) at its beginning, with a fresh read budget: a pass
    /// reads the footer and at most every page once, so four times the file is plenty.</summary>
    public void BeginPass()
    {
        Inner.Position = 0;
        _budget = 4 * Inner.Length + (1 << 20);
    }

    public override int ReadByte()
    {
        int value = Inner.ReadByte();
        if (value < 0)
            throw Corrupt("a page header runs past the end of the file");
        Spend(1);
        return value;
    }

    public override int Read(Span<byte> buffer) => Spend(Inner.Read(buffer));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) =>
        Spend(await Inner.ReadAsync(buffer, ct));

    private int Spend(int bytes)
    {
        _budget -= bytes;
        if (_budget < 0)
            throw Corrupt("its page offsets or sizes make the reader go over the same data again and again");
        return bytes;
    }

    private SharpTuneException Corrupt(string what) => new($"{name}: cannot read the Parquet file: it is damaged ({what})");
}
