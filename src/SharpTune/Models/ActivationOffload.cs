using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// The saved inputs of checkpointed layers in pinned host memory (activation_offload). Copies run on a side stream
/// (<see cref="CopyStream"/>) so that they overlap the layers' kernels: out while the layer's forward runs, and back
/// one layer ahead of the backward that needs it (<see cref="OffloadedInput.Prefetch"/>). The pinned buffers are kept and
/// reused from step to step, also for shorter rows (pinning new host memory for each new row length costs more than a
/// step). Without the side stream (no CUDA extension), libtorch's non-blocking copies on the compute stream.
/// </summary>
internal sealed class ActivationOffload
{
    readonly List<Tensor> _free = [];   // flat pinned buffers that hold no saved input
    OffloadedInput? _last;              // the previous layer's input in the current forward pass

    /// <summary>Starts copying layer input <paramref name="x"/> (on the GPU) to host memory. <paramref name="firstLayer"/>:
    /// a new forward pass starts (the inputs of one pass are fetched back in reverse order).</summary>
    public OffloadedInput Save(Tensor x, bool firstLayer)
    {
        var contiguous = x.contiguous();
        var buffer = Rent(contiguous.numel(), contiguous.dtype);
        var host = buffer.narrow(0, 0, contiguous.numel()).view(contiguous.shape).DetachFromDisposeScope();
        var pending = CopyStream.TryStart(host, contiguous);
        if (pending is null)
        {
            Return(buffer);
            host.Dispose();
            buffer = null;
            host = x.to(CPU, non_blocking: true).DetachFromDisposeScope();   // libtorch pins the destination itself
        }
        if (!ReferenceEquals(contiguous, x)) contiguous.Dispose();
        var saved = new OffloadedInput(this, host, buffer, x.device, firstLayer ? null : _last);
        _last = saved;
        return saved;
    }

    /// <summary>A pinned buffer of at least <paramref name="count"/> values: the smallest free one that fits, else a new
    /// one (free ones too small for it are released: rows this long make them unlikely to be used again).</summary>
    Tensor Rent(long count, ScalarType dtype)
    {
        lock (_free)
        {
            var fit = _free.Where(b => b.dtype == dtype && b.numel() >= count).MinBy(b => b.numel());
            if (fit is not null) { _free.Remove(fit); return fit; }
            foreach (var small in _free.Where(b => b.dtype == dtype).ToList()) { _free.Remove(small); small.Dispose(); }
        }
        using var pageable = empty(count, dtype);
        return pageable.pin_memory().DetachFromDisposeScope();
    }

    /// <summary>Takes a buffer back once its copy to the GPU is queued: a later copy into it is queued on the same side
    /// stream, so it runs after.</summary>
    internal void Return(Tensor buffer)
    {
        lock (_free) _free.Add(buffer);
    }
}

/// <summary>One checkpointed layer's input in host memory (<see cref="Host"/>), fetched back once by <see cref="Take"/>.</summary>
internal sealed class OffloadedInput(ActivationOffload owner, Tensor host, Tensor? buffer, Device device, OffloadedInput? previous)
{
    public Tensor Host { get; } = host;
    /// <summary>The input of the layer before this one in the same forward pass, whose backward runs next.</summary>
    public OffloadedInput? Previous { get; } = previous;
    Tensor? _fetched;
    CopyStream.Pending? _pending;
    bool _taken;

    /// <summary>Starts the copy back to the GPU (on the side stream), if not started yet.</summary>
    public void Prefetch()
    {
        if (_taken || _fetched is not null || buffer is null) return;
        var gpu = empty(Host.shape, Host.dtype, device).DetachFromDisposeScope();
        _pending = CopyStream.TryStart(gpu, Host);
        _fetched = gpu;
    }

    /// <summary>The input on the GPU, ready for the compute stream (the caller disposes it); once.</summary>
    public Tensor Take()
    {
        if (_taken) throw new InvalidOperationException("an offloaded layer input was taken twice");
        Tensor result;
        if (buffer is null) result = Host.to(device, non_blocking: true).DetachFromDisposeScope();
        else
        {
            Prefetch();
            _pending!.Wait();
            result = _fetched!;
            owner.Return(buffer);
        }
        _taken = true;
        _fetched = null;
        Host.Dispose();
        return result;
    }
}
