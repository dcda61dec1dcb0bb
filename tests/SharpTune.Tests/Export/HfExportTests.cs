using System.Text.Json.Nodes;
using SharpTune.Export;
using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Export;

/// <summary>--format hf: LoRA merged into the weights, sharded with an index past the shard size, small files
/// copied; its logits equal base + adapter in our engine. (transformers + PEFT check it on the GPU machine:
/// scripts/device/check-export-hf.sh.)</summary>
public sealed class HfExportTests(ExportFixture fixture) : IClassFixture<ExportFixture>
{
    [Fact]
    public void MergedShardedCheckpointGivesBasePlusAdaptersLogits()
    {
        var (model, adapter) = fixture.Get("llama");
        string output = Path.Combine(TestPaths.TempDir(), "merged");
        var result = Exporter.Run(new ExportOptions(model, output, "hf", adapter, MaxShardBytes: 300_000));
        Assert.Contains(result.Checks, c => c.StartsWith("merged checkpoint: logits equal base + adapter"));
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "model.safetensors.index.json")))!;
        var shards = index["weight_map"]!.AsObject().Select(kv => kv.Value!.GetValue<string>()).Distinct().ToList();
        Assert.True(shards.Count > 1);
        Assert.All(shards, s => Assert.True(new FileInfo(Path.Combine(output, s)).Length <= 300_000 + 10_000));
        foreach (var f in new[] { "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(output, f)), f);

        using var merged = PretrainedModel.Load(output, "cpu", "float32");
        using var reference = PretrainedModel.Load(model, "cpu", "float32", adapter);
        using var plain = PretrainedModel.Load(model, "cpu", "float32");
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 1, 5, 9, 200, 31, 7 }).unsqueeze(0);
        var expected = reference.CausalLM.Forward(ids);
        Assert.True((merged.CausalLM.Forward(ids) - expected).abs().max().item<float>() < 1e-4f);
        Assert.True((plain.CausalLM.Forward(ids) - expected).abs().max().item<float>() > 0.1f);   // the adapter matters
    }
}
