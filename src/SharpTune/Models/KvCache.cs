using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>Where a forward pass keeps the keys and values of earlier tokens. <see cref="KvCache"/> is one
/// batch's contiguous cache; serving keeps sequences that join and leave a batch in a shared pool.</summary>
public interface IKvCache
{
    /// <summary>Positions already cached (the default positions of the next tokens start here).</summary>
    long Length { get; }
    IKvLayer Layer(int i);
    /// <summary>Called once per forward pass, after every layer appended its T new positions.</summary>
    void Advance(long t);
}

public interface IKvLayer
{
    /// <summary>Stores k, v (B, nkv, T, hd); returns the keys and values (B, nkv, S, hd) the new queries attend to.</summary>
    (Tensor K, Tensor V) Append(Tensor k, Tensor v);
}

/// <summary>Keys and values of the tokens seen so far, preallocated for <c>capacity</c> positions so that a
/// decode step writes in place instead of concatenating. Layout per layer: (B, nkv, capacity, hd).
/// With <see cref="StepColumn"/> set, a one-token pass writes at the column that tensor holds and attends over the
/// whole capacity (the caller masks the columns not written yet), or over the first <see cref="StepWidth"/>: without
/// a width every step has the same shapes and reads its position from the device, so a CUDA graph can replay it.</summary>
public sealed class KvCache : IKvCache, IDisposable
{
    readonly LayerCache[] _layers;
    public long Length { get; private set; }
    public long Capacity { get; }

    /// <summary>int64 [1] on the device: the column a one-token pass writes to; null to append after <see cref="Length"/>.</summary>
    public Tensor? StepColumn { get; set; }

    /// <summary>How many leading columns a one-token pass with a <see cref="StepColumn"/> attends to; null: all of them.</summary>
    public long? StepWidth { get; set; }

    public KvCache(ModelConfig c, long batch, long capacity, ScalarType dtype, Device device)
    {
        Capacity = capacity;
        _layers = Enumerable.Range(0, c.NumLayers).Select(_ => new LayerCache(this,
            zeros([batch, c.NumKvHeads, capacity, c.HeadDim], dtype, device).DetachFromDisposeScope(),
            zeros([batch, c.NumKvHeads, capacity, c.HeadDim], dtype, device).DetachFromDisposeScope())).ToArray();
    }

    public LayerCache Layer(int i) => _layers[i];
    IKvLayer IKvCache.Layer(int i) => _layers[i];

    public void Advance(long t) => Length += t;

    public void Dispose()
    {
        foreach (var l in _layers) { l.Keys.Dispose(); l.Values.Dispose(); }
    }

    public sealed class LayerCache(KvCache owner, Tensor keys, Tensor values) : IKvLayer
    {
        internal Tensor Keys { get; } = keys;
        internal Tensor Values { get; } = values;

        /// <summary>Stores k, v (B, nkv, T, hd) after the cached positions; returns views of all S = past + T
        /// (or, for one token with a step column, of the whole capacity).</summary>
        public (Tensor K, Tensor V) Append(Tensor k, Tensor v)
        {
            long past = owner.Length, t = k.shape[2];
            if (t == 1 && owner.StepColumn is { } column)
            {
                Keys.index_copy_(2, column, k);
                Values.index_copy_(2, column, v);
                return owner.StepWidth is { } width ? (Keys.narrow(2, 0, width), Values.narrow(2, 0, width)) : (Keys, Values);
            }
            if (past + t > owner.Capacity)
                throw new SharpTuneException($"the KV cache holds {owner.Capacity} positions; {past + t} were needed");
            Keys.narrow(2, past, t).copy_(k);
            Values.narrow(2, past, t).copy_(v);
            return (Keys.narrow(2, 0, past + t), Values.narrow(2, 0, past + t));
        }
    }
}
