using SharpTune.Models;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Quantization;

/// <summary>
/// x Wᵀ + b for a compressed frozen weight, differentiable in x only, without keeping the expanded weight: forward
/// expands W, multiplies and frees it; backward expands it again for grad_x = grad_y W. Autograd's own linear would
/// save the expanded bf16 weight until backward (with activation checkpointing, all seven of a layer at once: 0.44 GB
/// for an 8B layer; without it, every layer's: the whole bf16 model). Costs one more expansion per projection in
/// backward, which the fused kernel makes cheap. Without gradients it is a plain product.
/// </summary>
public static class FrozenLinear
{
    public static Tensor Apply(IFrozenWeight weight, Tensor x, Tensor? bias)
    {
        if (!is_grad_enabled() || !x.requires_grad)
        {
            using var w = weight.Dense(x.dtype);
            return F.linear(x, w, bias);
        }
        Function.RethrowFailure();
        using var scope = NewDisposeScope();   // apply() allocates a spare output copy: let the scope free it
        return Function.apply(weight, x, bias!).Single().MoveToOuterDisposeScope();
    }

    sealed class Function : autograd.MultiTensorFunction<Function>
    {
        static readonly BackwardResults Results = new("a quantized projection's backward failed");

        public override string Name => "FrozenLinear";

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var weight = (IFrozenWeight)vars[0];
            var x = (Tensor)vars[1];
            ctx.save_data("weight", weight);
            using var noGrad = no_grad();
            using var w = weight.Dense(x.dtype);
            return [F.linear(x, w, vars[2] as Tensor)];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            var weight = (IFrozenWeight)ctx.get_data("weight");
            Results.ReleaseEarlier();   // the previous call's result was taken over by autograd when that call returned
            Tensor gx;
            try
            {
                using var scope = NewDisposeScope();   // backward runs on autograd's thread: its own scope
                using var noGrad = no_grad();
                using var w = weight.Dense(grads[0].dtype);
                gx = grads[0].matmul(w).MoveToOuterDisposeScope();           // [..., out] · [out, in] → [..., in]
            }
            catch (Exception e)
            {
                // An exception must not leave backward (it would abort the process): hand back zeros, report it later.
                Results.Fail(e);
                gx = zeros([.. grads[0].shape[..^1], weight.InFeatures], grads[0].dtype, grads[0].device);
            }
            foreach (var g in grads) g?.Dispose();   // handles made for us on autograd's thread, outside any scope
            Results.Keep([gx]);
            return [null!, gx, null!];
        }

        public static void RethrowFailure() => Results.RethrowFailure();
    }
}
