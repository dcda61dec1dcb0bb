using SharpTune.Models;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Training;

/// <summary>
/// Next-token cross-entropy, computed so that full fp32 logits [B·T, V] never exist: the trunk runs once,
/// then lm_head + cross-entropy + backward run per chunk of tokens into the hidden states' gradient, and the
/// trunk's backward runs once with it. For a 150k vocabulary the logits are the largest tensor of a step.
/// </summary>
public static class CausalLoss
{
    public const long IgnoreIndex = -100;

    /// <summary>Labels shifted left by one (position t is scored on the token at t+1), -100 at the end. [B, T]</summary>
    public static Tensor ShiftLabels(Tensor labels)
    {
        long T = labels.shape[1];
        var shifted = full_like(labels, IgnoreIndex);
        if (T > 1) shifted.narrow(1, 0, T - 1).copy_(labels.narrow(1, 1, T - 1));
        return shifted;
    }

    /// <summary>Forward and backward of sum(CE over scored tokens) / <paramref name="normalizer"/>; returns the
    /// summed (not normalized) loss as a detached scalar tensor on the model's device (no host sync).</summary>
    /// <param name="normalizer">tokens scored across the whole optimizer step (all micro-batches), so that
    /// gradient accumulation gives the same gradient as one large batch</param>
    /// <param name="headSlice">rows of a compressed lm_head expanded at a time (0: chosen from the chunk)</param>
    public static Tensor ForwardBackward(CausalLM model, Tensor ids, Tensor labels, double normalizer,
        Tensor? positions = null, Tensor? mask = null, long chunk = 1024, PackedDocuments? documents = null, long headSlice = 0)
    {
        var hidden = model.Hidden(ids, positions, mask: mask, documents: documents);   // [B, T, H], part of the autograd graph
        StepTrace.Mark("trunk forward (last layer to norm)");
        var target = ShiftLabels(labels).view(-1);
        long n = target.shape[0], h = hidden.shape[^1];
        var flat = hidden.detach().view(n, h);
        var grad = zeros_like(flat);
        var total = zeros([], float32, model.Device);
        using (no_grad())
        {
            for (long start = 0; start < n; start += chunk)
            {
                using var scope = NewDisposeScope();
                long len = Math.Min(chunk, n - start);
                var piece = flat.narrow(0, start, len);
                if (model.CompressedHead is not null)
                {
                    bool fused = SlicedKernelsServe(piece.device, piece.dtype);
                    var (sliced, gradPiece) = SlicedCrossEntropy(model.HeadRows, model.CompressedHead.OutFeatures, piece, target.narrow(0, start, len),
                        normalizer, headSlice > 0 ? headSlice : DefaultHeadSlice(len, fused), fused);
                    grad.narrow(0, start, len).copy_(gradPiece);
                    total.add_(sliced);
                    continue;
                }
                var (loss, gradLogits) = CrossEntropyWithGradient(F.linear(piece, model.LmHead), target.narrow(0, start, len), normalizer);
                grad.narrow(0, start, len).copy_(gradLogits.matmul(model.LmHead));   // [len, V] · [V, H]
                total.add_(loss);
            }
        }
        StepTrace.Mark("loss chunks");
        if (hidden.requires_grad) autograd.backward([hidden], [grad.view(hidden.shape)]);
        StepTrace.Mark("backward tail");
        hidden.Dispose(); flat.Dispose(); grad.Dispose(); target.Dispose();
        return total;
    }

    /// <summary>At most this many rows of a compressed lm_head are expanded at a time: 16,384 × 4,096 bf16 is 128 MiB.</summary>
    const long HeadSlice = 16_384;

