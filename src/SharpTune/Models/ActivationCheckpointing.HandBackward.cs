using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

public sealed partial class ActivationCheckpointing
{
    /// <summary>SHARPTUNE_HAND_BACKWARD=off keeps autograd's form for compressed layers too (to compare against it).</summary>
    public const string HandBackwardSwitch = "SHARPTUNE_HAND_BACKWARD";

    static readonly bool HandBackwardOff =
        string.Equals(Environment.GetEnvironmentVariable(HandBackwardSwitch), "off", StringComparison.OrdinalIgnoreCase);

    sealed partial class CheckpointedLayer
    {
        /// <summary>
        /// Backward of a recomputed layer with compressed frozen weights (4-bit, int8) whose adapters are all plain low-rank
        /// products (<see cref="Linear.LowRank"/>), the MLP whole or in pieces (mlp_chunk): the seven projections are recomputed and differentiated by
        /// hand, so that autograd records only the three parts without trainable weights (the input norm, the attention
        /// between the projections, the post-attention norm). Through autograd each compressed projection is a custom
        /// function (<c>FrozenLinear</c>: a managed callback in backward, and several host calls to set it up), and each
        /// adapter a few recorded ops: the step was bound by the host issuing them, not by the GPU. By hand, each weight is
        /// expanded once per product and freed at once, as before (13 expansions a layer); the adapters' gradients are
        /// products of [N, r] tensors: for s·(x Aᵀ) Bᵀ with output gradient G, ∂B = s·Gᵀ(x Aᵀ), ∂A = (s·G B)ᵀ x, and x's
        /// gradient G W + (s·G B) A. In reverse order of the forward, each [T, intermediate] tensor freed once used, so the
        /// step's peak does not rise (the autograd form held the MLP's activation through its whole backward). The
        /// first layer's input needs no gradient: its q, k and v input gradients and the input norm's backward are skipped.
        /// Null (the caller takes autograd's form) for dense layers (the bf16 path stays as it is), dropout, DoRA, or
        /// factors not the trainable tensors or not in the activations' dtype. Returns the gradients of x (null when not
        /// needed) and of the layer's trainable tensors, in <see cref="TrainableOf"/>'s order. Off with
        /// <see cref="HandBackwardSwitch"/>.
        /// </summary>
        static List<Tensor>? HandLayerGradients(LayerCall call, Tensor x, bool needx, CausalLM.AttentionInputs attention, Tensor grad)
        {
            var model = call.Model;
            var l = call.Layer;
            if (HandBackwardOff || call.Seed is not null || l.Projections.All(p => p.Weight is DenseWeight)) return null;
            if (HandFactors(model.Checkpointing!, l, x.dtype) is not { } factors) return null;
            using var noGrad = no_grad();   // the products by hand; autograd records only inside enable_grad below
            long B = x.shape[0], T = x.shape[1], H = x.shape[2];
            var adapterGrads = new Dictionary<Linear, (Tensor A, Tensor B)>();

            // Forward, recomputed. Attention half: residual = x + o(attend(q, k, v)), q, k, v of h1 = rms(x)
            Tensor h1;
            using (enable_grad()) h1 = model.RmsNorm(x, l.InputNorm);                     // [B, T, H], recorded when needx
            var h1r = h1.detach().view(-1, H);                                           // [N, H]
            var (q, qa) = Project(l.Q, factors[l.Q], h1r);                              // [N, nh·hd], x Aᵀ [N, r]
            var (k, ka) = Project(l.K, factors[l.K], h1r);                              // [N, nkv·hd]
            var (v, va) = Project(l.V, factors[l.V], h1r);
            // With flash attention and the fused rotary kernel, q and k are rotated by hand too (the rotation's backward is
            // the rotation by the opposite angle): autograd then records the attention kernel alone.
            var c = model.Config;
            bool rotate = attention.Flash && l.QNorm is null && TrainingKernels.Available(x.device, x.dtype)
                && TrainingKernels.RopeFits(q.view(B, T, c.NumHeads, c.HeadDim), attention.Cos, attention.Sin)
                && TrainingKernels.RopeFits(k.view(B, T, c.NumKvHeads, c.HeadDim), attention.Cos, attention.Sin);
            if (rotate)
            {
                q = TrainingKernels.Rope(q.view(B, T, c.NumHeads, c.HeadDim), attention.Cos, attention.Sin);     // (B, T, nh, hd)
                k = TrainingKernels.Rope(k.view(B, T, c.NumKvHeads, c.HeadDim), attention.Cos, attention.Sin);   // (B, T, nkv, hd)
            }
            var qL = q.view(B, T, -1).detach().requires_grad_(true);
            var kL = k.view(B, T, -1).detach().requires_grad_(true);
            var vL = v.view(B, T, -1).detach().requires_grad_(true);
            Tensor a;
            using (enable_grad()) a = model.Attend(l, qL, kL, vL, attention, training: true, rotated: rotate);   // (B, T, nh·hd), recorded
            var ar = a.detach().view(-1, a.shape[^1]);                                   // [N, nh·hd]
            var (o, oa) = Project(l.O, factors[l.O], ar);                               // [N, H]
            var residual = (x + o.view(B, T, H)).requires_grad_(true);                   // a leaf: its gradient splits here
            o.Dispose();
            // MLP half: output = residual + down(swiglu(gate(h2), up(h2))), h2 = rms(residual)
            Tensor h2;
            using (enable_grad()) h2 = model.RmsNorm(residual, l.PostAttentionNorm);     // [B, T, H], recorded
            var h2r = h2.detach().view(-1, H);                                           // [N, H]
            StepTrace.Mark("bwd attention recompute (by hand)");
            // The MLP treats each token on its own: with mlp_chunk, recomputed and differentiated a piece of rows at a time
            // (its [rows, I] tensors exist for one piece), the adapters' gradients summed over the pieces in fp32.
            var g = grad.reshape(-1, H);                                                 // [N, H]
            var h2Grad = zeros_like(h2r);                                                // [N, H]
            long rows = h2r.shape[0], pieceRows = call.Chunked(B, T) ? B * call.PieceLength(B) : rows;
            var sums = new Dictionary<Linear, (Tensor A, Tensor B)>();
            for (long start = 0; start < rows; start += pieceRows)
            {
                using var pieceScope = NewDisposeScope();
                long n = Math.Min(pieceRows, rows - start);
                var pieceGrads = MlpPieceBackward(l, factors, h2r.narrow(0, start, n), g.narrow(0, start, n), h2Grad.narrow(0, start, n));
                foreach (var (p, (dA, dB)) in pieceGrads)
                {
                    if (pieceRows == rows) sums[p] = (dA.MoveToOuterDisposeScope(), dB.MoveToOuterDisposeScope());
                    else if (sums.TryGetValue(p, out var sum)) { sum.A.add_(dA); sum.B.add_(dB); }
                    else sums[p] = (dA.to(float32).MoveToOuterDisposeScope(), dB.to(float32).MoveToOuterDisposeScope());
                }
                StepTrace.Mark("bwd mlp piece (by hand)");
            }
            foreach (var (p, (dA, dB)) in sums) adapterGrads[p] = (dA.to(x.dtype), dB.to(x.dtype));   // (whole: the same tensors)
            var residualGrad = autograd.grad([h2], [residual], [h2Grad.view(h2.shape)])[0].add_(grad);   // + the residual path
            h2Grad.Dispose();
            // O, the attention between the projections, then q, k and v: ∂h1 = Σ ∂p Wp + adapters' shares
            var attendGrad = ProjectionBackward(l.O, factors[l.O], ar, oa, residualGrad.view(-1, H), null, true, adapterGrads)!;
            var qkvGrad = autograd.grad([a], [qL, kL, vL], [attendGrad.view(a.shape)]);
            attendGrad.Dispose();
            if (rotate)
                foreach (var (i, heads) in new[] { (0, c.NumHeads), (1, c.NumKvHeads) })
                    qkvGrad[i] = TrainingKernels.RopeBackward(qkvGrad[i].reshape(B, T, heads, c.HeadDim).contiguous(), attention.Cos, attention.Sin);
            Tensor? h1Grad = null;
            foreach (var (p, xa, pg) in new[] { (l.Q, qa, qkvGrad[0]), (l.K, ka, qkvGrad[1]), (l.V, va, qkvGrad[2]) })
                h1Grad = ProjectionBackward(p, factors[p], h1r, xa, pg.reshape(-1, p.OutFeatures), h1Grad, needx, adapterGrads);
            Tensor? xGrad = needx ? autograd.grad([h1], [x], [h1Grad!.view(h1.shape)])[0].add_(residualGrad) : null;
            StepTrace.Mark("bwd attention (by hand)");

            var result = new List<Tensor> { xGrad! };
            foreach (var p in l.Projections)
                if (adapterGrads.TryGetValue(p, out var ab)) result.AddRange([ab.A, ab.B]);
            return result;
        }

