using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class CsvReaderTests
{
    [Theory]
    [InlineData("csv_minimal.csv")]
    [InlineData("csv_all.csv")]
    [InlineData("tsv_minimal.tsv")]
    public void Fixtures_WrittenByPythonCsv_ReadBackExactly(string name)
    {
        // Quoted commas, doubled quotes, line breaks (LF and CRLF) inside fields, tabs, non-ASCII, empty fields.
        var expected = JsonReaderTests.ExpectedRows();
        var rows = DatasetReader.Read(new DatasetSource(Fixtures.Data(name))).ToList();
        Assert.Equal(expected.Count, rows.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.Equal(expected[i], rows[i].Values.ToDictionary(kv => kv.Key, kv => (string)kv.Value!));
    }

    [Fact]
    public void MultiLineField_RowLocationIsItsFirstLine()
    {
        using var dir = new TempDir();
        string path = dir.File("d.csv", "a,b\n\"one\ntwo\nthree\",x\n\nlast,y\n");
        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal("one\ntwo\nthree", rows[0].Values["a"]);
        Assert.Equal(["d.csv:2 (row 1)", "d.csv:6 (row 2)"], rows.Select(r => r.Location));
    }

    [Fact]
    public void WrongFieldCount_IsABadRowNamingTheHeader()
    {
        using var dir = new TempDir();
        string path = dir.File("d.csv", "Question,Response\nq1,a1\nq2,a2,extra\nq3,a3\n");
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("d.csv:3 (row 2): expected 2 fields as in the header (Question, Response), found 3", error.Message);

        var log = new BadRowLog();
        var rows = DatasetReader.Read(new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal(["q1", "q3"], rows.Select(r => r.Values["Question"]));
        Assert.Equal(1, log.Count);
    }

    [Fact]
    public void InvalidUtf8InOneField_SkipsOnlyThatRow()
    {
        using var dir = new TempDir();
        string path = dir.Bytes("d.csv", [.. "a,b\nok,1\nbad,\""u8, 0xE2, 0x28, 0xA1, .. "\"\nfine,3\n"u8]);
        var log = new BadRowLog();
        var rows = DatasetReader.Read(new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal(["ok", "fine"], rows.Select(r => r.Values["a"]));
        Assert.Equal("d.csv:3 (row 2) column 'b': invalid UTF-8 at byte 0 of the row (byte 0xE2)", log.Samples.Single());
    }

    [Fact]
    public void UnclosedQuote_IsReported()
    {
        using var dir = new TempDir();
        string path = dir.File("d.csv", "a,b\nx,\"never closed\nmore text\n");
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(path)).ToList());
        Assert.StartsWith("d.csv:2 (row 1): a quoted field is not closed before the end of the file", error.Message);
    }

    [Fact]
    public void QuoteHandling_FollowsPythonCsvForSloppyInput()
    {
        using var dir = new TempDir();
        // Python's csv.reader gives: ['ab"c"', 'x'] , ['say "hi"', 'y'], ['', '']
        string path = dir.File("d.csv", "a,b\nab\"c\",x\n\"say \"\"hi\"\"\",y\n\"\",\n");
        var rows = DatasetReader.Read(new DatasetSource(path)).ToList();
        Assert.Equal(["ab\"c\"", "say \"hi\"", ""], rows.Select(r => r.Values["a"]));
        Assert.Equal(["x", "y", ""], rows.Select(r => r.Values["b"]));
    }

    [Fact]
    public void LongRow_OverTheLimit_IsABadRow()
    {
        using var dir = new TempDir();
        string path = dir.File("d.csv", $"a\nshort\n\"{new string('x', 5000)}\"\nafter\n");
        var log = new BadRowLog();
        var rows = DatasetReader.Read(new DatasetSource(path) { MaxRowBytes = 1000, OnBadRow = BadRowPolicy.Skip }, log).ToList();
        Assert.Equal(["short", "after"], rows.Select(r => r.Values["a"]));
        Assert.StartsWith("d.csv:3 (row 2): the row is 4.9 KiB, over the limit of 1000 bytes", log.Samples.Single());
    }

    [Fact]
    public void DuplicateHeader_IsAnError()
    {
        using var dir = new TempDir();
        var error = Assert.Throws<SharpTuneException>(() => DatasetReader.Read(new DatasetSource(dir.File("d.csv", "a,a\n1,2\n"))).ToList());
        Assert.Equal("d.csv:1: the header names column 'a' twice", error.Message);
    }
}
