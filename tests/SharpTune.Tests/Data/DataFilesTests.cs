using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class DataFilesTests
{
    private static string Row(string q) => $"{{\"Question\": \"{q}\", \"Complex_CoT\": \"c\", \"Response\": \"r\"}}";

    private static List<string> Questions(DatasetSource source) =>
        DatasetReader.Read(source).Select(r => (string)r.Values["Question"]!).ToList();

    [Fact]
    public void DatasetCard_ConfigsWithOneJsonFileEach_AsMedicalO1()
    {
        // The layout of FreedomIntelligence/medical-o1-reasoning-SFT: one JSON array per config.
        using var dir = new TempDir();
        dir.File("README.md", """
            ---
            license: apache-2.0
            task_categories:
            - question-answering
            language:
            - en
            - zh
            configs:
            - config_name: en
              data_files: medical_o1_sft.json
            - config_name: zh
              data_files: medical_o1_sft_Chinese.json
            - config_name: en_mix
              data_files: medical_o1_sft_mix.json
            - config_name: zh_mix
              data_files: medical_o1_sft_mix_Chinese.json
            ---
            # Card text with: colons, - dashes and [brackets]
            """);
        dir.File("medical_o1_sft.json", $"[{Row("en1")}, {Row("en2")}]");
        dir.File("medical_o1_sft_Chinese.json", $"[{Row("zh1")}]");
        dir.File("medical_o1_sft_mix.json", $"[{Row("mix1")}]");
        dir.File("medical_o1_sft_mix_Chinese.json", $"[{Row("zhmix1")}]");

        Assert.Equal(["en1", "en2"], Questions(new DatasetSource(dir.Path) { Subset = "en" }));
        Assert.Equal(["zh1"], Questions(new DatasetSource(dir.Path) { Subset = "zh" }));
        Assert.Equal(["mix1"], Questions(new DatasetSource(dir.Path) { Subset = "en_mix" }));
        Assert.Equal(["en2"], Questions(new DatasetSource(dir.Path) { Subset = "en", Split = "train[1:]" }));

        var noSubset = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path)));
        Assert.Contains("several subsets (en, zh, en_mix, zh_mix); choose one", noSubset.Message);
        var unknown = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path) { Subset = "fr" }));
        Assert.Contains("no subset 'fr'; the dataset card lists: en, zh, en_mix, zh_mix", unknown.Message);
        var noSplit = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path) { Subset = "en", Split = "test" }));
        Assert.Contains("subset 'en' has no split 'test'; it has: train", noSplit.Message);
    }

    [Fact]
    public void DatasetCard_SplitEntriesWithGlobs_AsParquetRepositories()
    {
        using var dir = new TempDir();
        dir.File("README.md", """
            ---
            dataset_info:
              features:
              - name: Question
                dtype: string
              splits:
              - name: train
                num_examples: 3
            configs:
            - config_name: default
              data_files:
              - split: train
                path: data/train-*
              - split: test
                path: "data/test-*"
            ---
            """);
        ParquetReaderTests.WriteMedical(dir, "data/train-00000-of-00002.parquet", 2);
        dir.File("data/train-00001-of-00002.jsonl", Row("third"));
        ParquetReaderTests.WriteMedical(dir, "data/test-00000-of-00001.parquet", 1);

        Assert.Equal(["q0", "q1", "third"], Questions(new DatasetSource(dir.Path)));
        Assert.Equal(["q0"], Questions(new DatasetSource(dir.Path) { Split = "test" }));
    }

    [Fact]
    public void DatasetCard_DefaultFlagAndPathLists()
    {
        using var dir = new TempDir();
        dir.File("README.md", """
            ---
            configs:
            - config_name: small   # a comment
              data_files:
              - split: train
                path:
                - "a.jsonl"
                - b.jsonl
            - config_name: big
              default: true
              data_files: [c.jsonl, d.jsonl]
            ---
            """);
        foreach (string name in new[] { "a", "b", "c", "d" })
            dir.File($"{name}.jsonl", Row(name));
        Assert.Equal(["c", "d"], Questions(new DatasetSource(dir.Path)));
        Assert.Equal(["a", "b"], Questions(new DatasetSource(dir.Path) { Subset = "small" }));
    }

    [Fact]
    public void Layout_SubsetFoldersAndSplitNames_WithoutACard()
    {
        using var dir = new TempDir();
        dir.File("en/train-00000-of-00001.jsonl", Row("en-train"));
        dir.File("en/test-00000-of-00001.jsonl", Row("en-test"));
        dir.File("zh/train/0000.jsonl", Row("zh-train"));
        dir.File("zh/validation/0000.jsonl", Row("zh-val"));
        dir.File(".cache/en/train-x.jsonl", Row("hidden"));

        Assert.Equal(["en-train"], Questions(new DatasetSource(dir.Path) { Subset = "en" }));
        Assert.Equal(["en-test"], Questions(new DatasetSource(dir.Path) { Subset = "en", Split = "test" }));
        Assert.Equal(["zh-val"], Questions(new DatasetSource(dir.Path) { Subset = "zh", Split = "validation" }));
        Assert.Equal(["zh-val"], Questions(new DatasetSource(dir.Path) { Subset = "zh", Split = "dev" }));

        var several = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path)));
        Assert.Contains("several subsets (en, zh)", several.Message);
        var missing = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path) { Subset = "en", Split = "validation" }));
        Assert.Contains("no files for split 'validation'; splits found: test, train", missing.Message);
    }

    [Fact]
    public void Layout_FilesWithoutSplitNames_AreTheTrainSplit()
    {
        using var dir = new TempDir();
        dir.File("part1.jsonl", Row("1"));
        dir.File("part2.csv", "Question,Complex_CoT,Response\n2,c,r\n");
        dir.File("notes.txt", "not data");
        Assert.Equal(["1", "2"], Questions(new DatasetSource(dir.Path)));
        var error = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(dir.Path) { Split = "test" }));
        Assert.Contains("only a 'train' split", error.Message);
    }

    [Fact]
    public void HubCacheSnapshot_WithSymlinkedFiles_IsRead()
    {
        // huggingface_hub's cache: snapshots/<revision>/<file> are links to blobs/<hash>.
        using var dir = new TempDir();
        string blob = dir.File("blobs/0a1b2c", $"[{Row("linked")}]");
        string card = dir.File("blobs/9f8e7d", "---\nconfigs:\n- config_name: en\n  data_files: medical_o1_sft.json\n---\n");
        string snapshot = Path.Combine(dir.Path, "snapshots", "abc123");
        Directory.CreateDirectory(snapshot);
        File.CreateSymbolicLink(Path.Combine(snapshot, "medical_o1_sft.json"), "../../blobs/0a1b2c");
        File.CreateSymbolicLink(Path.Combine(snapshot, "README.md"), card);

        Assert.Equal(["linked"], Questions(new DatasetSource(snapshot) { Subset = "en" }));
        Assert.Contains($"|{new FileInfo(blob).Length}|", DatasetReader.Fingerprint(new DatasetSource(snapshot) { Subset = "en" }));

        File.Delete(blob);
        var error = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource(snapshot) { Subset = "en" }));
        Assert.EndsWith("0a1b2c, which is missing (an incomplete download?)", error.Message);
    }

    [Fact]
    public void MissingPath_IsAClearError()
    {
        var error = Assert.Throws<SharpTuneException>(() => Questions(new DatasetSource("/no/such/dataset")));
        Assert.Equal("dataset '/no/such/dataset' not found (expected a data file, a folder or a sample: name)", error.Message);
    }

    [Theory]
    [InlineData("data/train-*", "data/train-00000-of-00001.parquet", true)]
    [InlineData("data/train-*", "data/sub/train-0.parquet", false)]
    [InlineData("**/*.jsonl", "a/b/c.jsonl", true)]
    [InlineData("**/*.jsonl", "c.jsonl", true)]
    [InlineData("./en/*.json", "en/x.json", true)]
    [InlineData("en/?.json", "en/xy.json", false)]
    public void Glob_MatchesLikeDataFilesPatterns(string pattern, string path, bool matches)
    {
        Assert.Equal(matches, DataFiles.Glob(pattern).IsMatch(path));
    }
}