        /// <summary>The MLP of rows h [n, H] (of the post-attention norm) with output gradient g [n, H], by hand: recomputes
        /// gate, up and SwiGLU, then adds ∂h = ∂gate Wg + ∂up Wu + the adapters' shares into <paramref name="hGrad"/> [n, H];
        /// returns the gate, up and down adapters' (∂A, ∂B) for these rows.</summary>
        static Dictionary<Linear, (Tensor A, Tensor B)> MlpPieceBackward(DecoderLayer l, Dictionary<Linear, LowRankFactors?> factors,
            Tensor h, Tensor g, Tensor hGrad)
        {
            var grads = new Dictionary<Linear, (Tensor A, Tensor B)>();
            var (gate, gateA) = Project(l.Gate, factors[l.Gate], h);                     // [n, I]
            var (up, upA) = Project(l.Up, factors[l.Up], h);                             // [n, I]
            bool fused = TrainingKernels.Available(gate.device, gate.dtype);
            Tensor act;
            if (fused) act = CausalLM.MlpActivation(gate, up, training: true);           // [n, I]; its backward is one kernel below
            else
            {
                (gate, up) = (gate.detach().requires_grad_(true), up.detach().requires_grad_(true));
                using (enable_grad()) act = CausalLM.MlpActivation(gate, up, training: true);
            }
            var actRows = fused ? act : act.detach();
            var downA = factors[l.Down] is { } fd ? actRows.mm(fd.A.t()) : null;          // [n, r]; down's output itself is not needed

            // Backward, in reverse. Down: ∂act = G Wd + (s·G Bd) Ad
            var actGrad = ProjectionBackward(l.Down, factors[l.Down], actRows, downA, g, null, true, grads)!;   // [n, I]
            if (fused) act.Dispose();   // (else autograd's graph below still needs it)
            Tensor gateGrad, upGrad;                                                     // [n, I] each
            if (fused) (gateGrad, upGrad) = TrainingKernels.SwiGluBackward(actGrad, gate, up);
            else
            {
                var gu = autograd.grad([act], [gate, up], [actGrad]);
                (gateGrad, upGrad) = (gu[0], gu[1]);
                act.Dispose();
            }
            foreach (var t in new[] { gate, up, actGrad }) t.Dispose();   // the largest tensors: freed before the next expansions
            // Gate and up: ∂h += ∂gate Wg + ∂up Wu + their adapters' shares
            ProjectionBackward(l.Gate, factors[l.Gate], h, gateA, gateGrad, hGrad, true, grads);
            ProjectionBackward(l.Up, factors[l.Up], h, upA, upGrad, hGrad, true, grads);
            gateGrad.Dispose(); upGrad.Dispose();
            return grads;
        }

