using System.Text;
using CsCheck;
using SharpTune.Fuzz;
using SharpTune.Models;

namespace SharpTune.Tests.Reliability;

/// <summary>The coverage-guided fuzzers' seed corpora and every input they ever found a fault with
/// (fuzz/corpus, fuzz/regressions), replayed through the same harnesses: each must load or fail with a
/// one-line <see cref="SharpTuneException"/>. Plus a few CsCheck properties where random input fits.</summary>
public class FuzzCorpusTests
{
    static string FuzzDir => Path.Combine(AppContext.BaseDirectory, "Fuzz");

    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (string set in new[] { "corpus", "regressions" })
        {
            string dir = Path.Combine(FuzzDir, set);
            if (!Directory.Exists(dir)) continue;
            foreach (string targetDir in Directory.GetDirectories(dir).Order(StringComparer.Ordinal))
                foreach (string file in Directory.GetFiles(targetDir).Order(StringComparer.Ordinal))
                    data.Add(Path.GetFileName(targetDir), Path.GetRelativePath(FuzzDir, file));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Replays_without_a_fault(string target, string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(FuzzDir, file));
        FuzzTargets.Run(target, input);   // anything but a one-line SharpTuneException escapes and fails the test
    }

    [Fact]
    public void Every_target_has_seeds()
    {
        var targets = Inputs().Select(row => (string)row[0]).ToHashSet();
        Assert.Superset(FuzzTargets.All.Keys.ToHashSet(), targets);
        Assert.Subset(targets, FuzzTargets.All.Keys.ToHashSet());
    }

    static readonly byte[] ValidSafetensors = SafetensorsBytes("""{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}""", 22);

    internal static byte[] SafetensorsBytes(string header, int dataBytes)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), (long)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }

    [Fact]
    public void Safetensors_byte_flips_and_truncations_fail_cleanly() =>
        Gen.Select(Gen.Int[0, ValidSafetensors.Length - 1], Gen.Byte, Gen.Int[0, ValidSafetensors.Length]).Sample((at, value, length) =>
        {
            var bytes = ValidSafetensors.ToArray();
            bytes[at] = value;
            FuzzTargets.Run("safetensors", bytes[..length]);
        }, iter: 2000);

    /// <summary>Byte changes anywhere in a small Parquet file, the footer metadata included (where a wrong list
    /// count, and later a changed field type, sent Parquet.Net's Thrift reader into an endless loop). A fixed seed, so
    /// that every run gives the same verdict; ParquetFooterTests checks the footer against Parquet.Net's own reader.</summary>
    [Fact]
    public void Parquet_byte_changes_fail_cleanly()
    {
        byte[] valid = File.ReadAllBytes(Path.Combine(FuzzDir, "corpus", "parquet", "chat.parquet"));
        var random = new Random(20261130);
        for (int i = 0; i < 300; i++)
        {
            var bytes = valid.ToArray();
            bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            FuzzTargets.Run("parquet", bytes);
        }
    }

    [Fact]
    public void Random_bytes_as_config_json_fail_cleanly() =>
        Gen.Byte.Array[0, 64].Sample(bytes => FuzzTargets.Run("json", bytes), iter: 2000);

    [Fact]
    public void Quoted_values_are_one_short_line() =>
        Gen.String.Sample(text =>
        {
            string quoted = SharpTuneException.Quote(text);
            Assert.DoesNotContain('\n', quoted);
            Assert.DoesNotContain('\r', quoted);
            Assert.True(quoted.Length <= 80 + 40, $"{quoted.Length} characters");
            Assert.DoesNotContain(quoted, c => char.IsControl(c));
        }, iter: 2000);
}
