using System.Diagnostics;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Runtime;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Bench;

static class Benches
{
    internal static void Emit(object result) => Console.WriteLine(JsonSerializer.Serialize(result));

    /// <summary>Batch-1 greedy decode with a KV cache on random weights of a real shape.</summary>
    public static int Decode(Args a)
    {
        var device = TorchRuntime.Initialize(a.Get("device", "cuda"));
        var config = Shapes.Get(a.Get("shape", "qwen1.5b"));
        var dtype = device.type == DeviceType.CPU ? float32 : bfloat16;
        torch.manual_seed(0);
        using var model = new CausalLM(config, device, dtype, (name, shape) =>
            (name.Contains("norm") ? ones(shape, dtype, device) : empty(shape, dtype, device).normal_(0, 0.02)).DetachFromDisposeScope());
        int prefill = a.Int("prefill", 128), newTokens = a.Int("gen", 128);
        var prompt = Enumerable.Range(0, prefill).Select(i => 1000 + i).ToArray();
        var generator = new TokenGenerator(model);
        generator.Generate([prompt], new GenerationOptions(MaxNewTokens: 8));   // warm-up
        var best = double.MaxValue;
        for (int r = 0; r < 3; r++)
        {
            generator.Generate([prompt], new GenerationOptions(MaxNewTokens: newTokens));
            best = Math.Min(best, generator.LastTimings!.DecodeSeconds / (generator.LastTimings.GeneratedTokens - 1));
        }
        long weightBytes = config.ParameterCount * 2;
        Emit(new
        {
            bench = "decode", shape = a.Get("shape", "qwen1.5b"), device = TorchRuntime.Description, prefill, gen = newTokens,
            tokens_per_s = 1 / best, ms_per_token = best * 1000, weight_bytes = weightBytes
        });
        return 0;
    }