        /// <summary>Each projection's low-rank factors (null: no adapter), when every adapter of the layer is one and the
        /// layer's trainable tensors are exactly their A and B, projection by projection, in <paramref name="dtype"/>; else null.</summary>
        static Dictionary<Linear, LowRankFactors?>? HandFactors(ActivationCheckpointing checkpointing, DecoderLayer l, ScalarType dtype)
        {
            if (checkpointing.TrainableOfProjection is not { } ofProjection) return null;
            var trainable = checkpointing.TrainableOf(l);
            var factors = new Dictionary<Linear, LowRankFactors?>();
            int next = 0;
            foreach (var p in l.Projections)
            {
                var own = ofProjection(p);
                if (p.Adapter is null && own.Count == 0) { factors[p] = null; continue; }
                if (p.LowRank?.Invoke() is not { } f || own.Count != 2 || f.A.dtype != dtype || f.B.dtype != dtype
                    || next + 2 > trainable.Count || !ReferenceEquals(own[0], f.A) || !ReferenceEquals(own[1], f.B)
                    || !ReferenceEquals(trainable[next], f.A) || !ReferenceEquals(trainable[next + 1], f.B))
                    return null;
                factors[p] = f;
                next += 2;
            }
            return next == trainable.Count ? factors : null;
        }

        /// <summary>Rows x [N, in] through a projection outside autograd: (x Wᵀ + b + s·(x Aᵀ) Bᵀ, x Aᵀ [N, r]); the expanded
        /// weight is freed after its product, the adapter's share added in place.</summary>
        static (Tensor Output, Tensor? InputA) Project(Linear p, LowRankFactors? f, Tensor x)
        {
            var y = p.Weight.Linear(x, p.Bias);
            if (f is null) return (y, null);
            var xa = x.mm(f.A.t());
            y.addmm_(xa, f.B.t(), beta: 1, alpha: (float)f.Scaling);
            return (y, xa);
        }

        /// <summary>A projection's backward for its output gradient g [N, out], its input rows x [N, in] and x Aᵀ: records the
        /// adapter's (∂A, ∂B) = ((s·g B)ᵀ x, s·gᵀ (x Aᵀ)) in <paramref name="adapterGrads"/>, and, when
        /// <paramref name="needInput"/>, returns the input gradient g W + (s·g B) A added into <paramref name="into"/> (made
        /// when null); else returns <paramref name="into"/>.</summary>
        static Tensor? ProjectionBackward(Linear p, LowRankFactors? f, Tensor x, Tensor? xa, Tensor g, Tensor? into, bool needInput,
            Dictionary<Linear, (Tensor A, Tensor B)> adapterGrads)
        {
            Tensor? gxa = null;
            if (f is not null)
            {
                gxa = Product(g, f.B, f.Scaling);                                        // [N, r]
                adapterGrads[p] = (gxa.t().mm(x), Product(g.t(), xa!, f.Scaling));      // [r, in], [out, r]
            }
            if (!needInput) return into;
            if (into is null) into = InputGradient(p.Weight, g);
            else if (p.Weight is DenseWeight dense) into.addmm_(g, dense.Tensor);
            else
            {
                using var w = p.Weight.Dense(g.dtype);                                  // expanded for this product only
                into.addmm_(g, w);
            }
            if (gxa is not null) into.addmm_(gxa, f!.A);
            return into;
        }
    }
}
