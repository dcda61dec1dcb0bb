using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Activation checkpointing: a layer's forward keeps only its input; backward recomputes the layer with
/// gradients on and differentiates it. Activations of all layers are then never alive together, at the cost
/// of a second forward per layer. The layer's trainable tensors are passed as inputs of the autograd node so
/// that their gradients flow through it. With dropout, masks are reproduced by seeding both passes alike
/// (from the step and the call's index within it, so that a resumed run draws the same masks).
/// </summary>
/// <param name="reseed">true when the layers draw random numbers (LoRA dropout)</param>
/// <param name="offload">keep each layer's saved input in pinned host memory (copied out and back asynchronously)
/// instead of on the GPU: what stays on the GPU no longer grows with the number of layers (long sequences)</param>
/// <param name="layers">how many decoder layers, from the first, are recomputed; the others keep their activations
/// (each such layer saves its recomputation, about a third of its cost, for its activations' memory); 0 = all</param>
/// <param name="mlpChunk">tokens per piece of a recomputed layer's MLP; 0 = the whole sequence at once. The MLP treats
/// every token on its own, so backward can recompute and differentiate it piece by piece: its [T, intermediate]
/// tensors (the largest of a layer, three or four times the hidden width) then exist for one piece at a time.</param>
public sealed class ActivationCheckpointing(Func<DecoderLayer, IReadOnlyList<Tensor>> trainableOf, bool reseed = false, bool offload = false,
    int layers = 0, int mlpChunk = 0)
{
    internal Func<DecoderLayer, IReadOnlyList<Tensor>> TrainableOf { get; } = trainableOf;
    long _stepSeed, _calls;

    /// <summary>Whether the layer at <paramref name="index"/> is recomputed in backward.</summary>
    public bool Covers(int index) => layers <= 0 || index < layers;

    /// <summary>Call at the start of each optimizer step.</summary>
    public void BeginStep(long seed) => (_stepSeed, _calls) = (seed, 0);

    /// <summary>x (B, T, H) → (B, T, H), like <see cref="CausalLM.LayerForward"/> without a KV cache.</summary>
    public Tensor Run(CausalLM model, DecoderLayer layer, Tensor x, CausalLM.AttentionInputs attention)
    {
        var trainable = TrainableOf(layer);
        long? seed = reseed ? _stepSeed * 1_000_003 + _calls++ : null;
        var args = new List<object> { new LayerCall(model, layer, attention, seed, offload && x.device_type == DeviceType.CUDA, mlpChunk), x };
        args.AddRange(trainable);
        using var scope = NewDisposeScope();   // apply() allocates a spare output copy: let the scope free it
        return CheckpointedLayer.apply(args.ToArray())[0].MoveToOuterDisposeScope();
    }

    /// <summary>Frees the gradient tensors handed to autograd in the last backward; call after backward returns,
    /// and rethrows an error that happened inside it (an exception inside backward would abort the process).</summary>
    public static void AfterBackward() => CheckpointedLayer.AfterBackward();

    /// <summary>The non-tensor context of one call; the attention inputs' tensors (cos, sin, mask, document
    /// boundaries) travel as saved tensors, since the caller's handles are gone by the time backward runs.</summary>
    sealed record LayerCall(CausalLM Model, DecoderLayer Layer, CausalLM.AttentionInputs Attention, long? Seed, bool Offload, int MlpChunk)
    {
        /// <summary>Whether the MLP runs in pieces for a sequence of <paramref name="length"/> tokens.</summary>
        public bool Chunked(long length) => MlpChunk > 0 && length > MlpChunk;
    }

    /// <summary>The layer without gradients, its MLP one piece of the sequence at a time (each piece's intermediates
    /// freed before the next), in the same pieces as the recomputation in backward.</summary>
    static Tensor ChunkedLayerForward(LayerCall call, Tensor x)
    {
        using var scope = NewDisposeScope();
        var mid = call.Model.AttentionBlock(call.Layer, x, call.Attention);
        var y = empty_like(mid);
        long T = mid.shape[1];
        for (long start = 0; start < T; start += call.MlpChunk)
        {
            using var piece = NewDisposeScope();
            var m = mid.narrow(1, start, Math.Min(call.MlpChunk, T - start));
            y.narrow(1, start, m.shape[1]).copy_(m + call.Model.Mlp(call.Layer, m));
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Backward of a recomputed layer whose MLP runs in pieces: the attention half is recomputed with gradients;
    /// then each piece of the MLP is recomputed on the detached attention output and differentiated alone (its gradient
    /// added to the residual's); then the attention half is differentiated with the sum. Returns the gradients of
    /// <paramref name="inputs"/> (the layer's input first when it needs one, then the trainable tensors).</summary>
    static List<Tensor?> ChunkedLayerGradients(LayerCall call, Tensor xd, CausalLM.AttentionInputs attention, List<Tensor> inputs,
        IReadOnlyList<Tensor> trainable, Tensor gradOut)
    {
        var mid = call.Model.AttentionBlock(call.Layer, xd, attention);
        var midValues = mid.detach();
        var gradMid = gradOut.clone();   // the residual path: mid reaches the output unchanged
        var sums = new Tensor?[trainable.Count];
        long T = mid.shape[1];
        for (long start = 0; start < T; start += call.MlpChunk)
        {
            using var piece = NewDisposeScope();
            long len = Math.Min(call.MlpChunk, T - start);
            var m = midValues.narrow(1, start, len).detach().requires_grad_(true);
            var y = call.Model.Mlp(call.Layer, m);
            var g = autograd.grad([y], [m, .. trainable], [gradOut.narrow(1, start, len)], allow_unused: true);
            gradMid.narrow(1, start, len).add_(g[0]);
            for (int i = 0; i < trainable.Count; i++)
            {
                var gi = g[i + 1];
                if (gi.IsInvalid) continue;   // not used by the MLP (an attention projection's adapter)
                if (sums[i] is { } sum) sum.add_(gi);
                else sums[i] = gi.to(float32).MoveToOuterDisposeScope();   // summed over the pieces in fp32, rounded once
            }
        }
        var ga = autograd.grad([mid], inputs, [gradMid], allow_unused: true);
        var result = new List<Tensor?>(ga);
        int first = inputs.Count - trainable.Count;   // 1 when the layer's input is among the inputs
        for (int i = 0; i < trainable.Count; i++)
        {
            var attentionPart = result[first + i]!;
            if (sums[i] is not { } mlpPart) continue;
            if (attentionPart.IsInvalid) result[first + i] = mlpPart.to(trainable[i].dtype);
            else attentionPart.add_(mlpPart);
        }
        return result;
    }

    sealed class CheckpointedLayer : autograd.MultiTensorFunction<CheckpointedLayer>
    {
        static readonly List<Tensor> Handed = [];
        static Exception? _failure;

        public override string Name => nameof(CheckpointedLayer);

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var call = (LayerCall)vars[0];
            var x = (Tensor)vars[1];
            // Offloaded: a non-blocking copy to the host lands in pinned memory (libtorch pins the destination itself).
            ctx.save_for_backward([call.Offload ? x.to(CPU, non_blocking: true) : x, .. call.Attention.Tensors]);
            ctx.save_data("call", call);
            ctx.save_data("needx", x.requires_grad);
            if (call.Seed is { } seed) random.manual_seed(seed);
            return [call.Chunked(x.shape[1]) ? ChunkedLayerForward(call, x) : call.Model.LayerForward(call.Layer, x, call.Attention)];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            var call = (LayerCall)ctx.get_data("call");
            bool needx = (bool)ctx.get_data("needx");
            ReleaseHanded();   // the previous call's gradients were consumed when it returned
            try
            {
                using var scope = NewDisposeScope();   // backward runs on autograd's thread: its own scope
                var saved = ctx.get_saved_variables();
                var attention = call.Attention.With(saved.Skip(1).ToList());
                List<Tensor> result;
                using (enable_grad())
                {
                    var input = call.Offload ? saved[0].to(call.Model.Device, non_blocking: true) : saved[0];
                    var xd = input.detach().requires_grad_(needx);
                    if (call.Seed is { } seed) random.manual_seed(seed);
                    var trainable = call.Model.Checkpointing!.TrainableOf(call.Layer);
                    var inputs = new List<Tensor>();
                    if (needx) inputs.Add(xd);   // the first layer's input (embeddings) needs no gradient
                    inputs.AddRange(trainable);
                    IList<Tensor?> g = call.Chunked(xd.shape[1])
                        ? ChunkedLayerGradients(call, xd, attention, inputs, trainable, grads[0])
                        : autograd.grad([call.Model.LayerForward(call.Layer, xd, attention)], inputs, [grads[0]], allow_unused: true);
                    result = [null!, needx ? g[0]! : null!];
                    result.AddRange(g.Skip(needx ? 1 : 0)!);
                }
                foreach (var t in result.Where(t => t is not null)) t.MoveToOuterDisposeScope();
                lock (Handed) Handed.AddRange(result.Where(t => t is not null));
                // The incoming gradients are handles made for us on autograd's thread, outside any dispose scope:
                // left to the finalizer, each would hold a [B, T, H] activation gradient until a GC, and memory grew
                // with every step (the cause of checkpointing using more memory than no checkpointing).
                foreach (var g in grads) g?.Dispose();
                return result;
            }
            catch (Exception e)
            {
                _failure ??= e;
                foreach (var g in grads) g?.Dispose();
                var zeros = new List<Tensor> { null!, zeros_like(ctx.get_saved_variables()[0]) };
                zeros.AddRange(call.Model.Checkpointing!.TrainableOf(call.Layer).Select(t => zeros_like(t)));
                lock (Handed) Handed.AddRange(zeros.Where(t => t is not null));
                return zeros;
            }
        }

        static void ReleaseHanded()
        {
            lock (Handed)
            {
                foreach (var t in Handed) t.Dispose();
                Handed.Clear();
            }
        }

        public static void AfterBackward()
        {
            ReleaseHanded();
            if (Interlocked.Exchange(ref _failure, null) is { } e)
                throw new InvalidOperationException("activation checkpointing: recomputing a layer in backward failed", e);
        }
    }
}
