using System.Diagnostics;
using System.Text.Json;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Runtime;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Bench;

/// <summary>GPU checks and memory accounting for QLoRA (docs/quantization.md).</summary>
static class QLoraBenches
{
    static void Emit(object result) => Console.WriteLine(JsonSerializer.Serialize(result));
    const double GiB = 1024.0 * 1024 * 1024;
    static double G(long bytes) => Math.Round(bytes / GiB, 3);
    static bool Same(Tensor x, Tensor y) => x.shape.SequenceEqual(y.shape) && x.ne(y).sum().item<long>() == 0;

    /// <summary>The fused dequantization kernels against the stock-op path, bit for bit (torch.equal), for every format,
    /// with and without double quantization, in bf16, fp16 and fp32; the host-row gather against index_select; the
    /// quantized linear's input gradient against autograd's own linear; and the kernel's speed.</summary>
    public static int DequantCheck(Args a)
    {
        var device = TorchRuntime.Initialize(a.Get("device", "cuda"));
        if (!QuantKernels.Available(device)) { Emit(new { bench = "dequant_check", error = QuantKernels.Unavailable }); return 1; }
        manual_seed(0);
        int failures = 0;
        foreach (var (rows, cols) in new (long, long)[] { (4096, 4096), (1024, 4096), (14336, 4096), (64, 96) })
            foreach (var format in new[] { "nf4", "fp4" })
                foreach (bool dq in new[] { true, false })
                {
                    using var scope = NewDisposeScope();
                    var dense = randn([rows, cols], float32, device) * 0.02;
                    using var w = FourBitWeight.Quantize("check", dense, format, doubleQuantize: dq);
                    foreach (var dtype in new[] { bfloat16, float16, float32 })
                    {
                        var fused = w.Dense(dtype);
                        var stock = w.DenseStock(dtype);
                        long differing = fused.ne(stock).sum().item<long>();
                        if (differing != 0) failures++;
                        Emit(new { bench = "dequant_check", kind = format, double_quant = dq, rows, cols, dtype = dtype.ToString(), bit_equal = differing == 0, differing });
                    }
                }
        foreach (var dtype in new[] { bfloat16, float16, float32 })
        {
            using var scope = NewDisposeScope();
            using var w = Int8Weight.Quantize(randn([1024, 4096], float32, device) * 0.02);
            long differing = w.Dense(dtype).ne(w.DenseStock(dtype)).sum().item<long>();
            if (differing != 0) failures++;
            Emit(new { bench = "dequant_check", kind = "int8", rows = 1024, cols = 4096, dtype = dtype.ToString(), bit_equal = differing == 0, differing });
        }
        using (var scope = NewDisposeScope())
        {
            var table = randn([1000, 4096], float32).to(bfloat16).pin_memory();
            var ids = randint(0, 1000, [777], int64, device);
            var gathered = QuantKernels.GatherHostRows(table, ids);
            bool equal = Same(gathered, table.index_select(0, ids.cpu()).to(device));
            if (!equal) failures++;
            Emit(new { bench = "host_gather_check", rows = 777, bit_equal = equal });
        }
        using (var scope = NewDisposeScope())
        {
            // grad_x through FrozenLinear (dequantize again in backward) against autograd's linear over the same dense weight
            using var w = FourBitWeight.Quantize("check", randn([2048, 1024], float32, device) * 0.02, "nf4");
            var x0 = randn([3, 100, 1024], float32, device).to(bfloat16);
            var g = randn([3, 100, 2048], float32, device).to(bfloat16);
            var x1 = x0.detach().requires_grad_(true);
            var y1 = FrozenLinear.Apply(w, x1, null);
            y1.backward([g]);
            var x2 = x0.detach().requires_grad_(true);
            var y2 = F.linear(x2, w.DenseStock(bfloat16));
            y2.backward([g]);
            bool outEqual = Same(y1, y2), gradEqual = Same(x1.grad!, x2.grad!);
            double gradDiff = (x1.grad!.to(float32) - x2.grad!.to(float32)).abs().max().item<float>();
            if (!outEqual || gradDiff > 0.05) failures++;
            Emit(new { bench = "frozen_linear_check", output_bit_equal = outEqual, grad_bit_equal = gradEqual, grad_max_abs_diff = gradDiff });
        }
        using (var scope = NewDisposeScope())
        {
            using var w = FourBitWeight.Quantize("speed", randn([14336, 4096], float32, device) * 0.02, "nf4");
            double Time(Func<Tensor> f)
            {
                for (int i = 0; i < 3; i++) f().Dispose();
                torch.cuda.synchronize();
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < 20; i++) f().Dispose();
                torch.cuda.synchronize();
                return clock.Elapsed.TotalMilliseconds / 20;
            }
            double fused = Time(() => w.Dense(bfloat16)), stock = Time(() => w.DenseStock(bfloat16));
            double gbps = (w.StorageBytes + 14336.0 * 4096 * 2) / (fused / 1000) / 1e9;
            Emit(new { bench = "dequant_speed", shape = "14336x4096 nf4 -> bf16", fused_ms = Math.Round(fused, 3), stock_ms = Math.Round(stock, 3), fused_GBps = Math.Round(gbps) });
        }
        Emit(new { bench = "dequant_check_summary", failures });
        return failures == 0 ? 0 : 1;
    }

    /// <summary>Builds the CUDA extensions (QuantKernels, DeviceMemory) into the cache.</summary>
    public static int NativeBuild(Args a)
    {
        var device = TorchRuntime.Initialize("cuda");
        using (var first = zeros([1], float32, device)) torch.cuda.synchronize();
        string only = a.Get("only", "");
        bool quant = only == "memory" || QuantKernels.Available(device), memory = only == "quant" || DeviceMemory.Current() is not null;
        Emit(new { bench = "native_build", quant_kernels = quant ? "ok" : QuantKernels.Unavailable, device_memory = memory ? "ok" : DeviceMemory.Unavailable });
        return quant && memory ? 0 : 1;
    }

    /// <summary>Where a QLoRA training step's GPU memory goes, phase by phase, from the caching allocator's statistics:
    /// the loaded model (with the product's loaders), the adapters and optimizer, the trunk's forward (checkpoints kept),
    /// the loss chunks, the trunk's backward, the optimizer step; then whole steps (TrainStep.Run) for each loss chunk
    /// size with their speed, and steps at longer sequences.
    ///   bench qlora-memory --model DIR [--quantization nf4] [--optimizer adamw_8bit] [--seq 2048] [--chunks 1024]
    ///                      [--variants 1024,256,256o] [--offload] [--long 16384,32768] [--long-chunk 256]
    /// (variants: loss chunk sizes, "o" = checkpoints offloaded to the host; --offload: for the long sequences)</summary>
    public static int Memory(Args a)
    {
        var device = TorchRuntime.Initialize("cuda");
        string dir = a.Get("model", ""), kind = a.Get("quantization", "nf4");
        int seq = a.Int("seq", 2048);
        bool offload = a.Flag("offload");
        string Smi() => Process.Start(new ProcessStartInfo("nvidia-smi", "--query-gpu=memory.used --format=csv,noheader,nounits") { RedirectStandardOutput = true })!
            .StandardOutput.ReadToEnd().Trim().Split('\n')[0];
        void Phase(string name, object? extra = null)
        {
            torch.cuda.synchronize();
            var s = DeviceMemory.Current();
            Emit(new { bench = "qlora_memory", phase = name, allocated_GiB = s is null ? 0 : G(s.Allocated), peak_allocated_GiB = s is null ? 0 : G(s.PeakAllocated),
                reserved_GiB = s is null ? 0 : G(s.Reserved), peak_reserved_GiB = s is null ? 0 : G(s.PeakReserved), nvidia_smi_MiB = Smi(), extra });
            DeviceMemory.ResetPeak();
        }
        using (var first = zeros([1], float32, device)) torch.cuda.synchronize();   // the allocator starts with the first allocation
        if (DeviceMemory.Current() is null) Emit(new { bench = "qlora_memory", error = DeviceMemory.Unavailable });
        Phase("start (CUDA context)");

        using var model = PretrainedModel.Load(dir, "cuda", "auto", projections: WeightQuantization.For(kind, dir), hostEmbedding: WeightQuantization.HostEmbedding(kind));
        var lm = model.CausalLM;
        long projections = lm.Projections.Sum(p => p.Weight.StorageBytes);
        long embed = lm.Embed.NumberOfElements * lm.Embed.ElementSize, head = lm.Config.TieWordEmbeddings ? 0 : lm.LmHead.NumberOfElements * lm.LmHead.ElementSize;
        Phase("model loaded", new { projections_GiB = G(projections), embedding_GiB = G(embed), embedding_on = lm.Embed.device.ToString(), lm_head_GiB = G(head),
            dequantization = QuantKernels.Describe(device) });
        DeviceMemory.EmptyCache();
        Phase("after empty_cache");

        using var adapter = LoraAdapter.Attach(lm, new LoraOptions(Rank: 16, Alpha: 16), seed: 0);
        lm.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, offload: offload);
        IOptimizer optimizer = a.Get("optimizer", "adamw_8bit") == "adamw_8bit"
            ? new AdamW8bit([(adapter.Values, adapter.Gradients)]) : new AdamW([(adapter.Values, adapter.Gradients)]);
        Phase("adapters attached", new { lora_params = adapter.TrainableParameterCount });

        var rng = new Random(0);
        Batch RandomBatch(int length)
        {
            var ids = Enumerable.Range(0, length).Select(_ => rng.Next(3, lm.Config.VocabSize)).ToArray();
            return Batcher.Collate([new PackedSequence(ids, ids, Enumerable.Range(0, length).ToArray(), [length])], 0);
        }
        var batch = RandomBatch(seq);
        int chunk0 = a.Int("chunks", 1024);

        // One step, phase by phase (the same work as TrainStep.Run / CausalLoss.ForwardBackward, split to measure)
        using (var scope = NewDisposeScope())
        {
            var d = TrainStep.Upload(batch, device);
            lm.Checkpointing.BeginStep(0);
            var hidden = lm.Hidden(d.Ids, d.Positions);
            Phase("trunk forward (kept: checkpoints + hidden)");
            var target = CausalLoss.ShiftLabels(d.Labels).view(-1);
            long n = target.shape[0], h = hidden.shape[^1];
            var flat = hidden.detach().view(n, h);
            var grad = zeros_like(flat);
            for (long start = 0; start < n; start += chunk0)
            {
                using var chunkScope = NewDisposeScope();
                long len = Math.Min(chunk0, n - start);
                var piece = flat.narrow(0, start, len).detach().requires_grad_(true);
                var logits = F.linear(piece, lm.LmHead).to(float32);
                var loss = F.cross_entropy(logits, target.narrow(0, start, len), ignore_index: CausalLoss.IgnoreIndex, reduction: nn.Reduction.Sum);
                logits.Dispose();
                (loss / n).backward();
                grad.narrow(0, start, len).copy_(piece.grad!);
            }
            Phase($"loss chunks of {chunk0} tokens");
            autograd.backward([hidden], [grad.view(hidden.shape)]);
            lm.Checkpointing?.AfterBackward();
            Phase("trunk backward");
            optimizer.Step(2e-4);
            optimizer.ZeroGrad();
            Phase("optimizer step");
        }

        // Whole steps through the product's step function: loss chunk sizes, with and without offloaded checkpoints
        foreach (string variant in a.Get("variants", "1024,256,256o").Split(','))
        {
            int chunk = int.Parse(variant.TrimEnd('o'));
            bool off = variant.EndsWith('o');
            lm.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, offload: off);
            double seconds = 0;
            int steps = a.Int("steps", 3);
            for (int s = 0; s < steps + 1; s++)
            {
                torch.cuda.synchronize();
                var clock = Stopwatch.StartNew();
                using var scope = NewDisposeScope();
                lm.Checkpointing.BeginStep(s);
                var (loss, _, _) = TrainStep.Run(lm, adapter, optimizer, [batch], 2e-4, 1.0, chunk);
                loss.item<float>();
                if (s > 0) seconds += clock.Elapsed.TotalSeconds;
            }
            Phase($"train steps, loss chunk {chunk}{(off ? ", offloaded checkpoints" : "")}",
                new { seq, tokens_per_s = Math.Round(steps * seq / seconds), seconds_per_step = Math.Round(seconds / steps, 3) });
        }
        lm.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, offload: offload);
        int longChunk = a.Int("long-chunk", 256);

        foreach (int length in a.Get("long", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse))
        {
            var longBatch = RandomBatch(length);
            try
            {
                torch.cuda.synchronize();
                var clock = Stopwatch.StartNew();
                using var scope = NewDisposeScope();
                lm.Checkpointing.BeginStep(0);
                var (loss, _, _) = TrainStep.Run(lm, adapter, optimizer, [longBatch], 2e-4, 1.0, longChunk);
                loss.item<float>();
                Phase($"one step at {length} tokens", new { seconds = Math.Round(clock.Elapsed.TotalSeconds, 2), offload });
            }
            catch (Exception e)
            {
                Emit(new { bench = "qlora_memory", phase = $"one step at {length} tokens", error = e.Message.Split('\n')[0] });
                break;
            }
        }
        optimizer.Dispose();
        return 0;
    }
}
