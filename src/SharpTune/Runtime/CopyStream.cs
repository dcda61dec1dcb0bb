using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Runtime;

/// <summary>
/// Copies between the GPU and pinned host memory on a side stream of the device (CopyStream.cu, a native extension built
/// on first use), so that they overlap the kernels queued on the compute stream instead of holding them up: libtorch's
/// non-blocking copies run on the compute stream, since TorchSharp binds no stream API. <see cref="Start"/> queues a copy
/// after the work queued so far; <see cref="Pending.Wait"/> makes the compute stream wait for it (the host never waits).
/// The GPU tensor's memory is not reused before the copy has run. Null from <see cref="TryStart"/> where the extension is
/// unavailable (CPU, no nvcc): callers then copy with libtorch's non-blocking copies.
/// </summary>
public static unsafe class CopyStream
{
    static readonly Lock Gate = new();
    static bool _tried;
    static CudaExtension? _native;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr*, int> _copy;
    static delegate* unmanaged<IntPtr, int> _wait;

    /// <summary>Why the side stream is not in use; null when it is (or before the first try).</summary>
    public static string? Unavailable { get; private set; }

    static bool Ready()
    {
        lock (Gate)
        {
            if (!_tried)
            {
                _tried = true;
                using var stream = typeof(CopyStream).Assembly.GetManifestResourceStream("SharpTune.Runtime.CopyStream.cu")
                    ?? throw new InvalidOperationException("CopyStream.cu is not embedded");
                _native = CudaExtension.Load("sharptune_copy_stream", new StreamReader(stream).ReadToEnd(), out string why);
                if (_native is null) Unavailable = why;
                else
                {
                    _copy = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, int>)_native.Function("cs_copy");
                    _wait = (delegate* unmanaged<IntPtr, int>)_native.Function("cs_wait");
                }
            }
            return _native is not null;
        }
    }

    /// <summary>Queues <paramref name="destination"/>.copy_(<paramref name="source"/>) on the side stream, one of them on
    /// the GPU and the other in pinned host memory (same shape and dtype, contiguous); null where the side stream is
    /// unavailable (nothing was copied).</summary>
    public static Pending? TryStart(Tensor destination, Tensor source)
    {
        if (!Ready()) return null;
        IntPtr done = 0;
        _native!.Check(_copy(destination.Handle, source.Handle, &done));
        return new Pending(done);
    }

    /// <summary>A queued copy; <see cref="Wait"/> once, before the compute stream uses the destination.</summary>
    public sealed class Pending(IntPtr done)
    {
        IntPtr _done = done;

        /// <summary>Makes the compute stream wait for the copy (on the GPU; the host goes on).</summary>
        public void Wait()
        {
            if (_done == 0) return;
            _native!.Check(_wait(_done));
            _done = 0;
        }
    }
}
