using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class SeededRandomTests
{
    [Fact]
    public void SplitMix64_MatchesPublishedFirstOutput()
    {
        ulong state = 0;
        Assert.Equal(0xE220A8397B1DCDAFUL, SeededRandom.SplitMix64(ref state));
    }

    // Expected values from an independent Python implementation of xoshiro256** seeded by SplitMix64.
    [Theory]
    [InlineData(42UL, new[] { 0x15780b2e0c2ec716UL, 0x6104d9866d113a7eUL, 0xae17533239e499a1UL })]
    [InlineData(0UL, new[] { 0x99ec5f36cb75f2b4UL, 0xbf6e1f784956452aUL })]
    public void Xoshiro256StarStar_MatchesReference(ulong seed, ulong[] expected)
    {
        var random = new SeededRandom(seed);
        Assert.Equal(expected, expected.Select(_ => random.NextUInt64()).ToArray());
    }

    [Fact]
    public void BoundedIntsAndShuffle_MatchReference()
    {
        var random = new SeededRandom(7);
        Assert.Equal(new[] { 7, 2, 8, 9, 9, 8, 0, 1, 4, 1, 5, 7 }, Enumerable.Range(0, 12).Select(_ => random.NextInt(10)).ToArray());
        Assert.Equal(new[] { 6, 5, 7, 9, 4, 2, 0, 3, 8, 1 }, new SeededRandom(123).Permutation(10));
    }

    [Fact]
    public void NextInt_IsRoughlyUniformAndInRange()
    {
        var random = new SeededRandom(1);
        var counts = new int[6];
        for (int i = 0; i < 60_000; i++)
            counts[random.NextInt(6)]++;
        Assert.All(counts, c => Assert.InRange(c, 9_500, 10_500));
        Assert.All(Enumerable.Range(0, 1000).Select(_ => random.NextDouble()), d => Assert.InRange(d, 0.0, 0.9999999999));
    }

    [Fact]
    public void For_GivesIndependentStreamsPerPurposeAndIndex()
    {
        Assert.Equal(SeededRandom.For(5, "epoch", 1).NextUInt64(), SeededRandom.For(5, "epoch", 1).NextUInt64());
        Assert.NotEqual(SeededRandom.For(5, "epoch", 1).NextUInt64(), SeededRandom.For(5, "epoch", 2).NextUInt64());
        Assert.NotEqual(SeededRandom.For(5, "epoch", 1).NextUInt64(), SeededRandom.For(5, "mix", 1).NextUInt64());
        Assert.NotEqual(SeededRandom.For(5, "epoch", 1).NextUInt64(), SeededRandom.For(6, "epoch", 1).NextUInt64());
    }
}
