using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class TokenCacheTests
{
    private static List<TokenizedExample> Examples() =>
    [
        new([1, 2, 3, 4, 5, 6, 7, 8, 9], [-100, -100, 3, 4, 5, 6, 7, 8, 9]),
        new([int.MaxValue, 0], [-100, 0]),
        new([42], [-100]),
    ];

    [Fact]
    public void SaveAndLoad_RoundTripsExamplesAndReport()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "c.tokens");
        var report = new TokenizationReport(3, 1, 2, 12, 9) { BadRows = 4 };
        TokenCache.Save(path, "key", Examples(), report);

        Assert.True(TokenCache.TryLoad(path, "key", out var loaded, out var loadedReport));
        Assert.Equal(report, loadedReport);
        Assert.Equal(Examples().Select(e => (e.InputIds, e.Labels)), loaded.Select(e => (e.InputIds, e.Labels)));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void WrongKey_DamagedOrMissingFile_IsAMiss()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "c.tokens");
        Assert.False(TokenCache.TryLoad(path, "key", out _, out _));
        TokenCache.Save(path, "key", Examples(), TokenizationReport.Empty);
        Assert.False(TokenCache.TryLoad(path, "other", out _, out _));

        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^6]);
        Assert.False(TokenCache.TryLoad(path, "key", out _, out _));
    }

    [Fact]
    public void LabelsTheFormatCannotHold_AreRejected()
    {
        using var dir = new TempDir();
        var odd = new TokenizedExample([1, 2], [-100, 7]);
        Assert.Throws<InvalidOperationException>(() => TokenCache.Save(Path.Combine(dir.Path, "c.tokens"), "k", [odd], TokenizationReport.Empty));
    }

    [Fact]
    public void GetOrCreate_BuildsOnce()
    {
        using var dir = new TempDir();
        int builds = 0;
        (List<TokenizedExample>, TokenizationReport) Build()
        {
            builds++;
            return (Examples(), TokenizationReport.Empty);
        }
        var first = TokenCache.GetOrCreate(dir.Path, TokenCache.Key("a", "b"), Build);
        var second = TokenCache.GetOrCreate(dir.Path, TokenCache.Key("a", "b"), Build);
        Assert.Equal((1, false, true), (builds, first.FromCache, second.FromCache));
        TokenCache.GetOrCreate(dir.Path, TokenCache.Key("a", "c"), Build);
        Assert.Equal(2, builds);
    }

    [Fact]
    public void Key_SeparatesParts()
    {
        Assert.NotEqual(TokenCache.Key("ab", "c"), TokenCache.Key("a", "bc"));
        Assert.Equal(64, TokenCache.Key("x").Length);
    }
}
