using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Activation checkpointing: a layer's forward keeps only its input; backward recomputes the layer with
/// gradients on and differentiates it. Activations of all layers are then never alive together, at the cost
/// of a second forward per layer, less the down projection's frozen product (backward needs its input gradient, not
/// its output) and, with <c>keepMlp</c>, the gate and up projections. The layer's trainable tensors are passed as
/// inputs of the autograd node so that their gradients flow through it. With dropout, masks are reproduced by seeding both passes alike
/// (from the step and the call's index within it, so that a resumed run draws the same masks).
/// </summary>
/// <param name="reseed">true when the layers draw random numbers (LoRA dropout)</param>
/// <param name="offload">keep each layer's saved input in host memory (<see cref="OffloadBuffers"/>: pinned buffers reused
/// across steps and row lengths, copied out and back asynchronously) instead of on the GPU: what stays on the GPU no
/// longer grows with the number of layers (long sequences)</param>
/// <param name="layers">how many decoder layers, from the first, are recomputed; the others keep their activations
/// (each such layer saves its recomputation, about a third of its cost, for its activations' memory); 0 = all</param>
/// <param name="keepMlp">in how many of the recomputed layers, from the first, the forward also keeps the MLP's gate
/// and up outputs (2·tokens·intermediate values), so that backward recomputes only the attention half: the gate and
/// up projections, about three quarters of a Llama layer's recomputation, are not run again. Needs
/// <paramref name="trainableOfProjection"/>, dense frozen weights and no dropout; other layers recompute in full.</param>
/// <param name="trainableOfProjection">the trainable tensors of one projection, in the order <paramref name="trainableOf"/>
/// lists them for its layer</param>
/// <param name="mlpChunk">tokens per piece of a recomputed layer's MLP (in layers that do not keep it), over the whole
/// micro-batch (a batch of B rows is cut into pieces of mlpChunk / B positions); 0 = the whole batch at once. The MLP
/// treats every token on its own, so backward can recompute and differentiate it piece by piece: its [tokens,
/// intermediate] tensors (the largest of a layer) then exist for one piece at a time.</param>
public sealed partial class ActivationCheckpointing(Func<DecoderLayer, IReadOnlyList<Tensor>> trainableOf, bool reseed = false, bool offload = false,
    int layers = 0, int keepMlp = 0, Func<Linear, IReadOnlyList<Tensor>>? trainableOfProjection = null, int mlpChunk = 0)
{
    internal Func<DecoderLayer, IReadOnlyList<Tensor>> TrainableOf { get; } = trainableOf;
    internal Func<Linear, IReadOnlyList<Tensor>>? TrainableOfProjection { get; } = trainableOfProjection;

    /// <summary>In how many recomputed layers the MLP's gate and up outputs are kept (<c>keepMlp</c>); may change between
    /// steps (a memory budget sets it after the first).</summary>
    public int KeepMlp { get; set; } = keepMlp;
    long _stepSeed, _calls;

    /// <summary>Where offloaded inputs are held (null without offload).</summary>
    internal OffloadBuffers? Offload { get; } = offload ? new OffloadBuffers() : null;

    /// <summary>Whether the layer at <paramref name="index"/> is recomputed in backward.</summary>
    public bool Covers(int index) => layers <= 0 || index < layers;

    /// <summary>Call at the start of each optimizer step.</summary>
    public void BeginStep(long seed)
    {
        (_stepSeed, _calls) = (seed, 0);
        Offload?.ReleaseAll();
    }

    /// <summary>x (B, T, H) → (B, T, H), like <see cref="CausalLM.LayerForward"/> without a KV cache.</summary>
    public Tensor Run(CausalLM model, DecoderLayer layer, Tensor x, CausalLM.AttentionInputs attention)
    {
        var trainable = TrainableOf(layer);
        long? seed = reseed ? _stepSeed * 1_000_003 + _calls++ : null;
        bool keep = Array.IndexOf(model.Layers, layer) < KeepMlp && seed is null && TrainableOfProjection is not null && MlpRecomputable(layer);
        var args = new List<object> { new LayerCall(model, layer, attention, seed, Offload, keep, mlpChunk), x };
        args.AddRange(trainable);
        using var scope = NewDisposeScope();   // apply() allocates a spare output copy: let the scope free it
        return CheckpointedLayer.apply(args.ToArray())[0].MoveToOuterDisposeScope();
    }

    /// <summary>Whether a projection's input gradient can be taken without its frozen product: an adapter that only adds
    /// a term of the input (or none).</summary>
    static bool Skippable(Linear p) => p.Adapter is null || p.AdapterTakesRows;

    /// <summary>Keeping the MLP's gate and up outputs also takes the gate and up projections' input gradients as plain
    /// products with their weights: dense weights only.</summary>
    static bool MlpRecomputable(DecoderLayer l) =>
        l.Gate.Weight is DenseWeight && l.Up.Weight is DenseWeight && l.Down.Weight is DenseWeight && Skippable(l.Gate) && Skippable(l.Up) && Skippable(l.Down);

    /// <summary>grad · W, the input gradient of a frozen product (grad [..., out] → [..., in]): with a dense weight's
    /// tensor, or with a compressed weight expanded for the product and freed after it (one expansion, where
    /// recomputing the product and differentiating it would take two, and the product itself).</summary>
    static Tensor InputGradient(IFrozenWeight weight, Tensor grad)
    {
        if (weight is DenseWeight dense) return grad.matmul(dense.Tensor);
        using var w = weight.Dense(grad.dtype);
        return grad.matmul(w);
    }

    /// <summary>Frees the gradient tensors handed to autograd in the last backward; call after backward returns,
    /// and rethrows an error that happened inside it (an exception inside backward would abort the process).</summary>
    public void AfterBackward()
    {
        Results.ReleaseAll();
        Results.RethrowFailure();
    }

    /// <summary>This model's recomputed layers' backward results: per owner, so that two models (or two tests) training
    /// at once never release each other's.</summary>
    internal BackwardResults Results { get; } = new("activation checkpointing: recomputing a layer in backward failed");

    /// <summary>The non-tensor context of one call; the attention inputs' tensors (cos, sin, mask, document
    /// boundaries) travel as saved tensors, since the caller's handles are gone by the time backward runs.</summary>
    sealed record LayerCall(CausalLM Model, DecoderLayer Layer, CausalLM.AttentionInputs Attention, long? Seed, OffloadBuffers? Offload, bool KeepMlp,
        int MlpChunk)
    {
        /// <summary>Whether the MLP runs in pieces for a batch of <paramref name="batch"/> rows of <paramref name="length"/> tokens.</summary>
        public bool Chunked(long batch, long length) => !KeepMlp && MlpChunk > 0 && batch * length > MlpChunk;

        /// <summary>Positions per piece in a batch of <paramref name="batch"/> rows: <see cref="MlpChunk"/> counts tokens, so that
        /// a piece's memory does not grow with the micro-batch.</summary>
        public long PieceLength(long batch) => Math.Max(1, MlpChunk / batch);
    }

    /// <summary>The layer without gradients, its MLP one piece of the sequence at a time (each piece's intermediates
    /// freed before the next), in the same pieces as the recomputation in backward.</summary>
    static Tensor ChunkedLayerForward(LayerCall call, Tensor x)
    {
        using var scope = NewDisposeScope();
        var mid = call.Model.AttentionBlock(call.Layer, x, call.Attention, training: true);
        var y = empty_like(mid);
        long T = mid.shape[1], step = call.PieceLength(mid.shape[0]);
        for (long start = 0; start < T; start += step)
        {
            using var piece = NewDisposeScope();
            var m = mid.narrow(1, start, Math.Min(step, T - start));
            y.narrow(1, start, m.shape[1]).copy_(m + call.Model.Mlp(call.Layer, m, training: true));
        }
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Backward of a recomputed layer whose MLP runs in pieces: the attention half is recomputed with gradients;
    /// then each piece of the MLP is recomputed on the detached attention output and differentiated alone (its input
    /// gradient added to the residual's, the MLP adapters' summed over the pieces in fp32); then the attention half is
    /// differentiated with the sum. Returns the gradients of the layer's input (null when not needed) and of its
    /// trainable tensors, in <see cref="TrainableOf"/>'s order.</summary>
    static List<Tensor> ChunkedLayerGradients(LayerCall call, Tensor xd, bool needx, CausalLM.AttentionInputs attention, Tensor gradOut)
    {
        var layer = call.Layer;
        var trainable = call.Model.Checkpointing!.TrainableOf(layer);
        // Which of the layer's trainable tensors belong to the MLP's projections: each part is differentiated with its own
        // (asking autograd for tensors a graph does not use would hand back undefined results).
        var ofProjection = call.Model.Checkpointing.TrainableOfProjection;
        var isMlp = new bool[trainable.Count];
        if (ofProjection is null) Array.Fill(isMlp, true);
        else
        {
            int offset = 0;
            foreach (var p in layer.Projections)
            {
                int n = ofProjection(p).Count;
                if (p == layer.Gate || p == layer.Up || p == layer.Down) Array.Fill(isMlp, true, offset, n);
                offset += n;
            }
        }
        var mlpTrainable = trainable.Where((_, i) => isMlp[i]).ToList();

        var mid = call.Model.AttentionBlock(layer, xd, attention, training: true);
        StepTrace.Mark("bwd attention recompute");
        var midValues = mid.detach();
        var gradMid = gradOut.clone();   // the residual path: mid reaches the output unchanged
        var sums = new Tensor?[mlpTrainable.Count];
        long T = mid.shape[1], step = call.PieceLength(mid.shape[0]);
        for (long start = 0; start < T; start += step)
        {
            using var piece = NewDisposeScope();
            long len = Math.Min(step, T - start);
            var m = midValues.narrow(1, start, len).detach().requires_grad_(true);
            var (outputs, upstream) = MlpOutputs(call.Model, layer, m, gradOut.narrow(1, start, len));
            var g = autograd.grad(outputs, [m, .. mlpTrainable], upstream, allow_unused: ofProjection is null);
            gradMid.narrow(1, start, len).add_(g[0]);
            for (int i = 0; i < mlpTrainable.Count; i++)
                if (!g[i + 1].IsInvalid)   // without TrainableOfProjection: unused (an attention projection's adapter)
                    (sums[i] ??= zeros(g[i + 1].shape, float32, m.device).MoveToOuterDisposeScope()).add_(g[i + 1]);   // fp32, rounded once
            StepTrace.Mark("bwd mlp piece");
        }
        var attentionTrainable = ofProjection is null ? trainable : trainable.Where((_, i) => !isMlp[i]).ToList();
        List<Tensor> attentionInputs = [.. needx ? [xd] : Array.Empty<Tensor>(), .. attentionTrainable];
        var ga = attentionInputs.Count > 0 ? autograd.grad([mid], attentionInputs, [gradMid], allow_unused: ofProjection is null) : [];
        StepTrace.Mark("bwd attention grad");
        var result = new List<Tensor> { needx ? ga[0] : null! };
        int first = needx ? 1 : 0;
        if (ofProjection is null)
        {
            // Both parts saw every trainable tensor: add the MLP's sum to whichever part is defined.
            for (int i = 0; i < trainable.Count; i++)
            {
                var attentionPart = ga[first + i];
                if (sums[i] is not { } mlpPart) result.Add(attentionPart);
                else if (attentionPart.IsInvalid) result.Add(mlpPart.to(trainable[i].dtype));
                else result.Add(attentionPart.add_(mlpPart));
            }
            return result;
        }
        for (int i = 0, a = first, mi = 0; i < trainable.Count; i++)
            result.Add(isMlp[i] ? sums[mi++]!.to(trainable[i].dtype) : ga[a++]);
        return result;
    }

    /// <summary>The recomputed MLP of residual <paramref name="m"/> as autograd outputs and their incoming gradients
    /// (<paramref name="grad"/> is the block output's): with a down projection whose adapter only adds (or none), its
    /// frozen product is skipped as in <c>Recompute</c>; else the MLP's output itself.</summary>
    static (List<Tensor> Outputs, List<Tensor> Upstream) MlpOutputs(CausalLM model, DecoderLayer layer, Tensor m, Tensor grad)
    {
        var down = layer.Down;
        if (!Skippable(down)) return ([model.Mlp(layer, m, training: true)], [grad]);
        var (gate, up) = model.MlpProjections(layer, m);
        var activation = CausalLM.MlpActivation(gate, up, training: true);
        var outputs = new List<Tensor> { activation };
        var upstream = new List<Tensor> { InputGradient(down.Weight, grad) };   // [B, t, H] · [H, I] → [B, t, I]
        if (down.AdapterTerm(activation) is { } term) { outputs.Add(term); upstream.Add(grad); }
        return (outputs, upstream);
    }

    sealed partial class CheckpointedLayer : autograd.MultiTensorFunction<CheckpointedLayer>
    {
        public override string Name => nameof(CheckpointedLayer);

        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var call = (LayerCall)vars[0];
            var x = (Tensor)vars[1];
            ctx.save_data("call", call);
            ctx.save_data("needx", x.requires_grad);
            if (call.Seed is { } seed) random.manual_seed(seed);
            // Offloaded: copied to a host buffer of the offload's own, without waiting (OffloadBuffers).
            var input = x;
            if (call.Offload is { } buffers)
            {
                (int slot, input) = buffers.Store(x);
                ctx.save_data("slot", slot);
            }
            if (!call.KeepMlp)
            {
                ctx.save_for_backward([input, .. call.Attention.Tensors]);
                var fwd = call.Chunked(x.shape[0], x.shape[1]) ? ChunkedLayerForward(call, x) : call.Model.LayerForward(call.Layer, x, call.Attention, training: true);
                StepTrace.Mark("layer forward");
                return [fwd];
            }
            // The context takes the saved tensors' handles after forward returns: gate and up live in the caller's scope (Run's).
            var residual = call.Model.AttentionBlock(call.Layer, x, call.Attention, training: true);
            var (gate, up) = call.Model.MlpProjections(call.Layer, residual);
            ctx.save_for_backward([input, .. call.Attention.Tensors, gate, up]);   // gate and up last
            using var scope = NewDisposeScope();
            var y = residual + call.Layer.Down.Forward(CausalLM.MlpActivation(gate, up, training: true));
            return [y.MoveToOuterDisposeScope()];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            var call = (LayerCall)ctx.get_data("call");
            bool needx = (bool)ctx.get_data("needx");
            var results = call.Model.Checkpointing!.Results;
            results.ReleaseEarlier();   // the previous call's gradients were consumed when it returned
            StepTrace.Mark("bwd gap before layer");
            try
            {
                using var scope = NewDisposeScope();   // backward runs on autograd's thread: its own scope
                var saved = ctx.get_saved_variables();
                var attention = call.Attention.With(saved.Skip(1).ToList());
                List<Tensor> result;
                using (enable_grad())
                {
                    var input = call.Offload is { } buffers ? buffers.Fetch((int)ctx.get_data("slot"), saved[0], call.Model.Device) : saved[0];
                    var xd = input.detach().requires_grad_(needx);
                    StepTrace.Mark("bwd fetch input");
                    if (call.Seed is { } seed) random.manual_seed(seed);
                    if (call.KeepMlp)
                    {
                        result = [null!, .. KeptMlpLowRank(call, xd, needx, attention, saved[^2], saved[^1], grads[0])
                            ?? RecomputeAttentionOnly(call, xd, needx, attention, saved[^2], saved[^1], grads[0])];
                    }
                    else if (HandLayerGradients(call, xd, needx, attention, grads[0]) is { } byHand)
                    {
                        result = [null!, .. byHand];
                    }
                    else if (call.Chunked(xd.shape[0], xd.shape[1]))
                    {
                        result = [null!, .. ChunkedLayerGradients(call, xd, needx, attention, grads[0])];
                    }
                    else
                    {
                        var (outputs, upstream) = Recompute(call.Model, call.Layer, xd, attention, grads[0]);
                        var inputs = new List<Tensor>();
                        if (needx) inputs.Add(xd);   // the first layer's input (embeddings) needs no gradient
                        inputs.AddRange(call.Model.Checkpointing!.TrainableOf(call.Layer));
                        var g = autograd.grad(outputs, inputs, upstream, allow_unused: true);
                        result = [null!, needx ? g[0] : null!];
                        result.AddRange(g.Skip(needx ? 1 : 0));
                    }
                }
                StepTrace.Mark("bwd layer (unchunked part)");
                foreach (var t in result.Where(t => t is not null)) t.MoveToOuterDisposeScope();
                results.Keep(result);
                // The incoming gradients are handles made for us on autograd's thread, outside any dispose scope:
                // left to the finalizer, each would hold a [B, T, H] activation gradient until a GC, and memory grew
                // with every step (the cause of checkpointing using more memory than no checkpointing).
                foreach (var g in grads) g?.Dispose();
                return result;
            }
            catch (Exception e)
            {
                results.Fail(e);
                foreach (var g in grads) g?.Dispose();
                var zeros = new List<Tensor> { null!, zeros_like(ctx.get_saved_variables()[0]) };
                zeros.AddRange(call.Model.Checkpointing!.TrainableOf(call.Layer).Select(t => zeros_like(t)));
                results.Keep(zeros);
                return zeros;
            }
        }

        /// <summary>The recomputed layer as autograd outputs and their incoming gradients. The layer's output is
        /// residual + down(activation) + adapter term, and only its gradient is needed, not its value: with a down
        /// projection whose adapter only adds (or none), its frozen product is not recomputed (a quarter of the layer's
        /// multiply-adds at the Llama shapes); the activation's gradient through it is one product with the weight
        /// (a compressed one expanded once for it), and autograd adds the residual's and the adapter's paths.</summary>
        static (List<Tensor> Outputs, List<Tensor> Upstream) Recompute(CausalLM model, DecoderLayer layer, Tensor x,
            CausalLM.AttentionInputs attention, Tensor grad)
        {
            var (residual, activation) = model.LayerBeforeDown(layer, x, attention, training: true);
            var down = layer.Down;
            if (!Skippable(down)) return ([residual + down.Forward(activation)], [grad]);
            var outputs = new List<Tensor> { residual, activation };
            var upstream = new List<Tensor> { grad, InputGradient(down.Weight, grad) };   // [B, T, H] · [H, I] → [B, T, I]
            if (down.AdapterTerm(activation) is { } term) { outputs.Add(term); upstream.Add(grad); }
            return (outputs, upstream);
        }

        /// <summary>Backward of a layer whose gate and up outputs were kept: in two parts, the MLP from the kept tensors
        /// (SwiGLU and the down projection's adapter, its frozen product skipped as in <see cref="Recompute"/>), then the
        /// recomputed attention half with the gradient reaching the normalized residual through the gate and up
        /// projections (their frozen products' input gradients as two products with the weights, their adapters by
        /// autograd). Returns the gradients of x (null when not needed) and of the layer's trainable tensors, in
        /// <see cref="TrainableOf"/>'s order.</summary>
        static List<Tensor> RecomputeAttentionOnly(LayerCall call, Tensor x, bool needx, CausalLM.AttentionInputs attention,
            Tensor gateKept, Tensor upKept, Tensor grad)
        {
            var model = call.Model;
            var layer = call.Layer;
            var trainableOf = model.Checkpointing!.TrainableOfProjection!;

            // MLP: activation = swiglu(gate, up); output = residual + down(activation) + down's adapter term
            var gate = gateKept.detach().requires_grad_(true);
            var up = upKept.detach().requires_grad_(true);
            var activation = CausalLM.MlpActivation(gate, up, training: true);
            var outputs = new List<Tensor> { activation };
            var upstream = new List<Tensor> { grad.matmul(((DenseWeight)layer.Down.Weight).Tensor) };   // [B, T, H] · [H, I]
            if (layer.Down.AdapterTerm(activation) is { } downTerm) { outputs.Add(downTerm); upstream.Add(grad); }
            var downTrainable = trainableOf(layer.Down);
            var mlp = autograd.grad(outputs, [gate, up, .. downTrainable], upstream, allow_unused: true);
            Tensor gateGrad = mlp[0], upGrad = mlp[1];

            // Attention half: residual = x + attn(rms(x)); h = rms(residual) feeds gate and up
            var residual = model.AttentionBlock(layer, x, attention, training: true);
            var h = model.RmsNorm(residual, layer.PostAttentionNorm);
            long I = gateGrad.shape[^1];
            var hGrad = gateGrad.reshape(-1, I).mm(((DenseWeight)layer.Gate.Weight).Tensor)
                .addmm_(upGrad.reshape(-1, I), ((DenseWeight)layer.Up.Weight).Tensor).view(h.shape);
            outputs = [residual, h];
            upstream = [grad, hGrad];
            if (layer.Gate.AdapterTerm(h) is { } gateTerm) { outputs.Add(gateTerm); upstream.Add(gateGrad); }
            if (layer.Up.AdapterTerm(h) is { } upTerm) { outputs.Add(upTerm); upstream.Add(upGrad); }
            var others = layer.Projections.Where(p => p != layer.Down).ToList();
            var inputs = new List<Tensor>();
            if (needx) inputs.Add(x);
            foreach (var p in others) inputs.AddRange(trainableOf(p));
            var rest = autograd.grad(outputs, inputs, upstream, allow_unused: true);

            var result = new List<Tensor> { needx ? rest[0] : null! };
            int next = needx ? 1 : 0;
            foreach (var p in layer.Projections)
            {
                if (p == layer.Down) result.AddRange(mlp.Skip(2));
                else { int n = trainableOf(p).Count; result.AddRange(rest.Skip(next).Take(n)); next += n; }
            }
            return result;
        }

    }
}
