using System.Diagnostics;
using System.Text.Json;
using SharpTune.Demo;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Runtime;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Bench;

/// <summary>The host's cost of a checkpointed training step, on a model small enough that every kernel is cheap: the time
/// per step is then mostly the host issuing ops (TorchSharp's per-op overhead, custom autograd functions' managed
/// callbacks), and the tensors created per step count the ops. Dense and 4-bit bases, LoRA r=16 on all seven,
/// checkpointing of every layer, the MLP whole. Run it twice, with and without SHARPTUNE_HAND_BACKWARD=off, to compare
/// the compressed layers' backward by hand with autograd's form. "one-op" is a compressed weight whose expansion is one
/// op, as the fused CUDA kernel's is (on the CPU a 4-bit weight expands through about ten stock ops).
///   bench layer-host [--device cpu] [--seq 64] [--steps 30] [--hidden 256] [--layers 4]</summary>
static class LayerHostBench
{
    public static int Run(Args a)
    {
        var device = TorchRuntime.Initialize(a.Get("device", "cpu"));
        int seq = a.Int("seq", 64), steps = a.Int("steps", 30), hidden = a.Int("hidden", 256), layers = a.Int("layers", 4);
        var dtype = device.type == DeviceType.CUDA ? bfloat16 : float32;
        string dir = Path.Combine(Path.GetTempPath(), $"layer-host-{Environment.ProcessId}");
        TinyModel.Create(dir, new TinyModelOptions("LlamaForCausalLM", HiddenSize: hidden, Layers: layers, Heads: 4, KvHeads: 2,
            IntermediateSize: hidden * 7 / 2, Seed: 1));
        try
        {
            foreach (var kind in new[] { "none", "nf4", "one-op" })
            {
                using var ckpt = ModelFolder.Open(dir);
                using var model = ckpt.LoadModel(device, dtype, kind == "one-op"
                    ? (ProjectionLoader)((checkpoint, name, shape, dev, type) => new OneOpWeight(checkpoint.ReadRaw(name).to(type).to(dev).DetachFromDisposeScope()))
                    : WeightQuantization.For(kind, dir));
                using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 16, Alpha: 16), seed: 1);
                model.Checkpointing = new ActivationCheckpointing(adapter.TrainableOf, trainableOfProjection: adapter.TrainableOf);
                var ids = randint(3, model.Config.VocabSize, [1, seq], generator: new Generator(7)).to(device).DetachFromDisposeScope();
                double Step()
                {
                    var clock = Stopwatch.StartNew();
                    using (var scope = NewDisposeScope())
                    {
                        adapter.BeginStep(dtype);
                        CausalLoss.ForwardBackward(model, ids, ids, normalizer: seq);
                        model.Checkpointing!.AfterBackward();
                        adapter.CollectGradients();
                        adapter.EndStep();
                        if (device.type == DeviceType.CUDA) cuda.synchronize();
                    }
                    return clock.Elapsed.TotalMilliseconds;
                }
                for (int i = 0; i < 3; i++) Step();
                long created = DisposeScopeManager.Statistics.CreatedInScopeCount;
                var times = Enumerable.Range(0, steps).Select(_ => Step()).Order().ToList();
                long perStep = (DisposeScopeManager.Statistics.CreatedInScopeCount - created) / steps;
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    bench = "layer_host", device = device.type.ToString(), quantization = kind,
                    hand_backward = Environment.GetEnvironmentVariable(ActivationCheckpointing.HandBackwardSwitch) != "off",
                    layers, seq, median_ms_per_step = Math.Round(times[steps / 2], 2),
                    ms_per_layer = Math.Round(times[steps / 2] / layers, 3), tensors_per_layer_step = perStep / layers,
                }));
                ids.Dispose();
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
        return 0;
    }
}

/// <summary>A dense weight that computes like a compressed one (expanded for each product, FrozenLinear under autograd),
/// its expansion a single copy: the host's view of a 4-bit weight on the GPU.</summary>
sealed class OneOpWeight(Tensor dense) : IFrozenWeight
{
    public long OutFeatures => dense.shape[0];
    public long InFeatures => dense.shape[1];
    public long StorageBytes => dense.NumberOfElements * dense.ElementSize;
    public Tensor Dense(ScalarType dtype) => dense.to(dtype, copy: true);
    public Tensor Linear(Tensor x, Tensor? bias) => FrozenLinear.Apply(this, x, bias);
    public void Dispose() => dense.Dispose();
}
