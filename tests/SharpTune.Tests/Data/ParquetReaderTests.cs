using Parquet;
using Parquet.Schema;
using Parquet.Serialization;
using SharpTune.Data;
using SharpTune.Tokenization;
using Xunit;

namespace SharpTune.Tests.Data;

public class ParquetReaderTests
{
    internal static void WriteParquet(string path, ParquetSchema schema, IReadOnlyList<Dictionary<string, object?>> rows, int rowGroupSize)
    {
        using var file = File.Create(path);
        ParquetSerializer.SerializeUntypedAsync(rows.Cast<IDictionary<string, object?>>().ToList(), schema, file,
            new ParquetOptions { RowGroupSize = rowGroupSize }).GetAwaiter().GetResult();
    }

    internal static string WriteMedical(TempDir dir, string relative, int count, int rowGroupSize = 3)
    {
        var schema = new ParquetSchema(new DataField<string>("Question"), new DataField<string>("Complex_CoT"), new DataField<string>("Response"));
        var rows = Enumerable.Range(0, count).Select(i => new Dictionary<string, object?>
        {
            ["Question"] = $"q{i}", ["Complex_CoT"] = i == 1 ? null : $"r{i}", ["Response"] = $"a{i}",
        }).ToList();
        string path = Path.Combine(dir.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        WriteParquet(path, schema, rows, rowGroupSize);
        return path;
    }

    [Fact]
    public void RowGroups_AreReadInOrder_WithNullsAndSlices()
    {
        using var dir = new TempDir();
        string path = WriteMedical(dir, "m.parquet", 8, rowGroupSize: 3);
        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal(Enumerable.Range(0, 8).Select(i => $"q{i}"), rows.Select(r => r.Values["Question"]));
        Assert.Null(rows[1].Values["Complex_CoT"]);
        Assert.Equal(["Question", "Complex_CoT", "Response"], rows[1].Values.Keys);
        Assert.Equal("m.parquet row 5", rows[4].Location);

        Assert.Equal(["q2", "q3", "q4"], DatasetReader.Read(new DatasetSource(path) { Split = "train[2:5]" }).Select(r => r.Values["Question"]));
        Assert.Equal(["q7"], DatasetReader.Read(new DatasetSource(path) { Split = "train[-1:]" }).Select(r => r.Values["Question"]));
        Assert.Equal(8, DatasetReader.CountRows(new DatasetSource(path)));
    }

    [Fact]
    public void ListOfStructColumn_BecomesMessages()
    {
        using var dir = new TempDir();
        var schema = new ParquetSchema(new ListField("messages",
            new StructField("element", new DataField<string>("role"), new DataField<string>("content"))));
        var rows = new List<Dictionary<string, object?>>
        {
            new()
            {
                ["messages"] = new List<Dictionary<string, object?>>
                {
                    new() { ["role"] = "user", ["content"] = "hi" },
                    new() { ["role"] = "assistant", ["content"] = "hello" },
                },
            },
        };
        string path = Path.Combine(dir.Path, "chat.parquet");
        WriteParquet(path, schema, rows, 10);
        var example = DatasetReader.ReadExamples(new DatasetSource(path)).Single();
        Assert.Equal([new ChatMessage("user", "hi"), new ChatMessage("assistant", "hello")], example.Messages);
    }

    [Fact]
    public void PyarrowFixtures_ReadAsPyarrowReadsThem()
    {
        // medical.parquet: row groups of 2, snappy, nulls in strings and bools, int64 beyond 32 bits;
        // chat.parquet: list<struct<role: string, content: large_string>> with zstd, and an empty list.
        using var expectedJson = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixtures.Data("parquet_expected.json")));
        foreach (string name in new[] { "medical", "chat" })
        {
            var expected = expectedJson.RootElement.GetProperty(name).EnumerateArray().Select(RowValuesFromJson).ToList();
            var rows = DatasetReader.Read(new DatasetSource(Fixtures.Data($"{name}.parquet"))).ToList();
            Assert.Equal(expected.Count, rows.Count);
            for (int i = 0; i < rows.Count; i++)
                Assert.Equal(Canonical(expected[i]), Canonical(rows[i].Values));
        }
    }

    private static IReadOnlyDictionary<string, object?> RowValuesFromJson(System.Text.Json.JsonElement e) =>
        (IReadOnlyDictionary<string, object?>)FromJson(e)!;

    private static object? FromJson(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value)),
        System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        System.Text.Json.JsonValueKind.String => e.GetString(),
        System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out long l) ? l : e.GetDouble(),
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        _ => null,
    };

    /// <summary>A text form that compares nested values regardless of the collection types.</summary>
    private static string Canonical(object? value) => value switch
    {
        null => "null",
        string s => System.Text.Json.JsonSerializer.Serialize(s),
        IReadOnlyDictionary<string, object?> map => "{" + string.Join(",", map.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}:{Canonical(kv.Value)}")) + "}",
        IDictionary<string, object?> map => "{" + string.Join(",", map.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}:{Canonical(kv.Value)}")) + "}",
        System.Collections.IEnumerable items => "[" + string.Join(",", items.Cast<object?>().Select(Canonical)) + "]",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)!,
    };

    [Fact]
    public void DamagedFile_IsAClearError()
    {
        using var dir = new TempDir();
        string path = dir.Bytes("broken.parquet", "PAR1 this is not a parquet file"u8.ToArray());
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("broken.parquet: cannot read the Parquet file: ", error.Message);
    }
}
