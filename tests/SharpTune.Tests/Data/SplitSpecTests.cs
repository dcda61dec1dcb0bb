using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class SplitSpecTests
{
    [Theory]
    [InlineData("train", 100, 0, 100)]
    [InlineData("train[:500]", 100, 0, 100)]
    [InlineData("train[:50]", 100, 0, 50)]
    [InlineData("test[10:20]", 100, 10, 20)]
    [InlineData("train[-10:]", 100, 90, 100)]
    [InlineData("train[:-10]", 100, 0, 90)]
    [InlineData("train[:10%]", 100, 0, 10)]
    [InlineData("train[25%:75%]", 8, 2, 6)]
    [InlineData("train[ 3 : 7 ]", 100, 3, 7)]
    public void Parse_AndResolve(string text, long count, long start, long end)
    {
        var split = SplitSpec.Parse(text);
        Assert.Equal(text.Split('[')[0], split.Name);
        Assert.Equal((start, end), split.Resolve(count));
    }

    [Fact]
    public void OpenEnd_NeedsNoCount()
    {
        var split = SplitSpec.Parse("train[5:]");
        Assert.False(split.NeedsRowCount);
        Assert.Equal((5L, long.MaxValue), split.Resolve(null));
        Assert.True(SplitSpec.Parse("train[:5%]").NeedsRowCount);
        Assert.True(SplitSpec.Parse("train[-5:]").NeedsRowCount);
    }

    [Theory]
    [InlineData("train[:500", "must end with ']'")]
    [InlineData("train[500]", "needs ':'")]
    [InlineData("[:5]", "the split name is missing")]
    [InlineData("train[:abc]", "'abc' is not a row number or a percentage")]
    [InlineData("train[:150%]", "is not a percentage between")]
    public void Parse_RejectsBadSlices(string text, string message)
    {
        var error = Assert.Throws<SharpTuneException>(() => SplitSpec.Parse(text));
        Assert.Contains(message, error.Message);
    }
}
