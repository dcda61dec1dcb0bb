using System.Globalization;
using System.Text.RegularExpressions;
using SharpTune.Data;
using SharpTune.Demo;
using SharpTune.Scripts;
using Xunit;

namespace SharpTune.Tests.Data;

public class SampleDataTests
{
    private static string RepoFile(string relative)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SharpTune.slnx")))
            dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), relative);
    }

    [Fact]
    public void CommittedFiles_AreWhatTheGeneratorWrites()
    {
        var (train, test) = SampleDataGenerator.MedicalCalculations();
        Assert.Equal(SampleDataGenerator.ToJson(train), File.ReadAllText(RepoFile("data/medical-calculations/train.json")));
        Assert.Equal(SampleDataGenerator.ToJson(test), File.ReadAllText(RepoFile("data/medical-calculations/test.json")));
    }

    [Fact]
    public void Splits_HaveTheirSizes_AndDoNotOverlap()
    {
        var (train, test) = SampleDataGenerator.MedicalCalculations();
        Assert.Equal((400, 40), (train.Count, test.Count));
        Assert.Equal(440, train.Concat(test).Select(r => r.Question).Distinct().Count());
        Assert.All(train.Concat(test), r => Assert.InRange(r.Question.Length + r.Complex_CoT.Length + r.Response.Length, 40, 400));
    }

    [Fact]
    public void EmbeddedSample_ReadsAsMedicalO1()
    {
        var train = DatasetReader.ReadExamples(SampleData.MedicalCalculations).ToList();
        var test = DatasetReader.ReadExamples(SampleData.MedicalCalculations with { Split = "test[:5]" }).ToList();
        Assert.Equal((400, 5), (train.Count, test.Count));
        Assert.Equal(SampleDataGenerator.MedicalCalculations().Train[0].Question, train[0].Question);
        Assert.Equal("sample:medical-calculations/train.json:2 (row 1)", train[0].Location);
        Assert.Contains("it has: test, train", Assert.Throws<SharpTuneException>(
            () => DatasetReader.Read(SampleData.MedicalCalculations with { Split = "validation" }).ToList()).Message);
        Assert.Contains("bundled samples: sample:medical-calculations", Assert.Throws<SharpTuneException>(
            () => DatasetReader.Read(new DatasetSource("sample:nope")).ToList()).Message);
    }

    private static readonly Regex Step = new(
        @"(-?\d+(?:\.\d+)?)(?: [^\d×÷=,]*?)? ([×÷-]) (\d+(?:\.\d+)?)(?: [^\d×÷=,]*?)?(?: ([×÷]) (\d+(?:\.\d+)?)(?: [^\d×÷=,]*?)?)? = (\d+(?:\.\d+)?)");

    [Fact]
    public void EveryStep_IsCorrectArithmetic()
    {
        // Each "a op b [op c] = r" in the reasoning holds to the precision r is written with.
        var (train, test) = SampleDataGenerator.MedicalCalculations();
        int steps = 0;
        foreach (var row in train.Concat(test))
        {
            foreach (Match m in Step.Matches(row.Complex_CoT))
            {
                double value = Apply(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value,
                    double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
                if (m.Groups[4].Success)
                    value = Apply(value, m.Groups[4].Value, double.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture));
                string written = m.Groups[6].Value;
                int decimals = written.Contains('.') ? written.Length - written.IndexOf('.') - 1 : 0;
                double tolerance = 0.5 * Math.Pow(10, -decimals) + 1e-9; // half a unit of the last digit written
                Assert.True(Math.Abs(value - double.Parse(written, CultureInfo.InvariantCulture)) <= tolerance,
                    $"'{m.Value}' in: {row.Question}");
                steps++;
            }
            // The response states the reasoning's final number.
            Assert.Contains(Regex.Match(row.Complex_CoT, @"(\d+(?:\.\d+)?)\D*$").Groups[1].Value, row.Response);
        }
        Assert.True(steps > 600, $"only {steps} steps were checked");
    }

    private static double Apply(double a, string op, double b) => op switch
    {
        "×" => a * b,
        "÷" => a / b,
        "-" => a - b,
        _ => throw new ArgumentException(op),
    };
}
