using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class MixingTests
{
    private static List<string> Items(string prefix, int count) => Enumerable.Range(0, count).Select(i => $"{prefix}{i}").ToList();

    [Fact]
    public void Mix_HasExactRatios_NoRepeatsByDefault_AndIsDeterministic()
    {
        var domain = Items("d", 1000);
        var general = Items("g", 1000);
        var parts = new[] { new MixPart<string>(domain, 0.8), new MixPart<string>(general, 0.2) };
        var mixed = DataMixer.Mix(parts, seed: 3);

        // The largest mixture without repeats: 1000 domain items are 80% of 1250.
        Assert.Equal(1250, mixed.Count);
        Assert.Equal(1000, mixed.Count(x => x.StartsWith('d')));
        Assert.Equal(250, mixed.Count(x => x.StartsWith('g')));
        Assert.Equal(mixed.Count, mixed.Distinct().Count());
        Assert.Equal(mixed, DataMixer.Mix(parts, seed: 3));
        Assert.NotEqual(mixed, DataMixer.Mix(parts, seed: 4));
        // Interleaved, not blocked: each tenth of the mixture holds both.
        Assert.All(mixed.Chunk(125), chunk => Assert.InRange(chunk.Count(x => x.StartsWith('g')), 5, 60));
    }

    [Fact]
    public void Mix_WithALargerTotal_RepeatsTheShortPartEvenly()
    {
        var parts = new[] { new MixPart<string>(Items("a", 10), 1), new MixPart<string>(Items("b", 3), 1) };
        var mixed = DataMixer.Mix(parts, seed: 1, total: 20);
        Assert.Equal(10, mixed.Count(x => x.StartsWith('a')));
        var b = mixed.Where(x => x.StartsWith('b')).GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, b.Count);
        Assert.All(b.Values, n => Assert.InRange(n, 3, 4)); // 10 = 3 full passes + 1
    }

    [Fact]
    public void Apportion_UsesLargestRemainders()
    {
        Assert.Equal([3, 3, 4], DataMixer.Apportion([0.33, 0.33, 0.34], 10));
        Assert.Equal([1, 0], DataMixer.Apportion([0.5, 0.5], 1));
    }

    [Fact]
    public void Mix_RejectsBadWeightsAndEmptyParts()
    {
        Assert.Throws<SharpTuneException>(() => DataMixer.Mix([new MixPart<string>(Items("a", 2), 0)], 1));
        Assert.Throws<SharpTuneException>(() => DataMixer.Mix([new MixPart<string>([], 1)], 1));
    }

    [Fact]
    public void ValidationSplit_ByFractionOrCount_IsSeededAndKeepsOrder()
    {
        var items = Items("x", 100);
        var (train, validation) = new ValidationSplit(Fraction: 0.1).Apply(items, seed: 5);
        Assert.Equal(90, train.Count);
        Assert.Equal(10, validation.Count);
        Assert.Empty(train.Intersect(validation));
        Assert.Equal(train.OrderBy(x => int.Parse(x[1..])), train);
        Assert.Equal(validation, new ValidationSplit(Fraction: 0.1).Apply(items, seed: 5).Validation);
        Assert.NotEqual(validation, new ValidationSplit(Fraction: 0.1).Apply(items, seed: 6).Validation);

        Assert.Equal(7, new ValidationSplit(Count: 7).Apply(items, 1).Validation.Count);
        Assert.Throws<SharpTuneException>(() => new ValidationSplit(Count: 100).Apply(items, 1));
        Assert.Throws<SharpTuneException>(() => new ValidationSplit(Fraction: 1.5).Apply(items, 1));
    }
}
