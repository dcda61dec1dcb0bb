using SharpTune.Data;

namespace SharpTune.Tests.Data;

/// <summary>The guards of the stream that Parquet.Net reads through: the end of the file is an error for its
/// byte-by-byte Thrift reads, and a pass may not read the file over and over.</summary>
public class ParquetInputTests
{
    [Fact]
    public void A_byte_read_at_the_end_fails_by_name()
    {
        using var input = new ParquetInput(new MemoryStream([1, 2]), "pages.parquet");
        input.BeginPass();
        Assert.Equal(1, input.ReadByte());
        Assert.Equal(2, input.ReadByte());
        var e = Assert.Throws<SharpTuneException>(() => input.ReadByte());
        Assert.Equal("pages.parquet: cannot read the Parquet file: it is damaged (a page header runs past the end of the file)", e.Message);
    }

    [Fact]
    public void Reading_the_same_bytes_over_and_over_stops_at_the_budget()
    {
        var bytes = new byte[1000];
        using var input = new ParquetInput(new MemoryStream(bytes), "loop.parquet");
        input.BeginPass();
        var buffer = new byte[1000];
        long read = 0;
        void ReadForever()
        {
            while (true)
            {
                input.Position = 0;   // a page offset pointing back
                read += input.Read(buffer, 0, buffer.Length);
            }
        }
        var e = Assert.Throws<SharpTuneException>(ReadForever);
        Assert.Contains("go over the same data again and again", e.Message);
        Assert.Equal(4 * 1000 + (1 << 20), read, tolerance: 1000);   // the budget: four times the file plus 1 MiB

        input.BeginPass();   // a new pass starts with a fresh budget
        Assert.Equal(1000, input.Read(buffer, 0, buffer.Length));
    }
}