    /// <summary>x [N, H] · lm_headᵀ → [N, V] in x's dtype (evaluation). A compressed head is expanded one slice of rows at a
    /// time into the logits' columns, so that its dense form never exists whole.</summary>
    public static Tensor Logits(CausalLM model, Tensor x, long sliceRows = HeadSlice)
    {
        if (model.CompressedHead is null) return F.linear(x, model.LmHead);
        using var scope = NewDisposeScope();
        long vocab = model.CompressedHead.OutFeatures;
        var logits = empty([x.shape[0], vocab], x.dtype, x.device);
        for (long start = 0; start < vocab; start += sliceRows)
        {
            using var slice = NewDisposeScope();
            long count = Math.Min(sliceRows, vocab - start);
            logits.narrow(1, start, count).copy_(F.linear(x, model.HeadRows(start, count)));
        }
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>The loss of one chunk of tokens x [N, H] through a compressed lm_head, and the gradient of x, without the
    /// chunk's logits over the whole vocabulary or the dense head ever existing: two passes over slices of the head's
    /// rows, each slice expanded, multiplied and freed. The first keeps a running logsumexp per token (max and rescaled
    /// sum) and picks the target's logit from the slice that holds it; the second recomputes each slice's logits and
    /// adds (softmax − onehot)/normalizer · W_slice into the gradient (in fp32, rounded once). The same quantities as
    /// <see cref="CrossEntropyWithGradient"/>; the head is expanded twice per chunk, so large chunks cost fewer
    /// expansions, and memory is set by <paramref name="sliceRows"/> × N, not by the vocabulary.</summary>
    public static (Tensor Loss, Tensor GradX) SlicedCrossEntropy(CausalLM model, Tensor x, Tensor target, double normalizer, long sliceRows) =>
        SlicedCrossEntropy(model.HeadRows, model.CompressedHead?.OutFeatures ?? model.LmHead.shape[0], x, target, normalizer, sliceRows,
            SlicedKernelsServe(x.device, x.dtype));

    /// <summary><see cref="SlicedCrossEntropy(CausalLM, Tensor, Tensor, double, long)"/> over a head read through
    /// <paramref name="headRows"/>(start, count). <paramref name="fused"/> (CUDA, bf16/fp16): each slice's logits stay in
    /// x's dtype and one kernel per slice and pass does the running logsumexp (<see cref="TrainingKernels.SlicedLse"/>) or
    /// writes the gradient over them (<see cref="TrainingKernels.SlicedSoftmaxGradInPlace"/>): per slice 3 launches in the
    /// first pass and 5 in the second (expansion, product, kernel, and the gradient's product and sum), where the op-by-op
    /// form takes about 12 each, on an fp32 copy of the logits.</summary>
    internal static (Tensor Loss, Tensor GradX) SlicedCrossEntropy(Func<long, long, Tensor> headRows, long vocab, Tensor x, Tensor target,
        double normalizer, long sliceRows, bool fused)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var scored = (target != IgnoreIndex).to(float32);                         // [N]
        var index = target.clamp_min(0);                                          // [N], a valid column on ignored rows (-100)
        var max = full([n], float.NegativeInfinity, float32, x.device);
        var sum = zeros([n], float32, x.device);
        var picked = zeros([n], float32, x.device);
        var targets = fused ? target.contiguous() : index;
        for (long start = 0; start < vocab; start += sliceRows)
        {
            using var slice = NewDisposeScope();
            long count = Math.Min(sliceRows, vocab - start);
            var logits = F.linear(x, headRows(start, count));                    // [N, count]
            if (fused)
            {
                TrainingKernels.SlicedLse(logits, targets, start, max, sum, picked);
                continue;
            }
            var l = logits.to(float32);
            var newMax = maximum(max, l.amax([1]));
            sum.mul_((max - newMax).exp_()).add_((l - newMax.unsqueeze(1)).exp_().sum(1));
            max.copy_(newMax);
            var (inSlice, local) = SliceColumn(index, start, count);
            picked.add_(l.gather(1, local.unsqueeze(1)).squeeze(1) * inSlice);
        }
        var lse = max + sum.log();
        var loss = ((lse - picked) * scored).sum();
        var weight = (scored / normalizer).unsqueeze(1);                          // [N, 1]
        var grad = zeros([n, x.shape[1]], float32, x.device);
        for (long start = 0; start < vocab; start += sliceRows)
        {
            using var slice = NewDisposeScope();
            long count = Math.Min(sliceRows, vocab - start);
            var w = headRows(start, count);
            if (fused)
            {
                var g = F.linear(x, w);
                TrainingKernels.SlicedSoftmaxGradInPlace(g, targets, start, lse, normalizer);
                grad.add_(g.matmul(w));                                          // [N, count] · [count, H]
                continue;
            }
            var p = F.linear(x, w).to(float32).sub_(lse.unsqueeze(1)).exp_();    // softmax over this slice's columns
            var (inSlice, local) = SliceColumn(index, start, count);
            p.scatter_add_(1, local.unsqueeze(1), (-inSlice).unsqueeze(1));      // − onehot(target) where it is in the slice
            p.mul_(weight);
            grad.add_(p.to(x.dtype).matmul(w));                                  // [N, count] · [count, H]
        }
        return (loss.MoveToOuterDisposeScope(), grad.to(x.dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Head rows per slice when none is asked for: logits of N × rows values per slice, 2²³ in fp32 op by op
    /// (the logits, their exp and the bf16 product: ~80 MiB, with a 32 MiB head slice at N = 2048), 2²⁵ in bf16 fused
    /// (64 MiB and a 128 MiB head slice at N = 2048, 8 slices of a 128k vocabulary instead of 32); at most <see cref="HeadSlice"/>.</summary>
    static long DefaultHeadSlice(long tokens, bool fused) => Math.Clamp((fused ? 1L << 25 : 1L << 23) / tokens, 1024, HeadSlice);

    static readonly Lock SlicedGate = new();
    static readonly Dictionary<ScalarType, string?> SlicedUnavailable = [];   // per dtype: null once checked and in use
    static readonly Dictionary<ScalarType, string> SlicedCheck = [];          // per dtype: the check's differences

    /// <summary>One line for the run's log: how a compressed lm_head's loss runs for <paramref name="dtype"/> activations.</summary>
    public static string DescribeSlicedKernels(Device device, ScalarType dtype) => SlicedKernelsServe(device, dtype)
        ? $"compressed lm_head's loss: fused CUDA kernels per head slice ({SlicedCheck[dtype]})"
        : $"compressed lm_head's loss: op by op per head slice ({SlicedUnavailable.GetValueOrDefault(dtype) ?? "needs CUDA and bf16 or fp16"})";

    /// <summary>Whether the sliced loss takes its fused kernels for <paramref name="dtype"/> activations on
    /// <paramref name="device"/>: CUDA, bf16 or fp16, the extension loaded and, once per process and dtype, in agreement
    /// with the op-by-op form (<see cref="CheckSlicedKernels"/>).</summary>
    static bool SlicedKernelsServe(Device device, ScalarType dtype)
    {
        if (device.type != DeviceType.CUDA || dtype is not (ScalarType.BFloat16 or ScalarType.Float16)) return false;
        lock (SlicedGate)
        {
            if (!SlicedUnavailable.TryGetValue(dtype, out var why))
                SlicedUnavailable[dtype] = why = TrainingKernels.Loaded(device) ? CheckSlicedKernels(device, dtype) : TrainingKernels.LoadFailure;
            return why is null;
        }
    }

    /// <summary>Null when the fused sliced loss agrees with the op-by-op form, else what differs: 37 tokens (5 not scored,
    /// targets on slice edges and in the partial last slice) through a head of 1,003 rows × 64 in slices of 300. The same
    /// formula in the same fp32 quantities; only the order of the log-sum-exp's fp32 sums differs (~1e-7 relative), and
    /// through it a gradient value may round to the neighbouring bf16 one: bounds 1e-5 relative on the loss and 1e-2
    /// relative in norm on the gradient, where a wrong formula or slice offset is off by order 1. Deterministic inputs.</summary>
    static string? CheckSlicedKernels(Device device, ScalarType dtype)
    {
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            const long tokens = 37, hidden = 64, vocab = 1003;
            var x = ((arange(tokens * hidden, dtype: float32, device: device).view(tokens, hidden) * 0.37).sin() * 2).to(dtype);
            var head = ((arange(vocab * hidden, dtype: float32, device: device).view(vocab, hidden) * 0.013).cos() * 0.5).to(dtype);
            var target = tensor(Enumerable.Range(0, (int)tokens).Select(i => i % 7 == 3 ? IgnoreIndex : new long[] { 0, 299, 300, 599, 600, 1002 }[i % 6] + i % 2)
                .Select(t => Math.Min(t, vocab - 1)).ToArray(), device: device);
            Tensor Rows(long start, long count) => head.narrow(0, start, count);
            var (fusedLoss, fusedGrad) = SlicedCrossEntropy(Rows, vocab, x, target, 11, 300, fused: true);
            var (stockLoss, stockGrad) = SlicedCrossEntropy(Rows, vocab, x, target, 11, 300, fused: false);
            double loss = Math.Abs(fusedLoss.item<float>() - stockLoss.item<float>()) / Math.Abs(stockLoss.item<float>());
            double grad = ((fusedGrad.to(float32) - stockGrad.to(float32)).norm() / stockGrad.to(float32).norm()).item<float>();
            SlicedCheck[dtype] = $"checked against op by op, relative error: loss {loss:E1}, gradient {grad:E1}";
            return loss < 1e-5 && grad < 1e-2 ? null : $"the fused sliced loss disagrees with the op-by-op form ({SlicedCheck[dtype]})";
        }
        catch (Exception e)
        {
            return $"the fused sliced loss is not usable here ({ErrorText.Message(e.Message, 200)})";
        }
    }

    /// <summary>For targets [N]: 1 where the target's column lies in [start, start + count) (fp32), and its column there
    /// (any valid one elsewhere).</summary>
    static (Tensor InSlice, Tensor Local) SliceColumn(Tensor index, long start, long count) =>
        (((index >= start) & (index < start + count)).to(float32), (index - start).clamp(0, count - 1));

    /// <summary>sum(CE over scored tokens) of one chunk's logits [N, V] and its gradient with respect to them, divided
    /// by <paramref name="normalizer"/>, in the logits' dtype: (softmax − onehot(target)) / normalizer on scored rows, 0 on
    /// the others. What autograd computes through cross_entropy over the logits in fp32, written out so that a chunk
    /// holds one fp32 [N, V] tensor (turned into the softmax in place) instead of autograd's four (fp32 logits,
    /// log-softmax, and the gradients of both): chunks of 256 tokens of a 128k vocabulary need 0.2 GB, not 0.5.
    /// On CUDA in bf16/fp16 one fused kernel computes the same quantities and writes the gradient over the logits
    /// (<see cref="TrainingKernels.CrossEntropyInPlace"/>) and returns them: the chunk then holds only its logits in their own
    /// dtype. Either way the caller's logits are no longer its logits afterwards.</summary>
    public static (Tensor Loss, Tensor GradLogits) CrossEntropyWithGradient(Tensor logits, Tensor target, double normalizer)
    {
        using var scope = NewDisposeScope();
        if (logits.is_contiguous() && TrainingKernels.Available(logits.device, logits.dtype))
        {
            var rowLoss = TrainingKernels.CrossEntropyInPlace(logits, target.contiguous(), normalizer);
            return (rowLoss.sum().MoveToOuterDisposeScope(), logits);   // the caller's tensor, now the gradient
        }
        var scored = (target != IgnoreIndex).to(float32);                         // [N], 1 on scored rows
        var index = target.clamp_min(0).unsqueeze(1);                             // [N, 1], a valid column on ignored rows (-100)
        var dtype = logits.dtype;
        var p = logits.to(float32);
        if (!ReferenceEquals(p, logits)) logits.Dispose();                        // the fp32 copy is all that is kept
        var lse = p.logsumexp(1, keepdim: true);                                  // [N, 1]
        var picked = p.gather(1, index);                                          // [N, 1]
        var loss = ((lse - picked).squeeze(1) * scored).sum();
        var weight = (scored / normalizer).unsqueeze(1);                          // [N, 1]
        p.sub_(lse).exp_();                                                       // softmax, in place
        p.scatter_add_(1, index, full_like(picked, -1.0f));                       // − onehot(target)
        p.mul_(weight);
        var grad = p.to(dtype);
        return (loss.MoveToOuterDisposeScope(), grad.MoveToOuterDisposeScope());
    }

    /// <summary>Summed loss and the number of scored tokens, without gradients (evaluation).</summary>
    public static (Tensor Sum, long Count) Evaluate(CausalLM model, Tensor ids, Tensor labels, Tensor? positions = null, Tensor? mask = null, long chunk = 1024,
        PackedDocuments? documents = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var hidden = model.Hidden(ids, positions, mask: mask, documents: documents);
        var target = ShiftLabels(labels).view(-1);
        var flat = hidden.view(target.shape[0], hidden.shape[^1]);
        var total = zeros([], float32, model.Device);
        for (long start = 0; start < target.shape[0]; start += chunk)
        {
            using var chunkScope = NewDisposeScope();   // one chunk's logits alive at a time
            long len = Math.Min(chunk, target.shape[0] - start);
            var logits = Logits(model, flat.narrow(0, start, len)).to(float32);
            total.add_(F.cross_entropy(logits, target.narrow(0, start, len), ignore_index: IgnoreIndex, reduction: nn.Reduction.Sum));
        }
        long count = (target != IgnoreIndex).sum().item<long>();
        return (total.MoveToOuterDisposeScope(), count);
    }
}
