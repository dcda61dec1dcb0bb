using System.IO.Compression;
using System.Text;
using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class JsonReaderTests
{
    private static string Lines(int count) =>
        string.Concat(Enumerable.Range(0, count).Select(i => $"{{\"Question\": \"q{i}\", \"Response\": \"a{i}\"}}\n"));

    [Fact]
    public void JsonArray_ReadsObjectsWithTypesAndLocations()
    {
        using var dir = new TempDir();
        string path = dir.File("d.json", """
            [
              {"a": "x", "n": 3, "f": 1.5, "b": true, "z": null, "list": [1, "two"], "obj": {"k": "v"}},
              {"a": "comma, inside", "n": -1}
            ]
            """);
        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal("d.json:2 (row 1)", rows[0].Location);
        Assert.Equal("d.json:3 (row 2)", rows[1].Location);
        var v = rows[0].Values;
        Assert.Equal("x", v["a"]);
        Assert.Equal(3L, v["n"]);
        Assert.Equal(1.5, v["f"]);
        Assert.Equal(true, v["b"]);
        Assert.Null(v["z"]);
        Assert.Equal(new object?[] { 1L, "two" }, (IReadOnlyList<object?>)v["list"]!);
        Assert.Equal("v", ((IReadOnlyDictionary<string, object?>)v["obj"]!)["k"]);
        Assert.Equal(["a", "n", "f", "b", "z", "list", "obj"], v.Keys);
        Assert.Equal("comma, inside", rows[1].Values["a"]);
        Assert.Equal(1, rows[1].Index);
    }

    [Fact]
    public void JsonLines_SkipsBlankLinesAndNamesLines()
    {
        using var dir = new TempDir();
        string path = dir.File("d.jsonl", "{\"a\": 1}\n\n  \r\n{\"a\": 2}\r\n{\"a\": 3}");
        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal([1L, 2L, 3L], rows.Select(r => r.Values["a"]));
        Assert.Equal(["d.jsonl:1", "d.jsonl:4", "d.jsonl:5"], rows.Select(r => r.Location));
    }

    [Fact]
    public void Fixtures_WrittenByPython_ReadBack()
    {
        var expected = ExpectedRows();
        foreach (string name in new[] { "json_array.json", "json_lines.jsonl" })
        {
            var rows = DatasetReader.Read(new DatasetSource(Fixtures.Data(name))).ToList();
            Assert.Equal(expected.Count, rows.Count);
            for (int i = 0; i < expected.Count; i++)
                Assert.Equal(expected[i], rows[i].Values.ToDictionary(kv => kv.Key, kv => (string)kv.Value!));
        }
    }

    internal static List<Dictionary<string, string>> ExpectedRows() =>
        System.Text.Json.JsonSerializer.Deserialize<List<Dictionary<string, string>>>(File.ReadAllText(Fixtures.Data("rows.json")))!;

    [Theory]
    [InlineData("train[:3]", new[] { 0, 1, 2 })]
    [InlineData("train[2:4]", new[] { 2, 3 })]
    [InlineData("train[8:]", new[] { 8, 9 })]
    [InlineData("train[-2:]", new[] { 8, 9 })]
    [InlineData("train[:30%]", new[] { 0, 1, 2 })]
    [InlineData("train[90%:]", new[] { 9 })]
    [InlineData("train[5:3]", new int[0])]
    public void Slices_SelectRows(string split, int[] expected)
    {
        using var dir = new TempDir();
        string path = dir.File("d.jsonl", Lines(10));
        var rows = DatasetReader.Read(new DatasetSource(path) { Split = split }).ToList();
        Assert.Equal(expected.Select(i => $"q{i}"), rows.Select(r => (string)r.Values["Question"]!));
        Assert.Equal(expected.Select(i => (long)i), rows.Select(r => r.Index));
    }

    [Fact]
    public void Slice_StopsReadingAfterItsEnd()
    {
        // Whatever follows row 500 (here: garbage and an unclosed array) is never read.
        using var dir = new TempDir();
        string jsonl = dir.File("big.jsonl", Lines(500) + "this is not json\n" + new string('x', 1 << 20));
        Assert.Equal(500, DatasetReader.Read(new DatasetSource(jsonl) { Split = "train[:500]" }).Count());

        string array = dir.File("big.json", "[" + string.Join(",", Enumerable.Range(0, 500).Select(i => $"{{\"i\": {i}}}")) + ", {\"broken\": ");
        Assert.Equal(500, DatasetReader.Read(new DatasetSource(array) { Split = "train[:500]" }).Count());
    }

    [Fact]
    public void MalformedLine_ErrorNamesFileLineAndParserMessage()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.jsonl", "{\"a\": 1}\n{\"a\": 2,,}\n{\"a\": 3}\n");
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("bad.jsonl:2: malformed JSON: ", error.Message);
        Assert.Contains("invalid start of a property name", error.Message);
        // eval and score have no setting to skip bad rows, so a plain source names none; training's source does
        Assert.DoesNotContain("on_bad_row", error.Message);
        var hinted = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path) { SkipHint = "set on_bad_row: skip" }).ToList());
        Assert.EndsWith("(set on_bad_row: skip)", hinted.Message);
    }

    [Fact]
    public void MalformedArrayElement_ErrorNamesAbsoluteLine()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.json", "[\n{\"a\": 1},\n{\n  \"a\": tru\n}\n]");
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("bad.json:4: malformed JSON: ", error.Message);
    }

    [Fact]
    public void SkipPolicy_CountsBadRowsAndKeepsGoing()
    {
        using var dir = new TempDir();
        byte[] invalidUtf8 = [.. "{\"a\": \"x"u8, 0xC3, 0x28, .. "\"}\n"u8];
        string path = dir.Bytes("mixed.jsonl",
            [.. "{\"a\": 1}\n{oops}\n[1, 2]\n"u8, .. invalidUtf8, .. "{\"a\": 5}\n"u8]);
        var log = new BadRowLog();
        var rows = DatasetReader.Read(new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal([1L, 5L], rows.Select(r => r.Values["a"]));
        Assert.Equal(3, log.Count);
        Assert.StartsWith("mixed.jsonl:2: malformed JSON", log.Samples[0]);
        Assert.Equal("mixed.jsonl:3: expected a JSON object, found an array", log.Samples[1]);
        Assert.Equal("mixed.jsonl:4: invalid UTF-8 at byte 8 of the row (byte 0xC3)", log.Samples[2]);
    }

    [Fact]
    public void InvalidUtf8_FailsWithLocation()
    {
        using var dir = new TempDir();
        string path = dir.Bytes("bin.json", [.. "[{\"a\": \""u8, 0xFF, .. "\"}]"u8]);
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("bin.json:1 (row 1): invalid UTF-8 at byte 7", error.Message);
    }

    [Fact]
    public void TenMegabyteRow_IsReadByDefault_AndRejectedClearlyOverTheLimit()
    {
        using var dir = new TempDir();
        string big = new('z', 10 * 1024 * 1024);
        string path = dir.File("huge.jsonl", $"{{\"a\": \"small\"}}\n{{\"a\": \"{big}\"}}\n{{\"a\": \"after\"}}\n");

        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal(big, rows[1].Values["a"]);

        var limited = new DatasetSource(path) { MaxRowBytes = 1024 * 1024 };
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(limited).ToList());
        Assert.StartsWith("huge.jsonl:2: the row is 10 MiB, over the limit of 1 MiB (raise DatasetSource.MaxRowBytes", error.Message);

        var log = new BadRowLog();
        var kept = DatasetReader.Read(limited with { OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal(["small", "after"], kept.Select(r => r.Values["a"]));
        Assert.Equal(1, log.Count);
    }

    [Fact]
    public void NotJson_And_UnclosedArray_AreClearErrors()
    {
        using var dir = new TempDir();
        var notJson = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(dir.File("x.json", "hello"))).ToList());
        Assert.Equal("x.json:1: expected a JSON array of objects or JSON lines, found 'h'", notJson.Message);

        var unclosed = Assert.Throws<SharpTuneException>(() =>
            DatasetReader.Read(new DatasetSource(dir.File("y.json", "[{\"a\": 1},\n{\"a\": \"2}]"))).ToList());
        Assert.StartsWith("y.json:2 (row 2): the file ends inside this element", unclosed.Message);
    }

    [Fact]
    public void ByteOrderMark_AndGzip_AreHandled()
    {
        using var dir = new TempDir();
        string bom = dir.Bytes("bom.json", [0xEF, 0xBB, 0xBF, .. "[{\"a\": 1}]"u8]);
        Assert.Equal(1L, DatasetReader.Read(new DatasetSource(bom)).Single().Values["a"]);

        string gz = Path.Combine(dir.Path, "d.jsonl.gz");
        using (var file = File.Create(gz))
        using (var zip = new GZipStream(file, CompressionLevel.Fastest))
            zip.Write(Encoding.UTF8.GetBytes(Lines(3)));
        Assert.Equal(3, DatasetReader.Read(new DatasetSource(gz)).Count());
    }

    [Fact]
    public void ArrayScanner_AgreesWithAWholeDocumentParse_AcrossBufferBoundaries()
    {
        // Strings full of quotes, backslashes, brackets and commas, long enough to cross the 64 KiB read buffer.
        var random = new SeededRandom(9);
        string[] alphabet = ["a", "b", "\"", "\\", "[", "]", "{", "}", ",", ":", " ", "\n", "\t", "ü", "😀"];
        var values = Enumerable.Range(0, 60).Select(i =>
            string.Concat(Enumerable.Range(0, random.NextInt(i % 7 == 0 ? 40_000 : 300)).Select(_ => alphabet[random.NextInt(alphabet.Length)]))).ToList();
        var rows = values.Select((v, i) => new Dictionary<string, object> { ["text"] = v, ["nested"] = new object[] { i, new Dictionary<string, string> { ["k"] = v[..Math.Min(5, v.Length)] } } });
        using var dir = new TempDir();
        // Relaxed escaping writes quotes as \" and non-ASCII as raw UTF-8, the hard cases for the scanner.
        string path = dir.File("scan.json", System.Text.Json.JsonSerializer.Serialize(rows, new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));

        var read = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal(values, read.Select(r => (string)r.Values["text"]!));
        Assert.Equal(59L, ((IReadOnlyList<object?>)read[59].Values["nested"]!)[0]);
    }

    [Fact]
    public void StrayClosingBraceInAnArray_IsAMalformedRow()
    {
        using var dir = new TempDir();
        string path = dir.File("stray.json", "[{\"a\": 1}}, {\"a\": 2}]");
        var log = new BadRowLog();
        var rows = DatasetReader.Read(new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal([2L], rows.Select(r => r.Values["a"]));
        Assert.StartsWith("stray.json:1: malformed JSON", log.Samples.Single());
    }

    [Fact]
    public void CountRows_CountsWithoutParsing()
    {
        using var dir = new TempDir();
        // The malformed last line is a row too (it counts for slicing); the slice does not change the count.
        Assert.Equal(8, DatasetReader.CountRows(new DatasetSource(dir.File("d.jsonl", Lines(7) + "{bad}\n")) { Split = "train[:2]" }));
    }
}
