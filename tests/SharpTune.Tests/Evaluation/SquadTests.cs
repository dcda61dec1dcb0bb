using SharpTune.Evaluation;

namespace SharpTune.Tests.Evaluation;

public class SquadTests
{
    [Fact]
    public void NormalisationDropsCasePunctuationAndArticles()
    {
        Assert.Equal("cat", Squad.Normalize("The Cat!"));
        Assert.Equal(1, Squad.ExactMatch("The Cat!", "cat"));
        Assert.Equal(0, Squad.ExactMatch("cats", "cat"));
        Assert.Equal("theory of everything", Squad.Normalize("A theory of  everything."));
    }

    [Fact]
    public void TokenF1CountsSharedTokens()
    {
        // "big red dog" vs "red dog barked": 2 shared of 3 and 3 → F1 = 2/3
        Assert.Equal(2.0 / 3, Squad.TokenF1("the big red dog", "a red dog barked"), 12);
        // repeated tokens count as often as both sides have them: "a a b" → [b] after articles... use plain words
        Assert.Equal(2 * (2.0 / 3) * (2.0 / 2) / (2.0 / 3 + 1), Squad.TokenF1("x x y", "x x"), 12);
        Assert.Equal(0, Squad.TokenF1("red", "blue"));
        Assert.Equal(1, Squad.TokenF1("The.", "a"));   // both normalise to nothing
        Assert.Equal(0, Squad.TokenF1("", "a dog"));
    }
}
