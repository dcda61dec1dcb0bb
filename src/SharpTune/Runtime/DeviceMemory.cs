using System.Runtime.InteropServices;

namespace SharpTune.Runtime;

/// <summary>The CUDA caching allocator's statistics, which TorchSharp does not bind (DeviceMemory.cu, built on first
/// use): bytes held by live tensors and bytes the allocator reserved from the driver, now and at their peak since the
/// last <see cref="ResetPeak"/>. For accounting a step's memory; null where CUDA or the extension is unavailable.</summary>
public static unsafe class DeviceMemory
{
    public sealed record Stats(long Allocated, long PeakAllocated, long Reserved, long PeakReserved);

    static readonly Lock Gate = new();
    static bool _tried;
    static delegate* unmanaged<long*, int> _stats, _deviceMemory;
    static delegate* unmanaged<int> _resetPeak, _emptyCache;
    static delegate* unmanaged<IntPtr> _lastError;

    /// <summary>Why the statistics are unavailable; null when they are (or before the first call).</summary>
    public static string? Unavailable { get; private set; }

    static bool Ready()
    {
        lock (Gate)
        {
            if (!_tried)
            {
                _tried = true;
                using var stream = typeof(DeviceMemory).Assembly.GetManifestResourceStream("SharpTune.Runtime.DeviceMemory.cu")
                    ?? throw new InvalidOperationException("DeviceMemory.cu is not embedded");
                var ext = CudaExtension.Load("sharptune_memory", new StreamReader(stream).ReadToEnd(), out string why);
                if (ext is null) Unavailable = why;
                else
                {
                    _stats = (delegate* unmanaged<long*, int>)ext.Function("dm_stats");
                    _deviceMemory = (delegate* unmanaged<long*, int>)ext.Function("dm_device_memory");
                    _resetPeak = (delegate* unmanaged<int>)ext.Function("dm_reset_peak");
                    _emptyCache = (delegate* unmanaged<int>)ext.Function("dm_empty_cache");
                    _lastError = (delegate* unmanaged<IntPtr>)ext.Function("dm_last_error");
                }
            }
            return Unavailable is null;
        }
    }

    /// <summary>The statistics now; null where unavailable (<see cref="Unavailable"/> says why).</summary>
    public static Stats? Current()
    {
        if (!Ready()) return null;
        long* s = stackalloc long[4];
        if (_stats(s) == 0) return new Stats(s[0], s[1], s[2], s[3]);
        Unavailable = Marshal.PtrToStringUTF8(_lastError());
        return null;
    }

    /// <summary>Free and total bytes of the current device as the driver counts them (all processes, CUDA contexts
    /// included: what nvidia-smi shows as used is total − free); null where unavailable.</summary>
    public static (long Free, long Total)? Device()
    {
        if (!Ready()) return null;
        long* s = stackalloc long[2];
        if (_deviceMemory(s) == 0) return (s[0], s[1]);
        Unavailable = Marshal.PtrToStringUTF8(_lastError());
        return null;
    }

    public static void ResetPeak() { if (Ready()) _resetPeak(); }

    /// <summary>Returns the allocator's cached, unused blocks to the driver (what nvidia-smi counts as used).</summary>
    public static void EmptyCache() { if (Ready()) _emptyCache(); }
}
