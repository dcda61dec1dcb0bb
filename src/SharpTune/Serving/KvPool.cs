using SharpTune.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Serving;

/// <summary>
/// The KV-cache memory of a server: per layer, one pool of token slots for keys and one for values
/// ([slots, nkv, hd] each). A sequence owns one slot per cached token, taken when it joins the batch and given
/// back when it leaves, so sequences of any length share a fixed budget with no fragmentation.
/// Slot 0 is scratch: padding writes there and padded reads come from there (masked out).
/// </summary>
public sealed class KvPool : IDisposable
{
    readonly Tensor[] _keys, _values;
    readonly Stack<int> _free;

    public int Capacity { get; }
    public int FreeSlots => _free.Count;

    /// <summary>Bytes of one token's keys and values over all layers.</summary>
    public static long BytesPerToken(ModelConfig c, ScalarType dtype) =>
        2L * c.NumLayers * c.NumKvHeads * c.HeadDim * (dtype is ScalarType.Float32 ? 4 : dtype is ScalarType.Float64 ? 8 : 2);

    public KvPool(ModelConfig c, int tokens, ScalarType dtype, Device device)
    {
        if (tokens < 2) throw new SharpTuneException($"--kv-tokens must be at least 2, got {tokens}");
        Capacity = tokens - 1;
        _keys = new Tensor[c.NumLayers];
        _values = new Tensor[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            _keys[i] = zeros([tokens, c.NumKvHeads, c.HeadDim], dtype, device).DetachFromDisposeScope();
            _values[i] = zeros([tokens, c.NumKvHeads, c.HeadDim], dtype, device).DetachFromDisposeScope();
        }
        _free = new Stack<int>(Enumerable.Range(1, tokens - 1).Reverse());
    }

    public int[] Take(int n)
    {
        if (n > _free.Count) throw new InvalidOperationException($"{n} KV slots asked, {_free.Count} free");
        var slots = new int[n];
        for (int i = 0; i < n; i++) slots[i] = _free.Pop();
        return slots;
    }

    public void Return(int[] slots)
    {
        for (int i = slots.Length - 1; i >= 0; i--) _free.Push(slots[i]);
    }

    /// <summary>A cache for one forward pass: row b writes its T new tokens' keys and values into
    /// <paramref name="writeSlots"/> [B·T] and attends over <paramref name="readSlots"/> [B·S].</summary>
    internal IKvCache View(Tensor writeSlots, Tensor readSlots, long batch, long keys) => new PassCache(this, writeSlots, readSlots, batch, keys);

    sealed class PassCache(KvPool pool, Tensor writeSlots, Tensor readSlots, long batch, long keys) : IKvCache
    {
        public long Length => 0;   // positions are always given explicitly
        public IKvLayer Layer(int i) => new LayerView(pool._keys[i], pool._values[i], writeSlots, readSlots, batch, keys);
        public void Advance(long t) { }
    }

    sealed class LayerView(Tensor keyPool, Tensor valuePool, Tensor writeSlots, Tensor readSlots, long batch, long keys) : IKvLayer
    {
        public (Tensor K, Tensor V) Append(Tensor k, Tensor v)
        {
            long nkv = k.shape[1], hd = k.shape[3];
            keyPool.index_copy_(0, writeSlots, k.transpose(1, 2).reshape(-1, nkv, hd));      // (B·T, nkv, hd)
            valuePool.index_copy_(0, writeSlots, v.transpose(1, 2).reshape(-1, nkv, hd));
            var K = keyPool.index_select(0, readSlots).view(batch, keys, nkv, hd).transpose(1, 2);   // (B, nkv, S, hd)
            var V = valuePool.index_select(0, readSlots).view(batch, keys, nkv, hd).transpose(1, 2);
            return (K, V);
        }
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