    /// <summary>LoRA training steps (r=16 on all seven projections) on random weights and random tokens.</summary>
    public static int Train(Args a)
    {
        var device = TorchRuntime.Initialize(a.Get("device", "cuda"));
        var config = Shapes.Get(a.Get("shape", "qwen1.5b"));
        var dtype = device.type == DeviceType.CPU ? float32 : bfloat16;
        int seq = a.Int("seq", 2048), batch = a.Int("batch", 2), steps = a.Int("steps", 10), warmup = a.Int("warmup", 3);
        bool ckpt = a.Flag("ckpt");
        torch.manual_seed(0);
        using var model = new CausalLM(config, device, dtype, (name, shape) =>
            (name.Contains("norm") ? ones(shape, dtype, device) : empty(shape, dtype, device).normal_(0, 0.02)).DetachFromDisposeScope());
        using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 16, Alpha: 16), seed: 0);
        if (ckpt)
            model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf);
        using var optimizer = new AdamW([(adapter.Values, adapter.Gradients)]);
        var rng = new Random(0);
        Batch RandomBatch()
        {
            var rows = Enumerable.Range(0, batch).Select(_ =>
            {
                var ids = Enumerable.Range(0, seq).Select(_ => rng.Next(3, config.VocabSize)).ToArray();
                return new PackedSequence(ids, ids, Enumerable.Range(0, seq).ToArray(), [seq]);
            }).ToList();
            return Batcher.Collate(rows, 0);
        }
        var batches = Enumerable.Range(0, 4).Select(_ => RandomBatch()).ToList();
        double seconds = 0;
        float lastLoss = 0;
        for (int s = 0; s < warmup + steps; s++)
        {
            if (s == warmup) { Synchronize(device); seconds = 0; }
            var clock = Stopwatch.StartNew();
            using var scope = NewDisposeScope();
            var (loss, _, scored) = TrainStep.Run(model, adapter, optimizer, [batches[s % batches.Count]], 2e-4, 1.0, a.Int("chunk", 1024));
            lastLoss = loss.item<float>() / scored;
            if (s >= warmup) seconds += clock.Elapsed.TotalSeconds;
        }
        Emit(new
        {
            bench = "train_lora", shape = a.Get("shape", "qwen1.5b"), device = TorchRuntime.Description, seq, batch, steps,
            activation_checkpointing = ckpt, trainable = adapter.TrainableParameterCount, tokens_per_s = steps * batch * seq / seconds,
            seconds_per_step = seconds / steps, last_loss = lastLoss
        });
        return 0;
    }

    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
    }

    /// <summary>bf16 logits of the fixture models on the GPU against transformers' bf16 logits on the GPU.</summary>
    public static int Parity(Args a)
    {
        var device = TorchRuntime.Initialize(a.Get("device", "cuda"));
        int failures = 0;
        foreach (var dir in Directory.GetDirectories(a.Get("fixtures", "tests/SharpTune.Tests/Fixtures/models")).Order())
        {
            using var ckpt = ModelFolder.Open(dir);
            using var model = ckpt.LoadModel(device, bfloat16);
            using var reference = SafetensorsFile.Open(Path.Combine(dir, "logits.safetensors"));
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var ids = reference.Read("input_ids").to(device);
            var ours = model.Forward(ids).to(float32).cpu();
            var theirs = reference.Read("logits_bf16_cuda");
            var fp32 = reference.Read("logits_fp32");
            double maxDiff = (ours - theirs).abs().max().item<float>();
            double hfVsFp32 = (theirs - fp32).abs().max().item<float>();
            double oursVsFp32 = (ours - fp32).abs().max().item<float>();
            double argmaxAgree = (ours.argmax(-1) == theirs.argmax(-1)).to(float32).mean().item<float>();
            bool ok = maxDiff <= 0.05;
            if (!ok) failures++;
            Emit(new
            {
                bench = "parity_bf16", model = Path.GetFileName(dir), max_abs_diff_vs_hf_bf16 = maxDiff, hf_bf16_vs_fp32 = hfVsFp32,
                ours_bf16_vs_fp32 = oursVsFp32, argmax_agreement = argmaxAgree, tolerance = 0.05, ok
            });

            // A PEFT-made adapter, loaded by us on the GPU in bf16, against PEFT's fp32 logits with it.
            string peft = Path.Combine(dir, "peft_adapter");
            if (!Directory.Exists(peft)) continue;
            using var adapter = LoraAdapter.Load(peft, model);
            using var peftLogits = SafetensorsFile.Open(Path.Combine(peft, "logits.safetensors"));
            double adapterDiff = (model.Forward(ids).to(float32).cpu() - peftLogits.Read("logits_fp32")).abs().max().item<float>();
            bool adapterOk = adapterDiff <= 0.05;
            if (!adapterOk) failures++;
            Emit(new { bench = "peft_adapter_bf16", model = Path.GetFileName(dir), max_abs_diff_vs_peft_fp32 = adapterDiff, tolerance = 0.05, ok = adapterOk });
        }
        return failures == 0 ? 0 : 1;
    }

    /// <summary>Single-thread encode throughput of a tokenizer on a corpus (same corpus as HF's numbers in the fixtures).</summary>
    public static int Tokenize(Args a)
    {
        var r = TokenizerBenchmark.Run(a.Get("model", ""), a.Get("corpus", "tests/SharpTune.Tests/Fixtures/tokenizer/corpus.json.gz"), output: TextWriter.Null);
        Emit(new
        {
            bench = "tokenize", model = a.Get("model", ""), megabytes = r.Megabytes, tokens = r.Tokens, cold_mb_per_s = r.ColdMBps,
            warm_mb_per_s = r.WarmMBps, warm_tokens_per_s = r.WarmTokensPerSecond, batch_all_cores_mb_per_s = r.BatchMBps, cores = Environment.ProcessorCount
        });
        return 0;
    }

    /// <summary>Peak resident memory while loading a checkpoint on the CPU, against the weights' bytes.</summary>
    public static int Load(Args a)
    {
        TorchRuntime.Initialize("cpu");
        string dir = a.Get("model", "");
        long before = PeakRss();
        var clock = Stopwatch.StartNew();
        using var ckpt = ModelFolder.Open(dir);
        string dt = a.Get("dtype", "stored");
        var dtype = dt == "stored" ? SafetensorsFile.ScalarTypeOf(ckpt.StoredDTypes[0]) : ModelFolder.ResolveDType(dt, ckpt.Config, CPU);
        using var model = ckpt.LoadModel(CPU, dtype);
        long peak = PeakRss();
        Emit(new
        {
            bench = "load", model = dir, weight_bytes = ckpt.WeightBytes, rss_before = before, peak_rss = peak,
            peak_over_weights = (double)(peak - before) / ckpt.WeightBytes, seconds = clock.Elapsed.TotalSeconds
        });
        return 0;
    }

    static long PeakRss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }
}
