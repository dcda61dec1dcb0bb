using System.Diagnostics;
using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>What to export. <see cref="Model"/> is a local checkpoint folder; <see cref="Output"/> a .gguf file
/// (gguf, gguf-lora) or a folder (hf, ollama). <see cref="Quant"/>: f32, f16, bf16, q8_0 (written by us) or any
/// llama.cpp type such as q4_k_m, q5_k_m, q6_k (through llama.cpp's quantizer); null picks f16 (f32 for gguf-lora).</summary>
public sealed record ExportOptions(
    string Model,
    string Output,
    string Format = "gguf",
    string? Adapter = null,
    string? Quant = null,
    bool Overwrite = false,
    bool Verify = true,
    int VerifySteps = 32,
    long MaxShardBytes = HfCheckpoint.DefaultMaxShardBytes);

/// <summary>What an export wrote: the path, its size, the verification lines and the command that runs it.</summary>
public sealed record ExportResult(string Output, long Bytes, double Seconds, IReadOnlyList<string> Checks, string RunHint);

/// <summary>Progress of an export: a stage ("writing", "quantizing", "verifying") and, while writing, tensors done of total.</summary>
public sealed record ExportProgress(string Stage, int Done = 0, int Total = 0);

/// <summary>
/// `sharptune export`: base + LoRA adapter to a merged Hugging Face checkpoint, a GGUF (ours or llama.cpp-quantized),
/// a GGUF LoRA adapter, or an Ollama folder (GGUF + Modelfile). Everything is written under a temporary name,
/// checked, and renamed into place only when the checks pass: an interrupted or failed export leaves nothing
/// that looks complete.
/// </summary>
public static class Exporter
{
    public static readonly IReadOnlyList<string> Formats = ["hf", "gguf", "gguf-lora", "ollama"];
    static readonly Dictionary<string, GgmlType> OwnTypes = new()
    {
        ["f32"] = GgmlType.F32, ["f16"] = GgmlType.F16, ["bf16"] = GgmlType.BF16, ["q8_0"] = GgmlType.Q8_0,
    };

    public static ExportResult Run(ExportOptions o, Action<ExportProgress>? progress = null)
    {
        if (!Formats.Contains(o.Format)) throw new SharpTuneException($"--format: expected {string.Join(", ", Formats)}, got '{o.Format}'");
        string quant = (o.Quant ?? (o.Format == "gguf-lora" ? "f32" : "f16")).ToLowerInvariant();
        if (o.Format == "hf" && o.Quant is not null) throw new SharpTuneException("--quant applies to GGUF formats; --format hf keeps the checkpoint's dtype");
        if (o.Format == "gguf-lora" && o.Adapter is null) throw new SharpTuneException("--format gguf-lora needs --adapter");
        string output = Path.GetFullPath(o.Output);
        if ((File.Exists(output) || Directory.Exists(output)) && !o.Overwrite)
            throw new SharpTuneException($"{o.Output}: already exists; pass --overwrite to replace it");
        if (o.Format is "gguf" or "gguf-lora" && Directory.Exists(output))
            throw new SharpTuneException($"{o.Output}: is a folder; --format {o.Format} writes one .gguf file");
        // the output's folder must be writable (not under a file, not read-only) before anything is merged or written
        OutputFolder.RequireWritable(Path.GetDirectoryName(output) ?? output, "folder of --out");

        var clock = Stopwatch.StartNew();
        using var weights = MergedWeights.Open(o.Model, o.Adapter);     // checks the adapter against the base before writing
        Action<int, int> onTensor = (done, total) => progress?.Invoke(new ExportProgress("writing", done, total));
        string tmp = $"{output}.tmp-{Guid.NewGuid():N}";
        var temps = new List<string> { tmp };
        try
        {
            List<string> checks;
            switch (o.Format)
            {
                case "hf":
                    HfCheckpoint.Write(weights, tmp, o.MaxShardBytes, onTensor);
                    checks = o.Verify ? VerifyMerged(o, tmp, progress) : [];
                    break;
                case "gguf":
                    WriteGguf(weights, quant, tmp, temps, onTensor, progress);
                    checks = o.Verify ? VerifyGguf(o, tmp, null, quant, progress) : [];
                    break;
                case "gguf-lora":
                    if (!OwnTypes.TryGetValue(quant, out var loraType)) throw new SharpTuneException($"--quant: a GGUF LoRA adapter is f32, f16 or bf16, not {quant}");
                    GgufLora.Write(weights, loraType, tmp, onTensor);
                    checks = [];
                    if (o.Verify)
                    {
                        string baseGguf = $"{output}.base-{Guid.NewGuid():N}.gguf";
                        temps.Add(baseGguf);
                        progress?.Invoke(new ExportProgress("writing an f32 base GGUF to check the adapter on"));
                        using (var plain = MergedWeights.Open(o.Model, null))
                            GgufModel.Write(plain, Tokenizer.Load(o.Model), GgmlType.F32, baseGguf, onTensor);
                        checks = VerifyGguf(o, baseGguf, tmp, "f32", progress);
                    }
                    break;
                default:
                    Directory.CreateDirectory(tmp);
                    string gguf = Path.Combine(tmp, "model.gguf");
                    WriteGguf(weights, quant, gguf, temps, onTensor, progress);
                    var model = Ollama.Modelfile(o.Model, "./model.gguf");
                    AtomicFile.WriteAllText(Path.Combine(tmp, "Modelfile"), model.Text);
                    checks = o.Verify ? [.. VerifyGguf(o, gguf, null, quant, progress), .. model.Checks] : [];
                    break;
            }
            if (File.Exists(output)) File.Delete(output);
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
            if (Directory.Exists(tmp)) Directory.Move(tmp, output); else File.Move(tmp, output);
            long bytes = Directory.Exists(output) ? new DirectoryInfo(output).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : new FileInfo(output).Length;
            return new ExportResult(output, bytes, clock.Elapsed.TotalSeconds, checks, RunHint(o.Format, output, o.Model));
        }
        finally
        {
            foreach (var t in temps)
            {
                if (File.Exists(t)) File.Delete(t);
                if (Directory.Exists(t)) Directory.Delete(t, recursive: true);
            }
        }
    }

