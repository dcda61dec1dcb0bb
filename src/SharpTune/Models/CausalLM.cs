using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>A frozen linear projection y = x Wᵀ + b, named as in the checkpoint (e.g.
/// "model.layers.3.self_attn.q_proj"). The weight is dense or quantized (<see cref="IFrozenWeight"/>); a LoRA
/// adapter, when attached, adds its low-rank update on top.</summary>
public sealed class Linear(string name, IFrozenWeight weight, Tensor? bias) : IDisposable
{
    public string Name { get; } = name;
    public IFrozenWeight Weight { get; } = weight;   // [out, in]
    public Tensor? Bias { get; } = bias;             // [out]
    public long InFeatures => Weight.InFeatures;
    public long OutFeatures => Weight.OutFeatures;

    /// <summary>Adds the adapter's contribution for input x to the frozen output y: (x, y) → y + Δ(x); null when
    /// none is attached (Peft sets this).</summary>
    public Func<Tensor, Tensor, Tensor>? Adapter { get; set; }

    /// <summary>The adapter takes rows and only adds: <see cref="Forward"/> hands it x [N, in] and the frozen output
    /// y [N, out] as a fresh tensor (no view), which it may update in place, and what it adds depends on x alone (LoRA
    /// without DoRA adds B·A·x into y without copying y first).</summary>
    public bool AdapterTakesRows { get; set; }

    /// <summary>The adapter's factors when it adds scaling · (x Aᵀ) Bᵀ and nothing else (LoRA without dropout or DoRA), as the
    /// current step uses them, for backward passes that take its gradients by hand; null otherwise (Peft sets this).</summary>
    public Func<LowRankFactors>? LowRank { get; set; }

    /// <summary>What an adapter that only adds (<see cref="AdapterTakesRows"/>) adds for rows x [N, in], written straight into
    /// a new [N, out] tensor; null: <see cref="AdapterTerm"/> adds it into zeros (two more passes over the output).</summary>
    public Func<Tensor, Tensor>? AdapterDelta { get; set; }

    /// <summary>What the adapter adds for x, without the frozen product (y taken as 0): for a recomputation that needs
    /// only gradients. Null where no adapter that only adds is attached.</summary>
    public Tensor? AdapterTerm(Tensor x)
    {
        if (Adapter is null || !AdapterTakesRows) return null;
        var rows = x.reshape(-1, InFeatures);
        var term = AdapterDelta is { } delta ? delta(rows) : Adapter(rows, zeros([rows.shape[0], OutFeatures], x.dtype, x.device));
        return term.view([.. x.shape[..^1], OutFeatures]);
    }

    public Tensor Forward(Tensor x)
    {
        if (Adapter is null) return Weight.Linear(x, Bias);
        // One-token decode steps keep their call count (they are bound by it, not by the output's size).
        if (!AdapterTakesRows || x.dim() == 2 || x.dim() == 3 && x.shape[1] == 1) return Adapter(x, Weight.Linear(x, Bias));
        var rows = x.reshape(-1, InFeatures);
        return Adapter(rows, Weight.Linear(rows, Bias)).view([.. x.shape[..^1], OutFeatures]);
    }

    public void Dispose() { Weight.Dispose(); Bias?.Dispose(); }
}

/// <summary>A low-rank adapter's update scaling · (x Aᵀ) Bᵀ: A [r, in] and B [out, r] in the activation dtype, the very tensors
/// whose gradients the training step collects.</summary>
public sealed record LowRankFactors(Tensor A, Tensor B, double Scaling);

/// <summary>One pre-norm decoder block: attention then a SwiGLU MLP, each added to the residual stream.</summary>
public sealed class DecoderLayer : IDisposable
{
    public required Tensor InputNorm, PostAttentionNorm;   // RMSNorm weights [H]
    public required Linear Q, K, V, O, Gate, Up, Down;
    public Tensor? QNorm, KNorm;                           // Qwen3: RMSNorm over each head [D]

    public IEnumerable<Linear> Projections => [Q, K, V, O, Gate, Up, Down];

    public void Dispose()
    {
        InputNorm.Dispose(); PostAttentionNorm.Dispose(); QNorm?.Dispose(); KNorm?.Dispose();
        foreach (var p in Projections) p.Dispose();
    }
}

/// <summary>
/// The Llama-family decoder (Llama, Qwen2, Qwen3) as plain tensors, close to the math:
///   x = embed(ids)
///   for each layer: x = x + attn(rms(x)); x = x + mlp(rms(x))
///   logits = lm_head(rms(x))
/// Weights are frozen; training attaches adapters to the <see cref="Linear"/> projections.
/// </summary>
public sealed class CausalLM : IDisposable
{
    public ModelConfig Config { get; }
    public Device Device { get; }
    public ScalarType DType { get; }
    public Tensor Embed { get; }          // [V, H]; on Device, or in pinned host memory (see HostEmbeddingLookup)
    public DecoderLayer[] Layers { get; }
    public Tensor Norm { get; }           // [H]
    Tensor? _lmHead;                      // [V, H]; the same tensor as Embed when tied; null once compressed
    Tensor? _expandedHead;                // a compressed head's dense form, made at the first use inside ExpandHead
    bool _expandable;

    /// <summary>lm_head [V, H] in the compute dtype. A compressed head (<see cref="CompressHead"/>) has a dense form only
    /// inside <see cref="ExpandHead"/> (generation), made at the first use there; training's loss reads it in slices
    /// (<see cref="HeadRows"/>).</summary>
    public Tensor LmHead => _lmHead ?? (_expandable
        ? _expandedHead ??= CompressedHead!.Dense(DType).DetachFromDisposeScope()
        : throw new InvalidOperationException("lm_head is compressed: read it through HeadRows, or inside ExpandHead"));

    /// <summary>lm_head kept compressed (e.g. int8), when <see cref="CompressHead"/> was called; else null.</summary>
    public IFrozenWeight? CompressedHead { get; private set; }
    readonly Tensor _invFreq;             // [D/2] fp32 on Device

    /// <summary>Looks up rows of an <see cref="Embed"/> kept in pinned host memory: (table, ids [N] on Device) → [N, H] on
    /// Device (a quantized model keeps its 1 GB embedding off the GPU). Without it, such a table is indexed on the host.</summary>
    public Func<Tensor, Tensor, Tensor>? HostEmbeddingLookup { get; set; }

    /// <summary>When set, training passes recompute each layer in backward instead of storing its activations.</summary>
    public ActivationCheckpointing? Checkpointing { get; set; }

    /// <summary>Builds the model from a weight source: <paramref name="weight"/>(name, shape) returns the
    /// tensor for a checkpoint name, already on <paramref name="device"/> in <paramref name="dtype"/>.
    /// The names here are the single table of HF weight names for this architecture family.
    /// <paramref name="projection"/>, when given, makes the seven projections' weights (e.g. quantized); by default
    /// they are dense tensors from <paramref name="weight"/>.</summary>
    public CausalLM(ModelConfig c, Device device, ScalarType dtype, Func<string, long[], Tensor> weight,
        Func<string, long[], IFrozenWeight>? projection = null)
    {
        Config = c; Device = device; DType = dtype;
        long h = c.HiddenSize, q = (long)c.NumHeads * c.HeadDim, kv = (long)c.NumKvHeads * c.HeadDim, im = c.IntermediateSize;
        projection ??= (name, shape) => new DenseWeight(weight(name, shape));
        Linear Proj(string name, long outF, long inF, bool bias) =>
            new(name, projection(name + ".weight", [outF, inF]), bias ? weight(name + ".bias", [outF]) : null);

        Embed = weight("model.embed_tokens.weight", [c.VocabSize, h]);
        Layers = new DecoderLayer[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            Layers[i] = new DecoderLayer
            {
                InputNorm = weight(p + "input_layernorm.weight", [h]),
                Q = Proj(p + "self_attn.q_proj", q, h, c.AttentionBias),
                K = Proj(p + "self_attn.k_proj", kv, h, c.AttentionBias),
                V = Proj(p + "self_attn.v_proj", kv, h, c.AttentionBias),
                O = Proj(p + "self_attn.o_proj", h, q, false),
                QNorm = c.QkNorm ? weight(p + "self_attn.q_norm.weight", [c.HeadDim]) : null,
                KNorm = c.QkNorm ? weight(p + "self_attn.k_norm.weight", [c.HeadDim]) : null,
                PostAttentionNorm = weight(p + "post_attention_layernorm.weight", [h]),
                Gate = Proj(p + "mlp.gate_proj", im, h, c.MlpBias),
                Up = Proj(p + "mlp.up_proj", im, h, c.MlpBias),
                Down = Proj(p + "mlp.down_proj", h, im, c.MlpBias),
            };
        }
        Norm = weight("model.norm.weight", [h]);
        _lmHead = c.TieWordEmbeddings ? Embed : weight("lm_head.weight", [c.VocabSize, h]);
        _invFreq = Rope.InverseFrequencies(c).to(device).DetachFromDisposeScope();
    }

    /// <summary>Runs the decoder and returns the final hidden states [B, T, H] (before lm_head).</summary>
    /// <param name="ids">token ids [B, T]</param>
    /// <param name="positions">position of each token [B, T]; null means 0..T-1 after the cache's length</param>
    /// <param name="cache">keys and values of earlier tokens, extended in place; null for a full-sequence pass</param>
    /// <param name="mask">which keys each query may see [B, 1, T, S] (bool); null means plain causal attention</param>
    /// <param name="documents">packed rows: attention stays within each document (instead of a mask)</param>
    public Tensor Hidden(Tensor ids, Tensor? positions = null, IKvCache? cache = null, Tensor? mask = null, PackedDocuments? documents = null)
    {
        using var scope = NewDisposeScope();
        long B = ids.shape[0], T = ids.shape[1];
        long past = cache?.Length ?? 0;
        long virtualCount = VirtualTokens?.shape[0] ?? 0, prepended = past == 0 ? virtualCount : 0;
        positions ??= arange(past - virtualCount + prepended, past - virtualCount + prepended + T, dtype: int64, device: Device).unsqueeze(0).expand(B, T);
        var x = EmbeddingRows(ids.reshape(-1)).view(B, T, Config.HiddenSize);
        if (virtualCount > 0)
        {
            if (documents is not null) { mask = documents.ToMask(B, T); documents = null; }   // virtual tokens serve every document
            (x, positions, mask) = WithVirtualTokens(x, positions, mask, prepended);
        }
        var (cos, sin) = Rope.CosSin(_invFreq, positions, DType);    // [B, T, D] each
        bool flash = cache is null && mask is null && FlashAttention.Available(Device, DType);
        if (documents is not null && !flash) { mask = documents.ToMask(B, T); documents = null; }
        var attention = new AttentionInputs(flash ? cos.unsqueeze(2) : cos.unsqueeze(1), flash ? sin.unsqueeze(2) : sin.unsqueeze(1), mask, documents, flash);

        for (int i = 0; i < Layers.Length; i++)
        {
            var next = Checkpointing is { } ckpt && ckpt.Covers(i) && cache is null && is_grad_enabled()
                ? ckpt.Run(this, Layers[i], x, attention)
                : LayerForward(Layers[i], x, attention, cache?.Layer(i), training: cache is null && is_grad_enabled());
            x.Dispose();   // the autograd graph keeps what it needs; free our handle now
            x = next;
        }
        cache?.Advance(T + prepended);
        if (prepended > 0) x = x.narrow(1, prepended, T);   // the virtual tokens' outputs are nobody's
        return RmsNorm(x, Norm).MoveToOuterDisposeScope();
    }

    /// <summary>Rows of the embedding for ids [N] → [N, H] on Device.</summary>
    Tensor EmbeddingRows(Tensor ids)
    {
        if (Embed.device_type == Device.type) return Embed.index_select(0, ids);
        return HostEmbeddingLookup is { } lookup ? lookup(Embed, ids) : Embed.index_select(0, ids.cpu()).to(Device);
    }

    /// <summary>Prompt tuning's virtual token embeddings [N, H] (PEFT's prompt_embeddings), set by Peft: they come
    /// before every sequence, as PEFT concatenates them to the input embeddings. Callers keep their own positions,
    /// masks and outputs; the virtual tokens sit in the KV cache after its first fill.</summary>
    public Tensor? VirtualTokens { get; set; }

    /// <summary>Prepends <paramref name="prepended"/> virtual tokens (0 after a cache's first fill) and shifts positions
    /// and the mask by the N virtual tokens: they see each other causally, and every real token sees all of them.</summary>
    (Tensor X, Tensor Positions, Tensor? Mask) WithVirtualTokens(Tensor x, Tensor positions, Tensor? mask, long prepended)
    {
        long B = x.shape[0], T = x.shape[1], N = VirtualTokens!.shape[0];
        positions = positions + N;
        if (prepended > 0)
        {
            x = cat([VirtualTokens.to(x.dtype).unsqueeze(0).expand(B, N, x.shape[2]), x], 1);
            positions = cat([arange(N, dtype: int64, device: Device).unsqueeze(0).expand(B, N), positions], 1);
        }
        if (mask is not null)
        {
            var seeVirtual = ones([B, 1, mask.shape[2], N], ScalarType.Bool, Device);
            mask = cat([seeVirtual, mask], 3);                                                    // [B, 1, T, N + S]
            if (prepended > 0)
            {
                var virtualRows = cat([ones([N, N], ScalarType.Bool, Device).tril(), zeros([N, T], ScalarType.Bool, Device)], 1);
                mask = cat([virtualRows.expand(B, 1, N, N + T), mask], 2);                          // [B, 1, N + T, N + T]
            }
        }
        return (x, positions, mask);
    }

    /// <summary>Logits [B, T, V] for the whole sequence (fp32 when the model is fp32). Training uses a chunked loss instead.</summary>
    public Tensor Forward(Tensor ids, Tensor? positions = null, IKvCache? cache = null, Tensor? mask = null, PackedDocuments? documents = null)
    {
        using var scope = NewDisposeScope();
        return F.linear(Hidden(ids, positions, cache, mask, documents), LmHead).MoveToOuterDisposeScope();
    }

    /// <summary>What every layer's attention needs, shared by all layers of one pass. Cos and sin [B, T, 1, D] for the
    /// flash layout (B, T, heads, D), else [B, 1, T, D] for SDPA's (B, heads, T, D).</summary>
    public sealed record AttentionInputs(Tensor Cos, Tensor Sin, Tensor? Mask, PackedDocuments? Documents, bool Flash)
    {
        /// <summary>The tensors to keep for a recomputation (activation checkpointing).</summary>
        public IEnumerable<Tensor> Tensors => new[] { Cos, Sin, Mask, Documents?.CuSeqLens }.OfType<Tensor>();

        /// <summary>The same inputs over other handles of the same tensors, in the order of <see cref="Tensors"/>.</summary>
        public AttentionInputs With(IReadOnlyList<Tensor> t)
        {
            int i = 2;
            var mask = Mask is null ? null : t[i++];
            var documents = Documents is null ? null : Documents with { CuSeqLens = t[i++] };
            return new AttentionInputs(t[0], t[1], mask, documents, Flash);
        }
    }

    /// <summary>One decoder block. x [B, T, H] → [B, T, H].</summary>
    /// <param name="training">rotary embeddings and SwiGLU as fused CUDA kernels with their own backward where
    /// available (<see cref="TrainingKernels"/>); off: op by op, as generation and evaluation compute them</param>
    public Tensor LayerForward(DecoderLayer l, Tensor x, AttentionInputs attention, IKvLayer? cache = null, bool training = false)
    {
        using var scope = NewDisposeScope();
        var (residual, activation) = LayerBeforeDown(l, x, attention, cache, training);
        return (residual + l.Down.Forward(activation)).MoveToOuterDisposeScope();
    }

    /// <summary>A decoder block up to its last projection: the residual stream after attention [B, T, H] and the MLP's
    /// activation silu(gate(h))·up(h) [B, T, I], the down projection's input; the block's output is
    /// residual + down(activation). Apart so that a recomputation for gradients can skip the down projection.</summary>
    public (Tensor Residual, Tensor Activation) LayerBeforeDown(DecoderLayer l, Tensor x, AttentionInputs attention, IKvLayer? cache = null,
        bool training = false)
    {
        using var scope = NewDisposeScope();
        var residual = AttentionBlock(l, x, attention, cache, training);
        var (gate, up) = MlpProjections(l, residual);
        return (residual.MoveToOuterDisposeScope(), MlpActivation(gate, up, training).MoveToOuterDisposeScope());
    }

    /// <summary>The MLP's gate and up projections of the normalized residual: [B, T, I] each.</summary>
    public (Tensor Gate, Tensor Up) MlpProjections(DecoderLayer l, Tensor residual)
    {
        using var scope = NewDisposeScope();
        var h = RmsNorm(residual, l.PostAttentionNorm);
        return (l.Gate.Forward(h).MoveToOuterDisposeScope(), l.Up.Forward(h).MoveToOuterDisposeScope());
    }

    /// <summary>The MLP half of a decoder block without its residual: down(silu(gate(h)) · up(h)), h = rms(residual). Each
    /// token on its own, so it can run over any split of the sequence. [B, T, H] → [B, T, H].</summary>
    public Tensor Mlp(DecoderLayer l, Tensor residual, bool training = false)
    {
        using var scope = NewDisposeScope();
        var (gate, up) = MlpProjections(l, residual);
        return l.Down.Forward(MlpActivation(gate, up, training)).MoveToOuterDisposeScope();
    }

    /// <summary>SwiGLU, silu(gate)·up; in training one fused kernel each way where available.</summary>
    public static Tensor MlpActivation(Tensor gate, Tensor up, bool training) =>
        training && TrainingKernels.Available(gate.device, gate.dtype) ? TrainingKernels.SwiGlu(gate, up) : F.silu(gate) * up;

    /// <summary>The attention half of a decoder block: x + attn(rms(x)), [B, T, H].</summary>
    public Tensor AttentionBlock(DecoderLayer l, Tensor x, AttentionInputs attention, IKvLayer? cache = null, bool training = false)
    {
        using var scope = NewDisposeScope();
        var h = RmsNorm(x, l.InputNorm);
        var a = Attend(l, l.Q.Forward(h), l.K.Forward(h), l.V.Forward(h), attention, cache, training);   // (B, T, nh·hd)
        return (x + l.O.Forward(a)).MoveToOuterDisposeScope();
    }

    /// <summary>Attention between the projections: q (B, T, nh·hd), k and v (B, T, nkv·hd), contiguous, as the q, k and v
    /// projections give them → (B, T, nh·hd), the o projection's input. No weights but the frozen head norms (Qwen3), so
    /// that a backward by hand can take the projections' gradients itself and autograd only this. <paramref name="rotated"/>:
    /// q and k come with their rotary embeddings applied already (flash attention without head norms only).</summary>
    public Tensor Attend(DecoderLayer l, Tensor q, Tensor k, Tensor v, AttentionInputs attention, IKvLayer? cache = null, bool training = false,
        bool rotated = false)
    {
        if (rotated && (!attention.Flash || l.QNorm is not null)) throw new ArgumentException("pre-rotated q and k need flash attention without head norms");
        using var scope = NewDisposeScope();
        var c = Config;
        long B = q.shape[0], T = q.shape[1];
        q = q.view(B, T, c.NumHeads, c.HeadDim);      // (B, T, nh, hd)
        k = k.view(B, T, c.NumKvHeads, c.HeadDim);    // (B, T, nkv, hd)
        v = v.view(B, T, c.NumKvHeads, c.HeadDim);
        if (l.QNorm is not null) { q = RmsNorm(q, l.QNorm); k = RmsNorm(k, l.KNorm!); }
        Tensor a;
        if (attention.Flash)
        {
            if (!rotated)
            {
                q = Rope.Apply(q, attention.Cos, attention.Sin, training);  // (B, T, nh, hd)
                k = Rope.Apply(k, attention.Cos, attention.Sin, training);  // (B, T, nkv, hd)
            }
            a = attention.Documents is { } docs                             // (B, T, nh, hd)
                ? FlashAttention.Varlen(q.view(B * T, c.NumHeads, c.HeadDim), k.view(B * T, c.NumKvHeads, c.HeadDim),
                    v.view(B * T, c.NumKvHeads, c.HeadDim), docs).view(B, T, c.NumHeads, c.HeadDim)
                : FlashAttention.Dense(q, k, v);
        }
        else
        {
            q = Rope.Apply(q.transpose(1, 2), attention.Cos, attention.Sin);    // (B, nh, T, hd)
            k = Rope.Apply(k.transpose(1, 2), attention.Cos, attention.Sin);    // (B, nkv, T, hd)
            v = v.transpose(1, 2);
            if (cache is not null) (k, v) = cache.Append(k, v);             // (B, nkv, S, hd), S = past + T
            bool causal = attention.Mask is null && T > 1;
            if (causal && k.shape[2] != T) throw new InvalidOperationException("a multi-token step after cached tokens needs an explicit mask");
            a = T == 1
                ? OneQueryAttention(q, k, v, attention.Mask)
                : F.scaled_dot_product_attention(q, RepeatKv(k), RepeatKv(v), attn_mask: attention.Mask, is_casual: causal).transpose(1, 2);   // (B, T, nh, hd)
        }
        return a.reshape(B, T, c.NumHeads * c.HeadDim).MoveToOuterDisposeScope();
    }

    /// <summary>RMSNorm as HF computes it: in fp32, scaled by the weight in the activation dtype. Where autograd is off on
    /// CUDA (generation, evaluation, serving), one kernel that keeps HF's two roundings (<see cref="InferenceKernels"/>);
    /// else on CUDA in bf16/fp16 libtorch's fused op, one kernel forward and backward (<see cref="FusedRmsNorm"/>).</summary>
    public Tensor RmsNorm(Tensor x, Tensor weight)
    {
        if (InferenceKernels.TryRmsNorm(x, weight, Config.RmsNormEps) is { } fused) return fused;
        return FusedRmsNorm.Available(Device, x.dtype)
            ? FusedRmsNorm.Apply(x, weight, Config.RmsNormEps)
            : FusedRmsNorm.Eager(x, weight, Config.RmsNormEps);
    }

    /// <summary>Attention of one query token (a decode step): the query heads that share a K/V head become that head's
    /// queries, (B, nh, 1, hd) → (B, nkv, rep, hd), so K and V are read once as cached instead of copied for every
    /// query head. q (B, nh, 1, hd), k and v (B, nkv, S, hd), mask [B, 1, 1, S] or null → (B, 1, nh, hd).</summary>
    Tensor OneQueryAttention(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long B = q.shape[0];
        int rep = Config.NumHeads / Config.NumKvHeads;
        var grouped = F.scaled_dot_product_attention(q.reshape(B, Config.NumKvHeads, rep, Config.HeadDim), k, v, attn_mask: mask);   // (B, nkv, rep, hd)
        return grouped.reshape(B, 1, Config.NumHeads, Config.HeadDim);
    }

    /// <summary>Grouped-query attention: each K/V head serves NumHeads/NumKvHeads query heads.
    /// (B, nkv, S, hd) → (B, nh, S, hd). TorchSharp's SDPA has no enable_gqa.</summary>
    Tensor RepeatKv(Tensor kv)
    {
        int rep = Config.NumHeads / Config.NumKvHeads;
        if (rep == 1) return kv;
        long B = kv.shape[0], S = kv.shape[2], D = kv.shape[3];
        return kv.unsqueeze(2).expand(B, Config.NumKvHeads, rep, S, D).reshape(B, Config.NumHeads, S, D);
    }

    /// <summary>Every frozen projection, in layer order (q, k, v, o, gate, up, down).</summary>
    public IEnumerable<Linear> Projections => Layers.SelectMany(l => l.Projections);

    /// <summary>Replaces the dense lm_head by <paramref name="compress"/>(lm_head) and frees the dense one. An lm_head tied
    /// to the embedding stays dense (the embedding needs the table): refused.</summary>
    public void CompressHead(Func<Tensor, IFrozenWeight> compress, string setting)
    {
        if (Config.TieWordEmbeddings)
            throw new SharpTuneException($"{setting}: this model ties lm_head to the input embedding (tie_word_embeddings in config.json), "
                + "which must stay dense; use none");
        if (_lmHead is null) throw new InvalidOperationException("lm_head is already compressed");
        CompressedHead = compress(_lmHead);
        _lmHead.Dispose();
        _lmHead = null;
    }

    /// <summary>Lets a compressed head take its dense form (<see cref="LmHead"/>, made when first used) until the result
    /// is disposed, which frees it: for generation and evaluation in a training process, outside the steps whose memory
    /// the compression is for. Nothing to do for a dense head.</summary>
    public IDisposable ExpandHead()
    {
        if (CompressedHead is null || _expandable) return new Release(() => { });
        _expandable = true;
        return new Release(() => { _expandable = false; _expandedHead?.Dispose(); _expandedHead = null; });
    }

    sealed class Release(Action release) : IDisposable
    {
        public void Dispose() => release();
    }

    /// <summary>Rows [start, start + count) of lm_head, dense in the compute dtype: a view of a dense head, a new tensor
    /// expanded from a compressed one.</summary>
    public Tensor HeadRows(long start, long count) =>
        _lmHead is { } dense ? dense.narrow(0, start, count) : CompressedHead!.DenseRows(start, count, DType);

    public void Dispose()
    {
        Embed.Dispose();
        foreach (var l in Layers) l.Dispose();
        Norm.Dispose();
        if (!Config.TieWordEmbeddings) _lmHead?.Dispose();
        CompressedHead?.Dispose();
        _expandedHead?.Dispose();
        _invFreq.Dispose();
    }
}
