using SharpTune.Training;

namespace SharpTune.Tests.Training;

/// <summary>`train --help` and docs/training.md describe the settings from one source, TrainOptions.Settings.</summary>
public class SettingsDocTests
{
    static string Table() => string.Join("\n", TrainOptions.Settings.Select(s =>
        $"| `{s.Key}` | `{s.Flag}` | {s.Type} | {s.Default} | {s.Meaning.Replace("|", "\\|")}{(s.Allowed is null ? "" : $" ({s.Allowed})")} |")
        .Prepend("|---|---|---|---|---|").Prepend("| key | flag | type | default | meaning |"));

    [Fact]
    public void EverySettingHasAMeaningAndTheDocsListThemAll()
    {
        Assert.Equal(TrainOptions.Keys.Count, TrainOptions.Settings.Count);
        Assert.All(TrainOptions.Settings, s => Assert.False(string.IsNullOrWhiteSpace(s.Meaning)));
        string docs = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "training.md")).Replace("\r\n", "\n");
        string table = Table();
        Assert.True(docs.Contains(table), "docs/training.md's settings table is out of date; replace it with:\n" + table);
    }

    [Fact]
    public void HelpShowsMeaningTypeDefaultAndAllowedValues()
    {
        var lr = TrainOptions.Settings.Single(s => s.Key == "lr_scheduler");
        Assert.Equal("--lr-scheduler", lr.Flag);
        Assert.Contains("default linear", lr.HelpText);
        Assert.Contains("linear, cosine, constant", lr.HelpText);
        Assert.Contains("0 = run `epochs`", TrainOptions.Settings.Single(s => s.Key == "max_steps").HelpText);
        Assert.Equal("1e-8", TrainOptions.Settings.Single(s => s.Key == "adam_epsilon").Default);
    }
}
