using System.Runtime.InteropServices;

namespace SharpTune.Runtime;

/// <summary>How often libtorch's caching device allocator and its pinned host cache went to the driver (AllocatorCounters.cu,
/// built on first use), and how long the host cache's cudaHostAlloc calls took: what makes a step slow that meets tensor
/// sizes the caches do not hold yet (a row of a new length). For <see cref="StepTrace"/>; null where CUDA or the extension
/// is unavailable.</summary>
public static unsafe class AllocatorCounters
{
    /// <summary>Running totals, except <see cref="Segments"/>, <see cref="ReservedBytes"/> and <see cref="PinnedBytes"/> (now).</summary>
    public sealed record Totals(long DeviceAllocs, long DeviceFrees, long Retries, long StreamSyncs, long Segments, long ReservedBytes,
        long HostAllocs, long HostAllocMicroseconds, long HostFrees, long PinnedBytes);

    static readonly Lazy<(CudaExtension? Extension, IntPtr Function)> Native = new(() =>
    {
        using var stream = typeof(AllocatorCounters).Assembly.GetManifestResourceStream("SharpTune.Runtime.AllocatorCounters.cu")
            ?? throw new InvalidOperationException("AllocatorCounters.cu is not embedded");
        var ext = CudaExtension.Load("sharptune_allocator_counters", new StreamReader(stream).ReadToEnd(), out string why);
        if (ext is null) Console.Error.WriteLine($"step trace: allocator counters unavailable ({why})");
        return (ext, ext?.Function("ac_counters") ?? 0);
    });

    public static Totals? Read()
    {
        var (ext, function) = Native.Value;
        if (ext is null) return null;
        long* v = stackalloc long[10];
        ext.Check(((delegate* unmanaged<long*, int>)function)(v));
        return new Totals(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]);
    }
}
