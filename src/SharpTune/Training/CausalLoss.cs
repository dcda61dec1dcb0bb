using SharpTune.Models;
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
    public static Tensor ForwardBackward(CausalLM model, Tensor ids, Tensor labels, double normalizer,
        Tensor? positions = null, Tensor? mask = null, long chunk = 1024, PackedDocuments? documents = null)
    {
        var hidden = model.Hidden(ids, positions, mask: mask, documents: documents);   // [B, T, H], part of the autograd graph
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
                var (loss, gradLogits) = CrossEntropyWithGradient(Logits(model, piece), target.narrow(0, start, len), normalizer);
                grad.narrow(0, start, len).copy_(InputGradient(model, gradLogits));
                total.add_(loss);
            }
        }
        if (hidden.requires_grad) autograd.backward([hidden], [grad.view(hidden.shape)]);
        hidden.Dispose(); flat.Dispose(); grad.Dispose(); target.Dispose();
        return total;
    }

    /// <summary>Rows of lm_head expanded at a time from a compressed head: 16,384 × 4,096 bf16 is 128 MiB.</summary>
    const long HeadSlice = 16_384;

    /// <summary>x [N, H] · lm_headᵀ → [N, V] in x's dtype. A compressed head is expanded one slice of rows at a time into
    /// the logits' columns, so that its dense form never exists whole.</summary>
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

    /// <summary>The input gradient of <see cref="Logits"/>: grad [N, V] · lm_head → [N, H], a compressed head slice by slice
    /// (the slices' products added in fp32).</summary>
    public static Tensor InputGradient(CausalLM model, Tensor gradLogits, long sliceRows = HeadSlice)
    {
        if (model.CompressedHead is null) return gradLogits.matmul(model.LmHead);
        using var scope = NewDisposeScope();
        long vocab = model.CompressedHead.OutFeatures;
        Tensor? sum = null;
        for (long start = 0; start < vocab; start += sliceRows)
        {
            using var slice = NewDisposeScope();
            long count = Math.Min(sliceRows, vocab - start);
            var part = gradLogits.narrow(1, start, count).matmul(model.HeadRows(start, count)).to(float32);
            if (sum is null) sum = part.MoveToOuterDisposeScope();
            else sum.add_(part);
        }
        return sum!.to(gradLogits.dtype).MoveToOuterDisposeScope();   // the slices summed in fp32, rounded once
    }

    /// <summary>sum(CE over scored tokens) of one chunk's logits [N, V] and its gradient with respect to them, divided
    /// by <paramref name="normalizer"/>, in the logits' dtype: (softmax − onehot(target)) / normalizer on scored rows, 0 on
    /// the others. What autograd computes through cross_entropy over the logits in fp32, written out so that a chunk
    /// holds one fp32 [N, V] tensor (turned into the softmax in place) instead of autograd's four (fp32 logits,
    /// log-softmax, and the gradients of both): chunks of 256 tokens of a 128k vocabulary need 0.2 GB, not 0.5.</summary>
    public static (Tensor Loss, Tensor GradLogits) CrossEntropyWithGradient(Tensor logits, Tensor target, double normalizer)
    {
        using var scope = NewDisposeScope();
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
