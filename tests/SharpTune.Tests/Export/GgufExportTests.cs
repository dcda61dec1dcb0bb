using SharpTune.Demo;
using SharpTune.Export;
using SharpTune.Models;

namespace SharpTune.Tests.Export;

/// <summary>Exports of the tiny models checked in llama.cpp itself (LLamaSharp's CPU build): tokenization, chat
/// template, stop tokens, greedy tokens and logits against our engine, as <see cref="ExportVerifier"/> does it.</summary>
public sealed class GgufExportTests(ExportFixture fixture) : IClassFixture<ExportFixture>
{
    static List<string> Check(string model, string? adapter, string gguf, string? lora, string quant)
    {
        using var ours = PretrainedModel.Load(model, "cpu", "float32", adapter);
        using var theirs = LlamaCpp.Load(gguf, lora);
        return ExportVerifier.Verify(ours, theirs, Tolerance.For(quant), steps: 32);
    }

    string Export(string arch, bool withAdapter, string quant, string format = "gguf")
    {
        var (model, adapter) = fixture.Get(arch);
        string output = Path.Combine(TestPaths.TempDir(), $"{arch}-{quant}.gguf");
        Exporter.Run(new ExportOptions(model, output, format, withAdapter || format == "gguf-lora" ? adapter : null, quant, Verify: false));
        return output;
    }

