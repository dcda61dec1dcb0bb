using System.Reflection;
using SharpTune.Data;

namespace SharpTune.Tests.Data;

/// <summary>
/// <see cref="ParquetFooter"/> against Parquet.Net's own metadata reader (internal, reached by reflection): every
/// footer the check accepts, Parquet.Net must read without going past its end, where its varint reader would loop
/// forever. Changed footers come from the sample file's footer with field headers, lengths and counts altered, the
/// kind of change that once got through a walk that trusted the wire types.
/// </summary>
public class ParquetFooterTests
{
    static readonly Assembly ParquetNet = typeof(Parquet.ParquetReader).Assembly;
    static readonly MethodInfo ReadFileMetaData = ParquetNet.GetType("Parquet.Meta.FileMetaData", throwOnError: true)!
        .GetMethod("Read", BindingFlags.NonPublic | BindingFlags.Static)!;
    static readonly Type ThriftReader = ParquetNet.GetType("Parquet.Meta.Proto.ThriftCompactProtocolReader", throwOnError: true)!;

    static byte[] SampleFooter()
    {
        byte[] file = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fuzz", "corpus", "parquet", "chat.parquet"));
        int length = BitConverter.ToInt32(file, file.Length - 8);
        return file[(file.Length - 8 - length)..^8];
    }

    /// <summary>Runs Parquet.Net's reader over the footer; false when it tried to read past the end.</summary>
    static bool ParquetNetStaysInside(byte[] footer)
    {
        using var stream = new EndCheckedStream(footer);
        try
        {
            ReadFileMetaData.Invoke(null, [Activator.CreateInstance(ThriftReader, [stream])]);
        }
        catch (TargetInvocationException e) when (e.InnerException is PastTheEnd)
        {
            return false;
        }
        catch (TargetInvocationException)
        {
            // Parquet.Net refusing the footer with an exception of its own is a clean stop
        }
        return true;
    }

    static bool Accepted(byte[] footer)
    {
        try
        {
            ParquetFooter.Check(footer, "x.parquet");
            return true;
        }
        catch (SharpTuneException e)
        {
            Assert.StartsWith("x.parquet: cannot read the Parquet file: its footer metadata is corrupt (", e.Message);
            return false;
        }
    }

    [Fact]
    public void The_sample_footer_is_accepted_and_read_inside()
    {
        byte[] footer = SampleFooter();
        Assert.True(Accepted(footer));
        Assert.True(ParquetNetStaysInside(footer));
        Assert.False(ParquetNetStaysInside(footer[..^1]));   // the probe itself can fail
    }

    /// <summary>A fixed seed and 20,000 cases unless SHARPTUNE_FUZZ_SEED / SHARPTUNE_FUZZ_CASES ask for a longer hunt
    /// (docs/reliability.md).</summary>
    [Fact]
    public void Every_accepted_changed_footer_is_read_by_Parquet_Net_inside_its_bytes()
    {
        byte[] valid = SampleFooter();
        int seed = int.TryParse(Environment.GetEnvironmentVariable("SHARPTUNE_FUZZ_SEED"), out int s) ? s : 20261130;
        int cases = int.TryParse(Environment.GetEnvironmentVariable("SHARPTUNE_FUZZ_CASES"), out int n) ? n : 20_000;
        var random = new Random(seed);
        int accepted = 0, overruns = 0;
        var escaped = new List<string>();
        for (int i = 0; i < cases; i++)
        {
            var footer = valid.ToArray();
            for (int change = random.Next(1, 4); change > 0; change--)
            {
                // a field header (delta 1-3, any type), or any byte
                footer[random.Next(footer.Length)] = random.Next(2) == 0
                    ? (byte)((random.Next(1, 4) << 4) | random.Next(1, 14))
                    : (byte)random.Next(256);
            }
            bool inside = ParquetNetStaysInside(footer);
            if (!inside) overruns++;
            if (Accepted(footer))
            {
                accepted++;
                if (!inside) escaped.Add(Convert.ToHexString(footer));
            }
        }
        Assert.Empty(escaped);
        // not vacuous: many changed footers pass the check, and many would have overrun
        // (with the fixed seed: 14,233 accepted, 814 that Parquet.Net reads past the end, all refused)
        Assert.InRange(accepted, cases / 4, cases);
        Assert.InRange(overruns, cases / 100, cases);
    }

    [Fact]
    public void A_field_whose_wire_type_was_changed_is_read_by_its_id()
    {
        // FileMetaData { 1: version i32 = 1 } then STOP, but the header claims a list (type 9) for field 1: Parquet.Net
        // reads an i32 for field 1 whatever the wire says, so this is a valid footer to it
        Assert.True(Accepted([0x19, 0x02, 0x00]));
        Assert.True(ParquetNetStaysInside([0x19, 0x02, 0x00]));
        // field 2 (schema, a list of structs) with an i32 on the wire: the "i32" 0x2c is read as a list header (two
        // elements), the STOP as the first SchemaElement, and the second has no bytes left
        Assert.False(Accepted([0x25, 0x2c, 0x00]));
        Assert.False(ParquetNetStaysInside([0x25, 0x2c, 0x00]));
    }

    sealed class PastTheEnd : Exception;

    /// <summary>A memory stream that throws where Parquet.Net would read past the end (instead of the -1 it takes for a
    /// continuation byte).</summary>
    sealed class EndCheckedStream(byte[] bytes) : MemoryStream(bytes, writable: false)
    {
        public override int ReadByte() => Position < Length ? base.ReadByte() : throw new PastTheEnd();

        public override int Read(byte[] buffer, int offset, int count) =>
            count > 0 && Position >= Length ? throw new PastTheEnd() : base.Read(buffer, offset, count);
    }
}
