using System.Runtime.InteropServices;

namespace SharpTune.Runtime;

/// <summary>
/// A CUDA event on a device's default stream, the stream every libtorch op of this process runs on (TorchSharp binds
/// no stream API), through the CUDA runtime that libtorch loaded. The host can then wait for the work queued up to the
/// event without draining what was queued after it: the trainer reads a step's loss while the next step runs, where
/// <c>item()</c> would wait for both. <see cref="TryCreate"/> returns null where no CUDA runtime is loaded (CPU).
/// </summary>
public sealed unsafe class CudaEvent : IDisposable
{
    const uint DisableTiming = 2;   // cudaEventDisableTiming: the lightest kind of event
    const uint Timed = 0;           // cudaEventDefault: records a time
    static readonly Lazy<Api?> Runtime = new(Api.Find);
    readonly Api _api;
    readonly int _device;
    IntPtr _event;

    CudaEvent(Api api, int device, IntPtr handle) => (_api, _device, _event) = (api, device, handle);

    /// <summary>An event on <paramref name="device"/>, or null where the CUDA runtime is not loaded in this process.</summary>
    /// <param name="timed">whether <see cref="SecondsBetween"/> may measure it (a slightly heavier event)</param>
    public static CudaEvent? TryCreate(int device, bool timed = false)
    {
        if (Runtime.Value is not { } api) return null;
        IntPtr handle = 0;
        int previous = api.Enter(device);
        try { Api.Check(api.EventCreateWithFlags(&handle, timed ? Timed : DisableTiming), "cudaEventCreateWithFlags"); }
        finally { api.Leave(device, previous); }
        return new CudaEvent(api, device, handle);
    }

    /// <summary>Marks the point of the default stream that <see cref="Wait"/> waits for: everything queued so far.</summary>
    public void Record()
    {
        int previous = _api.Enter(_device);
        try { Api.Check(_api.EventRecord(_event, 0), "cudaEventRecord"); }
        finally { _api.Leave(_device, previous); }
    }

    /// <summary>Whether the work queued before <see cref="Record"/> has run (true before any record); does not block.</summary>
    public bool Completed()
    {
        int status = _api.EventQuery(_event);
        if (status == NotReady) return false;
        Api.Check(status, "cudaEventQuery");
        return true;
    }

    const int NotReady = 600;   // cudaErrorNotReady

    /// <summary>Blocks until the work queued before <see cref="Record"/> has run.</summary>
    public void Wait() => Api.Check(_api.EventSynchronize(_event), "cudaEventSynchronize");

    /// <summary>Seconds of the GPU's own clock from <paramref name="start"/> to <paramref name="end"/> (both timed and
    /// recorded; waits for <paramref name="end"/>): when the work before each ran, however late the host looks.</summary>
    public static double SecondsBetween(CudaEvent start, CudaEvent end)
    {
        end.Wait();
        float ms = 0;
        Api.Check(start._api.EventElapsedTime(&ms, start._event, end._event), "cudaEventElapsedTime");
        return ms / 1000.0;
    }

    public void Dispose()
    {
        if (_event != 0) _api.EventDestroy(_event);
        _event = 0;
    }

    sealed class Api
    {
        public delegate* unmanaged<IntPtr*, uint, int> EventCreateWithFlags;
        public delegate* unmanaged<IntPtr, IntPtr, int> EventRecord;
        public delegate* unmanaged<IntPtr, int> EventSynchronize;
        public delegate* unmanaged<IntPtr, int> EventQuery;
        public delegate* unmanaged<IntPtr, int> EventDestroy;
        public delegate* unmanaged<float*, IntPtr, IntPtr, int> EventElapsedTime;
        public delegate* unmanaged<int*, int> GetDevice;
        public delegate* unmanaged<int, int> SetDevice;

        /// <summary>The runtime libtorch_cuda loaded (found by its soname among the loaded libraries), or null.</summary>
        public static Api? Find()
        {
            foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so" })
            {
                if (!NativeLibrary.TryLoad(name, out var lib)) continue;
                if (!NativeLibrary.TryGetExport(lib, "cudaEventCreateWithFlags", out var create)) continue;
                return new Api
                {
                    EventCreateWithFlags = (delegate* unmanaged<IntPtr*, uint, int>)create,
                    EventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "cudaEventRecord"),
                    EventSynchronize = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cudaEventSynchronize"),
                    EventQuery = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cudaEventQuery"),
                    EventDestroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cudaEventDestroy"),
                    EventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "cudaEventElapsedTime"),
                    GetDevice = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(lib, "cudaGetDevice"),
                    SetDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(lib, "cudaSetDevice"),
                };
            }
            return null;
        }

        /// <summary>Makes <paramref name="device"/> current on this thread (libtorch's ops set and restore it around
        /// each call, so the thread's own current device may be another); returns the one to restore.</summary>
        public int Enter(int device)
        {
            int previous = 0;
            Check(GetDevice(&previous), "cudaGetDevice");
            if (previous != device) Check(SetDevice(device), "cudaSetDevice");
            return previous;
        }

        public void Leave(int device, int previous)
        {
            if (previous != device) SetDevice(previous);
        }

        public static void Check(int status, string call)
        {
            if (status != 0) throw new InvalidOperationException($"{call} failed with CUDA error {status}");
        }
    }
}
