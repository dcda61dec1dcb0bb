using System.CommandLine;
using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Models;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune decode-logits`: teacher-forced logits of the generation path, to check it against a reference
/// (transformers, or this command with SHARPTUNE_NATIVE=off / --cuda-graphs false).</summary>
static class DecodeLogitsCommand
{
    public static Command Create(TextWriter stdout)
    {
        var modelFlags = new ModelFlags();
        var input = new Option<string>("--input") { Description = "JSONL, one {\"prompt_ids\": [...], \"continuation_ids\": [...]} per row (continuations of one length)", Required = true };
        var output = new Option<string>("--output") { Description = "safetensors file to write: \"logits\" [rows, steps, vocab] fp32, step s before continuation token s is fed", Required = true };
        var graphs = new Option<bool>("--cuda-graphs") { Description = "Replay decode steps from a CUDA graph where one can be made (false: op by op)", DefaultValueFactory = _ => true };
        var json = CommonOptions.Json();
        var cmd = new Command("decode-logits", "Feed given continuations through the decode path (KV cache, CUDA graph) and write every step's logits")
            { input, output, graphs, json };
        modelFlags.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var rows = ForcedRows.Read(p.GetValue(input)!);
            using var m = modelFlags.Load(p);
            var generator = new TokenGenerator(m.CausalLM) { CudaGraphs = p.GetValue(graphs) };
            using var logits = generator.ForcedLogits(rows.Prompts, rows.Continuations);
            string path = generator.LastTimings!.DecodePath;
            SafetensorsFile.Write(p.GetValue(output)!, [("logits", logits)], new Dictionary<string, string> { ["decode_path"] = path });
            long steps = logits.shape[1];
            if (p.GetValue(json))
                stdout.WriteLine(JsonSerializer.Serialize(new { Rows = rows.Prompts.Count, Steps = steps, DecodePath = path, Output = p.GetValue(output) }, JsonOptions.Indented));
            else
                stdout.WriteLine($"{rows.Prompts.Count} rows × {steps} steps of logits written to {p.GetValue(output)} (decode: {path})");
        });
        return cmd;
    }
}
