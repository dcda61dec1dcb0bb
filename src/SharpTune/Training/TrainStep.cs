using SharpTune.Data;
using SharpTune.Distributed;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>One optimizer step of LoRA training: forward and backward of each micro-batch (the loss normalized by
/// the tokens scored across all of them), global gradient clipping, AdamW, zeroed gradients. Shared by the trainer
/// and the benchmarks; no host sync inside. Data-parallel: each rank runs its share of the step's micro-batches with the
/// loss divided by the tokens scored on all ranks, so that one sum all-reduce of the flat gradient buffer gives every
/// rank the gradient one process would have accumulated over all of them.</summary>
public static class TrainStep
{
    /// <param name="scoredTotal">tokens scored in the whole step, on all ranks (default: those of <paramref name="micro"/>)</param>
    /// <param name="collective">the ranks of a data-parallel run (null or world size 1: this process alone)</param>
    /// <returns>the summed loss of this rank's micro-batches and the gradient norm before clipping (device scalars), and the tokens scored</returns>
    public static (Tensor LossSum, Tensor GradNorm, int Scored) Run(CausalLM model, IAdapter adapter, IOptimizer optimizer,
        IReadOnlyList<Batch> micro, double lr, double maxGradNorm, int lossChunk, int? scoredTotal = null, ICollective? collective = null)
    {
        StepTrace.Mark("between steps");
        int scored = scoredTotal ?? micro.Sum(ScoredTokens);
        var lossSum = zeros([], float32, model.Device);
        adapter.BeginStep(model.DType);
        try
        {
            foreach (var b in micro)
            {
                using var scope = NewDisposeScope();
                var d = Upload(b, model.Device);
                StepTrace.Mark("upload");
                lossSum.add_(CausalLoss.ForwardBackward(model, d.Ids, d.Labels, Math.Max(1, scored), d.Positions, documents: d.Documents, chunk: lossChunk));
                model.Checkpointing?.AfterBackward();
                adapter.CollectGradients();
                StepTrace.Mark("after backward, collect");
            }
        }
        finally { adapter.EndStep(); }
        // One all-reduce of the whole flat buffer after the backward: LoRA gradients are small (tens of MB), so overlapping
        // per-layer buckets with the backward would save well under a millisecond per step on NVLink.
        if (collective is { WorldSize: > 1 }) collective.AllReduce(adapter.Gradients);
        var gradNorm = ClipGradients(adapter, maxGradNorm);   // after the all-reduce: every rank clips the same global gradient
        StepTrace.Mark("clip");
        optimizer.Step(lr);
        StepTrace.Mark("optimizer");
        optimizer.ZeroGrad();
        StepTrace.Mark("zero grad");
        StepTrace.Flush();
        return (lossSum, gradNorm, scored);
    }

    /// <summary>Tokens whose next token is scored: labels after the first position of each row.</summary>
    public static int ScoredTokens(Batch b)
    {
        int count = 0;
        for (int r = 0; r < b.Size; r++)
            for (int t = 1; t < b.Length; t++)
                if (b.Labels[r * b.Length + t] != CausalLoss.IgnoreIndex) count++;
        return count;
    }

    /// <summary>A batch's tensors on the device: <see cref="Documents"/> is set when some row holds several examples
    /// (attention then stays within each); rows of one example each need nothing, since causal attention never
    /// looks at the padding that follows them.</summary>
    public sealed record DeviceBatch(Tensor Ids, Tensor Labels, Tensor Positions, PackedDocuments? Documents);

    /// <summary>Copies a batch to the device without waiting for it: from pinned host memory, asynchronously on
    /// CUDA, so that the host goes on queueing work instead of draining the GPU at every batch.</summary>
    public static DeviceBatch Upload(Batch b, Device device)
    {
        long[] shape = [b.Size, b.Length];
        var ids = Copy(tensor(b.InputIds, shape), device);
        var labels = Copy(tensor(b.Labels, shape), device);
        var positions = Copy(tensor(b.PositionIds, shape), device);
        PackedDocuments? documents = null;
        if (b.CuSeqLens.Length - 1 > b.Size)
        {
            var lengths = Enumerable.Range(0, b.Size).Select(r => RowExampleLengths(b, r)).ToList();
            var (cu, max) = PackedDocuments.Layout(b.Size, b.Length, lengths);
            documents = new PackedDocuments(Copy(tensor(cu, int32), device), max);
        }
        return new DeviceBatch(ids, labels, positions, documents);
    }

    /// <summary>A host tensor on the device; on CUDA through pinned memory with a non-blocking copy (the pinned
    /// block is not reused before the copy has run: libtorch's host allocator records it).</summary>
    static Tensor Copy(Tensor host, Device device)
    {
        if (device.type == DeviceType.CPU) return host;
        using var pinned = host.pin_memory();
        host.Dispose();
        return pinned.to(device, non_blocking: true);
    }

    static int[] RowExampleLengths(Batch b, int row)
    {
        var lengths = new List<int>();
        int start = row * b.Length, run = 0;
        long segment = b.SegmentIds[start];
        for (int t = 0; t < b.Length; t++)
        {
            long s = b.SegmentIds[start + t];
            if (s == 0) break;   // padding from here on
            if (s != segment) { lengths.Add(run); run = 0; segment = s; }
            run++;
        }
        if (run > 0) lengths.Add(run);
        return lengths.ToArray();
    }

    /// <summary>Batch arrays as device tensors with a block-diagonal causal mask when rows hold several examples
    /// (or are padded): the explicit-mask form of <see cref="Upload"/>, for callers that need the mask itself.</summary>
    public static (Tensor Ids, Tensor Labels, Tensor Positions, Tensor? Mask) ToDevice(Batch b, Device device)
    {
        long[] shape = [b.Size, b.Length];
        var ids = tensor(b.InputIds, shape, device: device);
        var labels = tensor(b.Labels, shape, device: device);
        var positions = tensor(b.PositionIds, shape, device: device);
        Tensor? mask = null;
        if (b.MaxExampleLength < b.Length || b.CuSeqLens.Length - 1 > b.Size)
        {
            // Packed rows: a token sees earlier tokens of its own example only; padding sees itself (no empty softmax row).
            var seg = tensor(b.SegmentIds, shape, device: device);
            var same = seg.unsqueeze(2) == seg.unsqueeze(1);                                     // [B, T, T]
            var causal = ones([b.Length, b.Length], ScalarType.Bool, device).tril();
            var self = eye(b.Length, dtype: ScalarType.Bool, device: device);
            mask = (same & causal | self).unsqueeze(1);                                          // [B, 1, T, T]
        }
        return (ids, labels, positions, mask);
    }

    /// <summary>Scales gradients so that their global L2 norm is at most max_grad_norm; returns the norm before
    /// clipping as a device scalar (no host sync).</summary>
    static Tensor ClipGradients(IAdapter adapter, double maxGradNorm)
    {
        var norm = adapter.Gradients.norm();
        if (maxGradNorm > 0) adapter.Gradients.mul_((maxGradNorm / (norm + 1e-6)).clamp_max(1.0));
        return norm;
    }

}
