using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>One checkpointed layer's saved input in pinned host memory (activation_offload): copied out by libtorch's
/// non-blocking copy when the layer runs forward, and back to the GPU one layer ahead of the backward that needs it
/// (<see cref="Prefetch"/>), on a side stream (<see cref="CopyStream"/>) so that the copy overlaps the backward of the
/// layer after it instead of holding up the compute stream. Without the side stream (no CUDA extension), the copy back
/// is libtorch's non-blocking copy when the input is needed.</summary>
internal sealed class OffloadedInput
{
    readonly Device _device;
    Tensor? _fetched;
    CopyStream.Pending? _pending;
    bool _taken;

    /// <summary>Starts copying <paramref name="x"/> (on the GPU) to the host; <paramref name="previous"/> is the input of
    /// the layer before in the same forward pass (null for the first), whose backward runs right after this one's.</summary>
    public OffloadedInput(Tensor x, OffloadedInput? previous)
    {
        _device = x.device;
        Host = x.to(CPU, non_blocking: true).DetachFromDisposeScope();   // libtorch pins the destination itself
        Previous = previous;
    }

    public Tensor Host { get; }
    public OffloadedInput? Previous { get; }

    /// <summary>Starts the copy back to the GPU on the side stream, if not started yet and the side stream is available.</summary>
    public void Prefetch()
    {
        if (_taken || _fetched is not null) return;
        var gpu = empty(Host.shape, Host.dtype, _device).DetachFromDisposeScope();
        _pending = CopyStream.TryStart(gpu, Host);
        if (_pending is null) gpu.Dispose();
        else _fetched = gpu;
    }

    /// <summary>The input on the GPU, ready for the compute stream (the caller disposes it); once.</summary>
    public Tensor Take()
    {
        if (_taken) throw new InvalidOperationException("an offloaded layer input was taken twice");
        _taken = true;
        Tensor result;
        if (_fetched is { } fetched)
        {
            _pending!.Wait();
            _fetched = null;
            result = fetched;
        }
        else result = Host.to(_device, non_blocking: true).DetachFromDisposeScope();
        // The host block returns to libtorch's pinned cache once the graph lets go of it too; the copies queued from it
        // are recorded there, so it is not reused before they have run.
        Host.Dispose();
        return result;
    }
}
