using SharpTune.Data;
using SharpTune.Demo;
using Xunit;

namespace SharpTune.Tests.Data;

public class DataPipelineTests
{
    [Fact]
    public void SampleData_ToBatches_EndToEnd()
    {
        var options = new DataOptions([SampleData.MedicalCalculations], PromptFormat.R1Reasoning, MaxLength: 1024)
        {
            Validation = new ValidationSplit(Count: 20),
            Seed = 11,
        };
        var data = DataPipeline.Prepare(options, CharTokenizer.Spec());
        Assert.Equal(380, data.Train.Count);
        Assert.Equal(20, data.Validation.Count);
        var report = data.Sources.Single().Tokens;
        Assert.Equal((400, 0, 0, 0), (report.Examples, report.Truncated, report.Dropped, report.BadRows));

        // Every example: BOS, the R1 prompt, then a trained "<think>...</think>answer<eos>".
        foreach (var e in data.Train)
        {
            string trained = CharTokenizer.Decode(e.Labels.Where(l => l != TokenizedExample.IgnoreIndex));
            Assert.StartsWith("<think>\n", trained);
            Assert.EndsWith("<eos>", trained);
            Assert.EndsWith(trained, CharTokenizer.Decode(e.InputIds));
        }

        var batcher = new Batcher(Packer.Pack(data.Train, 1024), new BatchOptions(BatchSize: 4, PadId: 0) { Seed = 11 });
        int labels = batcher.Read(new DataPosition(0, 0), epochs: 1).Sum(x => x.Batch.LabelCount);
        Assert.Equal(data.Train.Sum(e => e.LabelCount), labels);
    }

    [Fact]
    public void TwoSources_AreMixedByWeight_AndValidationSourcesReplaceTheSplit()
    {
        using var dir = new TempDir();
        string domain = dir.File("domain.jsonl", string.Concat(Enumerable.Range(0, 80).Select(i => $"{{\"Question\": \"d{i}\", \"Response\": \"r\"}}\n")));
        string general = dir.File("general.jsonl", string.Concat(Enumerable.Range(0, 80).Select(i => $"{{\"instruction\": \"g{i}\", \"output\": \"o\"}}\n")));
        var options = new DataOptions(
            [new DatasetSource(domain) { Weight = 0.8 }, new DatasetSource(general) { Weight = 0.2 }],
            PromptFormat.Alpaca, MaxLength: 512)
        {
            ValidationSources = [SampleData.MedicalCalculations with { Split = "test" }],
        };
        var data = DataPipeline.Prepare(options, CharTokenizer.Spec(bos: false));
        Assert.Equal(100, data.Train.Count); // 80 domain examples are 80% of 100
        Assert.Equal(20, data.Train.Count(e => CharTokenizer.Decode(e.InputIds).Contains("### Instruction:\ng")));
        Assert.Equal(40, data.Validation.Count);
        Assert.Equal([80, 20, 0], data.Sources.Select(s => s.Train));
    }

    [Fact]
    public void ValidationCount_IsSharedByWeight()
    {
        using var dir = new TempDir();
        string a = dir.File("a.jsonl", string.Concat(Enumerable.Range(0, 50).Select(i => $"{{\"question\": \"a{i}\", \"answer\": \"x\"}}\n")));
        string b = dir.File("b.jsonl", string.Concat(Enumerable.Range(0, 50).Select(i => $"{{\"question\": \"b{i}\", \"answer\": \"x\"}}\n")));
        var options = new DataOptions([new DatasetSource(a) { Weight = 3 }, new DatasetSource(b) { Weight = 1 }], PromptFormat.Alpaca, 256)
        {
            Validation = new ValidationSplit(Count: 8),
        };
        var data = DataPipeline.Prepare(options, CharTokenizer.Spec());
        Assert.Equal([6, 2], data.Sources.Select(s => s.Validation));
    }

    [Fact]
    public void Cache_IsUsedTheSecondTime_AndInvalidatedByChanges()
    {
        using var dir = new TempDir();
        string path = dir.File("d.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"\", \"answer\": \"a\"}\n");
        int encodes = 0;
        var tokenizer = new TokenizerSpec(t => { Interlocked.Increment(ref encodes); return CharTokenizer.Encode(t); }, CharTokenizer.Eos, "tok-1");
        var options = new DataOptions([new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }], PromptFormat.Alpaca, 512)
        {
            CacheDirectory = Path.Combine(dir.Path, "cache"),
        };

        var first = DataPipeline.Prepare(options, tokenizer);
        int afterFirst = encodes;
        var second = DataPipeline.Prepare(options, tokenizer);
        Assert.Equal(afterFirst, encodes);
        Assert.Equal((false, true), (first.Sources[0].FromCache, second.Sources[0].FromCache));
        Assert.Equal(first.Train.Select(e => e.InputIds), second.Train.Select(e => e.InputIds));
        Assert.Equal(1, second.Sources[0].Tokens.BadRows);

        Assert.False(DataPipeline.Prepare(options with { MaxLength = 400 }, tokenizer).Sources[0].FromCache);
        Assert.False(DataPipeline.Prepare(options, tokenizer with { Identity = "tok-2" }).Sources[0].FromCache);
        Assert.False(DataPipeline.Prepare(options with { Prompt = PromptFormat.Alpaca with { Preamble = "x" } }, tokenizer).Sources[0].FromCache);
        File.AppendAllText(path, "{\"question\": \"q2\", \"answer\": \"a\"}\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        Assert.False(DataPipeline.Prepare(options, tokenizer).Sources[0].FromCache);
    }

    [Fact]
    public void NoUsableRows_IsAClearError()
    {
        using var dir = new TempDir();
        string path = dir.File("d.jsonl", "{\"question\": \"\", \"answer\": \"a\"}\n");
        var options = new DataOptions([new DatasetSource(path) { OnBadRow = BadRowPolicy.Skip }], PromptFormat.Alpaca, 128);
        var error = Assert.Throws<SharpTuneException>(() => DataPipeline.Prepare(options, CharTokenizer.Spec()));
        Assert.Contains("gave no training examples; 1 bad rows, the first: d.jsonl:1: column 'question' is empty", error.Message);
    }
}
