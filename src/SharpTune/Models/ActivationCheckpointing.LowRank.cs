using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

public sealed partial class ActivationCheckpointing
{
    sealed partial class CheckpointedLayer
    {
        /// <summary>Backward of a layer whose gate and up outputs were kept, when every adapter of its MLP is a plain
        /// low-rank product (<see cref="Linear.LowRank"/>): what <see cref="RecomputeAttentionOnly"/> computes, with the MLP's
        /// adapter gradients taken by hand instead of through autograd over their [T, intermediate] outputs. For an
        /// adapter s·(x Aᵀ) Bᵀ with output gradient G: ∂B = s·Gᵀ(x Aᵀ), ∂(x Aᵀ) = s·G B, ∂A = ∂(x Aᵀ)ᵀ x, and x's gradient
        /// gains ∂(x Aᵀ) A, added into the frozen product's input gradient (one matrix product each, in place). Neither the
        /// adapter terms [T, intermediate] nor autograd's sums of gradients of that size exist, and the MLP part's
        /// temporaries are freed before the attention half is recomputed. Null (the caller takes the autograd form) when an
        /// MLP adapter is of another kind, or its factors are not the trainable tensors or not in the activations' dtype.</summary>
        static List<Tensor>? KeptMlpLowRank(LayerCall call, Tensor x, bool needx, CausalLM.AttentionInputs attention,
            Tensor gateKept, Tensor upKept, Tensor grad)
        {
            var model = call.Model;
            var layer = call.Layer;
            var trainableOf = model.Checkpointing!.TrainableOfProjection!;
            var factors = new Dictionary<Linear, LowRankFactors?>();
            foreach (var p in new[] { layer.Gate, layer.Up, layer.Down })
            {
                var trainable = trainableOf(p);
                if (p.Adapter is null && trainable.Count == 0) { factors[p] = null; continue; }
                if (p.LowRank?.Invoke() is not { } f || trainable.Count != 2 || !ReferenceEquals(trainable[0], f.A) || !ReferenceEquals(trainable[1], f.B)
                    || f.A.dtype != gateKept.dtype || f.B.dtype != gateKept.dtype)   // (fp32 factors of a bf16 model: cast inside autograd's form)
                    return null;
                factors[p] = f;
            }
            long H = grad.shape[^1], I = gateKept.shape[^1];
            var g2 = grad.reshape(-1, H);                                                        // [N, H]
            var wDown = ((DenseWeight)layer.Down.Weight).Tensor;                                 // [H, I]

            // MLP: output = residual + act Wdᵀ + s·(act Adᵀ) Bdᵀ, act = swiglu(gate, up)
            Tensor gateGrad, upGrad;
            Tensor? downA = null, downB = null;
            using (var mlpScope = NewDisposeScope())
            {
                var gate = gateKept.detach().requires_grad_(true);
                var up = upKept.detach().requires_grad_(true);
                var act = CausalLM.MlpActivation(gate, up, training: true);
                var act2 = act.detach().reshape(-1, I);                                           // [N, I]
                Tensor actGrad;                                                                  // [N, I]
                if (factors[layer.Down] is { } d)
                {
                    var xa = act2.mm(d.A.t());                                                   // [N, r]
                    var gxa = Product(g2, d.B, d.Scaling);                                       // [N, r]
                    downB = Product(g2.t(), xa, d.Scaling).MoveToOuterDisposeScope();            // [H, r]
                    downA = gxa.t().mm(act2).MoveToOuterDisposeScope();                          // [r, I]
                    // The adapter's share first, then the frozen product added to it inside that product (its output
                    // written once; an addition after it would read and write [N, I] again).
                    actGrad = gxa.mm(d.A).addmm_(g2, wDown);
                }
                else actGrad = g2.mm(wDown);
                var gu = autograd.grad([act], [gate, up], [actGrad.view(act.shape)]);
                gateGrad = gu[0].MoveToOuterDisposeScope();
                upGrad = gu[1].MoveToOuterDisposeScope();
            }

            StepTrace.Mark("bwd kept mlp (by hand)");

            // Attention half: residual = x + attn(rms(x)); h = rms(residual) feeds gate and up
            var residual = model.AttentionBlock(layer, x, attention, training: true);
            StepTrace.Mark("bwd attention recompute");
            var h = model.RmsNorm(residual, layer.PostAttentionNorm);
            var h2 = h.detach().reshape(-1, H);
            var gg2 = gateGrad.reshape(-1, I);
            var ug2 = upGrad.reshape(-1, I);
            var hGrad = gg2.mm(((DenseWeight)layer.Gate.Weight).Tensor).addmm_(ug2, ((DenseWeight)layer.Up.Weight).Tensor);   // [N, H]
            var mlpGrads = new Dictionary<Linear, (Tensor A, Tensor B)>();
            foreach (var (p, pg) in new[] { (layer.Gate, gg2), (layer.Up, ug2) })
            {
                if (factors[p] is not { } f) continue;
                var gxa = Product(pg, f.B, f.Scaling);                                           // [N, r]
                var b = Product(pg.t(), h2.mm(f.A.t()), f.Scaling);                              // [I, r]
                mlpGrads[p] = (gxa.t().mm(h2), b);                                               // [r, H], [I, r]
                hGrad.addmm_(gxa, f.A);
            }
            if (downA is not null) mlpGrads[layer.Down] = (downA, downB!);
            foreach (var t in new[] { gateGrad, upGrad, gg2, ug2 }) t.Dispose();   // the largest tensors here: free before the attention's backward

            var inputs = new List<Tensor>();
            if (needx) inputs.Add(x);
            var others = layer.Projections.Where(p => p != layer.Gate && p != layer.Up && p != layer.Down).ToList();
            foreach (var p in others) inputs.AddRange(trainableOf(p));
            var rest = inputs.Count > 0 ? autograd.grad([residual, h], inputs, [grad, hGrad.view(h.shape)], allow_unused: true) : [];
            StepTrace.Mark("bwd attention grad");

            var result = new List<Tensor> { needx ? rest[0] : null! };
            int next = needx ? 1 : 0;
            foreach (var p in layer.Projections)
            {
                if (mlpGrads.TryGetValue(p, out var ab)) result.AddRange([ab.A, ab.B]);
                else if (p == layer.Gate || p == layer.Up || p == layer.Down) continue;   // no adapter: no trainable tensors
                else { int n = trainableOf(p).Count; result.AddRange(rest.Skip(next).Take(n)); next += n; }
            }
            return result;
        }

        /// <summary>s · a b, the scale inside the product (one rounding).</summary>
        static Tensor Product(Tensor a, Tensor b, double s) =>
            s == 1 ? a.mm(b) : addmm(empty([a.shape[0], b.shape[1]], a.dtype, a.device), a, b, beta: 0, alpha: (float)s);
    }
}