    [Theory]
    [InlineData("qwen2", false)]
    [InlineData("qwen2", true)]
    [InlineData("llama", false)]
    [InlineData("llama", true)]
    [InlineData("qwen3", false)]
    [InlineData("qwen3", true)]
    public void F32GivesOurTokensAndGreedyTokensFor32Steps(string arch, bool withAdapter)
    {
        var (model, adapter) = fixture.Get(arch);
        var lines = Check(model, withAdapter ? adapter : null, Export(arch, withAdapter, "f32"), null, "f32");
        Assert.Contains(lines, l => l.StartsWith("tokenization: "));
        Assert.Contains(lines, l => l.StartsWith("greedy tokens (f32 (exact)): 32/32 identical"));
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("llama")]
    [InlineData("qwen3")]
    public void Q8_0StaysWithinItsLogitTolerance(string arch)
    {
        var (model, adapter) = fixture.Get(arch);
        var lines = Check(model, adapter, Export(arch, true, "q8_0"), null, "q8_0");   // throws beyond Tolerance.For("q8_0")
        Assert.Contains(lines, l => l.StartsWith("greedy tokens (q8_0)"));
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("llama")]
    public void Q4_K_MFromLlamaCppsQuantizerLoadsAndGenerates(string arch)
    {
        var (model, adapter) = fixture.Get(arch);
        string gguf = Export(arch, true, "q4_k_m");
        var lines = Check(model, adapter, gguf, null, "q4_k_m");   // logits correlate with ours at >= 0.9
        Assert.Contains(lines, l => l.StartsWith("greedy tokens (q4_k_m"));
        using var loaded = LlamaCpp.Load(gguf);
        Assert.Equal("15", loaded.Metadata["general.file_type"]);   // llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("llama")]
    [InlineData("qwen3")]
    public void GgufLoraMovesLlamaCppsLogitsToOurBasePlusAdapter(string arch)
    {
        var (model, adapter) = fixture.Get(arch);
        string baseGguf = Export(arch, false, "f32");
        string lora = Export(arch, true, "f32", "gguf-lora");
        // with the adapter: llama.cpp matches our base + adapter (f32 tolerance, same greedy tokens)
        Check(model, adapter, baseGguf, lora, "f32");
        // without it, llama.cpp's logits are far from base + adapter: the adapter is what moved them
        var e = Assert.Throws<SharpTuneException>(() => Check(model, adapter, baseGguf, null, "f32"));
        Assert.Contains("differ between llama.cpp and SharpTune", e.Message);
    }

    [Fact]
    public void BF16AndF16AreExactUpToNearTies()
    {
        var (model, adapter) = fixture.Get("qwen2");
        foreach (var quant in new[] { "f16", "bf16" })
            Assert.Contains(Check(model, adapter, Export("qwen2", true, quant), null, quant), l => l.StartsWith($"greedy tokens ({quant}"));
    }

    [Fact]
    public void ExportVerifiesByDefaultAndEndsWithHowToRunIt()
    {
        var (model, adapter) = fixture.Get("qwen2");
        string output = Path.Combine(TestPaths.TempDir(), "m.gguf");
        var stages = new List<string>();
        var result = Exporter.Run(new ExportOptions(model, output, "gguf", adapter, "f32"), p => stages.Add(p.Stage));
        Assert.Contains("verifying in llama.cpp", stages);
        Assert.Equal(4, result.Checks.Count);
        Assert.StartsWith("run it: llama-cli -m ", result.RunHint);
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(output)!));   // no temp files left
    }

    [Fact]
    public void ExistingTargetIsRefusedUnlessOverwrite()
    {
        var (model, _) = fixture.Get("qwen2");
        string output = Path.Combine(TestPaths.TempDir(), "m.gguf");
        File.WriteAllText(output, "keep me");
        var e = Assert.Throws<SharpTuneException>(() => Exporter.Run(new ExportOptions(model, output, "gguf", Quant: "f16", Verify: false)));
        Assert.Contains("--overwrite", e.Message);
        Assert.Equal("keep me", File.ReadAllText(output));
        Exporter.Run(new ExportOptions(model, output, "gguf", Quant: "f16", Overwrite: true, Verify: false));
        Assert.NotEqual("keep me"u8.Length, new FileInfo(output).Length);
    }

    [Fact]
    public void AdapterOfAnotherShapeIsReportedBeforeWriting()
    {
        var (model, _) = fixture.Get("qwen2");
        string dir = TestPaths.TempDir();
        string other = Path.Combine(dir, "other");
        TinyModel.Create(other, new TinyModelOptions(HiddenSize: 32, Layers: 2, IntermediateSize: 64));
        string adapter = Path.Combine(dir, "adapter");
        ExportFixture.WriteAdapter(other, adapter, seed: 1);
        string output = Path.Combine(dir, "out.gguf");
        var e = Assert.Throws<SharpTuneException>(() => Exporter.Run(new ExportOptions(model, output, "gguf", adapter, "f16")));
        Assert.Contains("is the adapter for another model?", e.Message);
        Assert.DoesNotContain(Directory.GetFiles(dir), f => f.Contains("out.gguf"));
    }

    [Fact]
    public void AStopTokenLlamaCppWouldIgnoreFailsLoudlyAndLeavesNothing()
    {
        // generation_config.json stops at </think> too: our engine stops there, llama.cpp would not
        string dir = TestPaths.TempDir();
        string model = Path.Combine(dir, "model");
        TinyModel.Create(model, new TinyModelOptions(HiddenSize: 64, Layers: 2, IntermediateSize: 128));
        var tokenizer = SharpTune.Tokenization.Tokenizer.Load(model);
        File.WriteAllText(Path.Combine(model, "generation_config.json"),
            $"{{\"eos_token_id\": [{tokenizer.EosTokenId}, {tokenizer.TokenToId("</think>")}]}}");
        string output = Path.Combine(dir, "out.gguf");
        var e = Assert.Throws<SharpTuneException>(() => Exporter.Run(new ExportOptions(model, output, "gguf", Quant: "f32")));
        Assert.Contains("stop tokens differ", e.Message);
        Assert.Contains("</think>", e.Message);
        Assert.Equal(["model"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }
}

/// <summary>The reference models made by transformers (tests/SharpTune.Tests/Fixtures/models) carry the switches the
/// tiny models lack: Llama 3.1 rope scaling with a short original context (so rope_freqs matters from the first
/// tokens), Qwen2's tied embeddings (and an adapter made by PEFT itself), Qwen3's head_dim 24 ≠ hidden/heads.
/// They get a trained tokenizer of their vocab size, then go through llama.cpp like the tiny models.</summary>
public sealed class GgufReferenceModelTests
{
    static string WithTokenizer(string name)
    {
        _ = TestPaths.Cpu;
        string source = TestPaths.Model(name), dir = Path.Combine(TestPaths.TempDir(), name);
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(source, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        var tokenizer = SharpTune.Tokenization.BpeTrainer.Train(TinyModel.DefaultCorpus().Take(200), config["vocab_size"]!.GetValue<int>(), TinyModel.SpecialTokens,
            new SharpTune.Tokenization.BpeTrainerOptions(BosToken: TinyModel.Bos, EosToken: TinyModel.Eos, PadToken: TinyModel.Pad, AddBosToken: true, ChatTemplate: TinyModel.ChatTemplate));
        tokenizer.Save(dir);
        config["bos_token_id"] = tokenizer.BosTokenId;
        config["eos_token_id"] = tokenizer.EosTokenId;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), $"{{\"eos_token_id\": {tokenizer.EosTokenId}}}");
        return dir;
    }

    [Theory]
    [InlineData("llama", "rope_freqs.weight")]
    [InlineData("qwen2", null)]
    [InlineData("qwen3", null)]
    public void ReferenceModelsExportExactly(string name, string? extraTensor)
    {
        string model = WithTokenizer(name);
        string? adapter = name == "qwen2" ? TestPaths.Model("qwen2/peft_adapter") : null;
        string gguf = Path.Combine(TestPaths.TempDir(), name + ".gguf");
        var result = Exporter.Run(new ExportOptions(model, gguf, "gguf", adapter, "f32"));
        Assert.Contains(result.Checks, c => c.StartsWith("greedy tokens (f32 (exact)): 32/32 identical"));
        using var loaded = LlamaCpp.Load(gguf);
        if (extraTensor is not null) Assert.Contains(extraTensor, File.ReadAllText(gguf).Substring(0, 200_000));
        if (name == "qwen2")
        {
            // tied: no tensor named output.weight (a GGUF string is its u64 length, 13, then the bytes); llama.cpp reuses token_embd
            Assert.DoesNotContain("\r\0\0\0\0\0\0\0output.weight", File.ReadAllText(gguf).Substring(0, 200_000));
            string lora = Path.Combine(TestPaths.TempDir(), "lora.gguf");
            Exporter.Run(new ExportOptions(model, lora, "gguf-lora", adapter));                     // verified against base + adapter
        }
    }
}
