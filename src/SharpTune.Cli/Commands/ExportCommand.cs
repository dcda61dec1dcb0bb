using System.CommandLine;
using SharpTune.Export;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune export --model DIR|ID [--adapter DIR] --format hf|gguf|gguf-lora|ollama --out PATH [--quant TYPE]`.</summary>
static class ExportCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model();
        var adapter = new Option<string?>("--adapter") { Description = "LoRA adapter folder (PEFT format) to merge in, or to convert with --format gguf-lora" };
        var format = new Option<string>("--format") { Description = "hf (merged safetensors), gguf, gguf-lora (llama.cpp LoRA adapter), ollama (GGUF + Modelfile)", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Output .gguf file (gguf, gguf-lora) or folder (hf, ollama)", Required = true };
        var quant = new Option<string?>("--quant") { Description = "f32, f16, bf16, q8_0 (written by SharpTune) or a llama.cpp type: q4_k_m, q5_k_m, q6_k, ... (default f16; f32 for gguf-lora)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing output" };
        var noVerify = new Option<bool>("--no-verify") { Description = "Skip loading the result in llama.cpp and comparing it with SharpTune" };
        var cmd = new Command("export", "Export base + adapter: merged HF checkpoint, GGUF, GGUF LoRA adapter or Ollama model, checked in llama.cpp")
            { model, adapter, format, output, quant, overwrite, noVerify };
        cmd.SetAction(p =>
        {
            var options = new ExportOptions(ModelLocator.Resolve(p.GetValue(model)!), p.GetValue(output)!, p.GetValue(format)!, p.GetValue(adapter),
                p.GetValue(quant), p.GetValue(overwrite), !p.GetValue(noVerify));
            Run(options, stdout);
        });
        return cmd;
    }

    /// <summary>Runs an export, printing progress and the checks, and ends with how to run the result.</summary>
    public static ExportResult Run(ExportOptions options, TextWriter stdout)
    {
        Runtime.TorchRuntime.Initialize("cpu");
        string? lastStage = null;
        int lastPercent = -1;
        var result = Exporter.Run(options, e =>
        {
            if (e.Total > 0)
            {
                int percent = e.Done * 100 / e.Total;
                if (percent / 10 == lastPercent / 10 && e.Done != e.Total) return;
                lastPercent = percent;
                stdout.WriteLine($"  {e.Stage}: {e.Done}/{e.Total} tensors ({percent}%)");
            }
            else if (e.Stage != lastStage)
            {
                stdout.WriteLine($"  {e.Stage}");
                lastPercent = -1;
            }
            lastStage = e.Stage;
        });
        foreach (var check in result.Checks) stdout.WriteLine($"  ok  {check}");
        stdout.WriteLine($"Wrote {result.Output} ({result.Bytes / 1e6:0.0} MB) in {result.Seconds:0.0} s{(options.Verify ? ", verified" : ", not verified (--no-verify)")}.");
        stdout.WriteLine(result.RunHint);
        return result;
    }
}