    static void WriteGguf(MergedWeights weights, string quant, string path, List<string> temps, Action<int, int> onTensor, Action<ExportProgress>? progress)
    {
        var tokenizer = Tokenizer.Load(weights.ModelDir);
        if (OwnTypes.TryGetValue(quant, out var type))
        {
            GgufModel.Write(weights, tokenizer, type, path, onTensor);
            return;
        }
        // Other types go through llama.cpp's quantizer, from a GGUF in the checkpoint's own precision.
        string source = $"{path}.source-{Guid.NewGuid():N}.gguf";
        temps.Add(source);
        var sourceType = weights.StoredType switch { ScalarType.BFloat16 => GgmlType.BF16, ScalarType.Float16 => GgmlType.F16, _ => GgmlType.F32 };
        GgufModel.Write(weights, tokenizer, sourceType, source, onTensor);
        progress?.Invoke(new ExportProgress($"quantizing to {quant} with llama.cpp"));
        string quantized = $"{path}.quantized-{Guid.NewGuid():N}";
        temps.Add(quantized);
        LlamaCpp.Quantize(source, quantized, quant);
        File.Delete(source);
        File.Move(quantized, path);
    }

    static List<string> VerifyGguf(ExportOptions o, string gguf, string? lora, string quant, Action<ExportProgress>? progress)
    {
        progress?.Invoke(new ExportProgress("verifying in llama.cpp"));
        using var ours = PretrainedModel.Load(o.Model, "cpu", "float32", o.Adapter);
        using var theirs = LlamaCpp.Load(gguf, lora, contextLength: 512);
        return ExportVerifier.Verify(ours, theirs, Tolerance.For(quant), o.VerifySteps);
    }

    /// <summary>The merged checkpoint against base + adapter in our engine: same logits on a chat prompt.</summary>
    static List<string> VerifyMerged(ExportOptions o, string dir, Action<ExportProgress>? progress)
    {
        progress?.Invoke(new ExportProgress("verifying the merged checkpoint"));
        using var reference = PretrainedModel.Load(o.Model, "cpu", "float32", o.Adapter);
        using var merged = PretrainedModel.Load(dir, "cpu", "float32");
        int[] prompt = reference.ChatTemplate is not null ? reference.EncodeChat(ExportVerifier.ProbeConversations[1]) : reference.EncodeText(ExportVerifier.ProbeTexts[1]);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(prompt.Select(i => (long)i).ToArray(), int64).unsqueeze(0);
        double diff = (reference.CausalLM.Forward(ids) - merged.CausalLM.Forward(ids)).abs().max().item<float>();
        // bf16 storage rounds each merged weight by 2^-8 relative; fp32 storage only reorders sums.
        double tolerance = merged.CausalLM.Config.DType is "bfloat16" or "float16" ? 0.5 : 1e-3;
        if (diff > tolerance)
            throw new SharpTuneException($"export verification failed: the merged checkpoint's logits differ from base + adapter by up to {diff:0.####} (tolerance {tolerance}) (--no-verify skips this check)");
        return [$"merged checkpoint: logits equal base + adapter within {diff:G3} (tolerance {tolerance}) on a {prompt.Length}-token prompt"];
    }

    static string RunHint(string format, string output, string model) => format switch
    {
        "hf" => $"run it: sharptune chat --model {output}   (or transformers' AutoModelForCausalLM.from_pretrained(\"{output}\"))",
        "gguf" => $"run it: llama-cli -m {output} -cnv   (or llama-server -m {output} --jinja)",
        "gguf-lora" => $"run it: llama-cli -m BASE.gguf --lora {output} -cnv   (BASE.gguf: sharptune export --model {model} --format gguf)",
        _ => $"run it: ollama create {OllamaName(output)} -f {Path.Combine(output, "Modelfile")} && ollama run {OllamaName(output)}",
    };

    static string OllamaName(string dir) => new string(Path.GetFileName(dir).ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray()) is { Length: > 0 } n ? n : "sharptune-model";
}
