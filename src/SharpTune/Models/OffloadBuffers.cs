using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Host buffers that hold the offloaded checkpoints' saved inputs (activation_offload), owned here and reused across
/// steps and row lengths. Left to libtorch, each copy to the host took a fresh block of its pinned host cache, which keys
/// blocks by power-of-two size: a row of a new length pinned a new block per layer with cudaHostAlloc (slow), and the cache
/// kept every size it ever held. Here each call takes a free buffer (grown, to a power of two of its elements, only when a
/// row needs more than it holds) and writes the input into its front; backward copies it back and frees the buffer.
/// On CUDA the buffers are pinned and both copies are queued on the compute stream without waiting: a buffer is written
/// again only by a copy queued after the one that read it. On the CPU the buffers are plain memory (the same path, tested).
/// </summary>
sealed class OffloadBuffers
{
    readonly Lock _gate = new();
    readonly List<Tensor> _buffers = [];
    readonly Stack<int> _free = new();

    /// <summary>How many times a buffer was allocated or grown (each one a pinning on CUDA).</summary>
    public int Allocations { get; private set; }
    /// <summary>How many buffers exist: the most inputs held at once.</summary>
    public int Count { get { lock (_gate) return _buffers.Count; } }

    /// <summary>Copies <paramref name="x"/> into a free buffer; returns the buffer's number and the view holding it
    /// (x's shape), to save for backward.</summary>
    public (int Slot, Tensor Held) Store(Tensor x)
    {
        int slot;
        Tensor buffer;
        lock (_gate)
        {
            if (!_free.TryPop(out slot))
            {
                slot = _buffers.Count;
                _buffers.Add(empty(0, x.dtype).DetachFromDisposeScope());
            }
            buffer = _buffers[slot];
        }
        long n = x.numel();
        if (buffer.numel() < n || buffer.dtype != x.dtype)
        {
            buffer.Dispose();
            var plain = empty((long)BitOperations.RoundUpToPowerOf2((ulong)n), x.dtype).DetachFromDisposeScope();
            if (x.device_type == DeviceType.CUDA)
            {
                buffer = plain.pin_memory().DetachFromDisposeScope();
                plain.Dispose();
            }
            else buffer = plain;
            lock (_gate) { _buffers[slot] = buffer; Allocations++; }
        }
        var held = buffer.narrow(0, 0, n).view(x.shape);
        using (no_grad()) held.copy_(x, true);   // bytes only: no graph through the buffer
        return (slot, held);
    }

    /// <summary>The input saved in <paramref name="slot"/> (<paramref name="held"/>, as <see cref="Store"/> returned it)
    /// on <paramref name="device"/>, and the buffer freed for the next call: the copy back is queued before any later
    /// copy into it.</summary>
    public Tensor Fetch(int slot, Tensor held, Device device)
    {
        // On the CPU a clone: the input must not share the buffer, which the next Store overwrites.
        var input = device.type == DeviceType.CUDA ? held.to(device, non_blocking: true) : held.clone();
        lock (_gate) if (!_free.Contains(slot)) _free.Push(slot);
        return input;
    }

    /// <summary>Frees every buffer: at the start of a step, no earlier call's backward is still to come (one that never
    /// ran, after an error, would otherwise keep its buffer).</summary>
    public void ReleaseAll()
    {
        lock (_gate)
        {
            _free.Clear();
            for (int i = _buffers.Count - 1; i >= 0; i--) _free.Push(i);
        }
    }
}
