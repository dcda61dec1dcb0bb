using System.Runtime.InteropServices;

namespace SharpTune.Runtime;

/// <summary>
/// A CUDA graph of libtorch work: libtorch's <c>at::cuda::CUDAGraph</c>, which TorchSharp does not bind, through a small
/// native extension built on first use (<see cref="CudaExtension"/>). Every TorchSharp op issued while capturing goes
/// through the same libtorch and is recorded instead of run; a replay then runs all of it with one launch. Work runs on
/// a side stream while the graph is entered (capture needs a stream other than the default one); libtorch's current
/// stream is per thread, so capture and replay belong on one thread. Nothing captured may sync with the host.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    const string Source = """
        #include <ATen/cuda/CUDAEvent.h>
        #include <ATen/cuda/CUDAGraph.h>
        #include <c10/cuda/CUDAFunctions.h>
        #include <c10/cuda/CUDAStream.h>
        #include <optional>
        #include <string>

        namespace {
        thread_local std::string graph_error;

        struct Graph {
            at::cuda::CUDAGraph graph;
            c10::DeviceIndex device;
            c10::cuda::CUDAStream side;
            std::optional<c10::cuda::CUDAStream> outer;
            explicit Graph(c10::DeviceIndex d) : device(d), side(c10::cuda::getStreamFromPool(false, d)) {}
        };

        template <class F> int guarded(F f) {
            try { f(); return 0; }
            catch (const std::exception& e) { graph_error = e.what(); }
            catch (...) { graph_error = "unknown C++ exception"; }
            return 1;
        }
        }

        ST_EXPORT const char* st_graph_error() { return graph_error.c_str(); }

        ST_EXPORT void* st_graph_new(int device) {
            Graph* g = nullptr;
            guarded([&] { g = new Graph(device < 0 ? c10::cuda::current_device() : static_cast<c10::DeviceIndex>(device)); });
            return g;
        }

        // Later work goes to the side stream, after everything the current stream holds.
        ST_EXPORT int st_graph_enter(void* h) {
            return guarded([&] {
                auto* g = static_cast<Graph*>(h);
                auto outer = c10::cuda::getCurrentCUDAStream(g->device);
                at::cuda::CUDAEvent ready;
                ready.record(outer);
                ready.block(g->side);
                g->outer = outer;
                c10::cuda::setCurrentCUDAStream(g->side);
            });
        }

        // Back to the stream that was current, which waits for the side stream's work.
        ST_EXPORT int st_graph_exit(void* h) {
            return guarded([&] {
                auto* g = static_cast<Graph*>(h);
                if (!g->outer) return;
                at::cuda::CUDAEvent done;
                done.record(g->side);
                done.block(*g->outer);
                c10::cuda::setCurrentCUDAStream(*g->outer);
                g->outer.reset();
            });
        }

        // Thread-local capture mode: other threads (the .NET finalizer, a server's request threads) may use CUDA meanwhile.
        ST_EXPORT int st_graph_capture_begin(void* h) {
            return guarded([&] { static_cast<Graph*>(h)->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal); });
        }

        ST_EXPORT int st_graph_capture_end(void* h) {
            return guarded([&] { static_cast<Graph*>(h)->graph.capture_end(); });
        }

        ST_EXPORT int st_graph_replay(void* h) {
            return guarded([&] { static_cast<Graph*>(h)->graph.replay(); });
        }

        ST_EXPORT void st_graph_free(void* h) { delete static_cast<Graph*>(h); }
        """;

    sealed class Functions(CudaExtension native)
    {
        public readonly delegate* unmanaged<IntPtr> Error = (delegate* unmanaged<IntPtr>)native.Function("st_graph_error");
        public readonly delegate* unmanaged<int, IntPtr> New = (delegate* unmanaged<int, IntPtr>)native.Function("st_graph_new");
        public readonly delegate* unmanaged<IntPtr, int> Enter = (delegate* unmanaged<IntPtr, int>)native.Function("st_graph_enter");
        public readonly delegate* unmanaged<IntPtr, int> Exit = (delegate* unmanaged<IntPtr, int>)native.Function("st_graph_exit");
        public readonly delegate* unmanaged<IntPtr, int> CaptureBegin = (delegate* unmanaged<IntPtr, int>)native.Function("st_graph_capture_begin");
        public readonly delegate* unmanaged<IntPtr, int> CaptureEnd = (delegate* unmanaged<IntPtr, int>)native.Function("st_graph_capture_end");
        public readonly delegate* unmanaged<IntPtr, int> Replay = (delegate* unmanaged<IntPtr, int>)native.Function("st_graph_replay");
        public readonly delegate* unmanaged<IntPtr, void> Free = (delegate* unmanaged<IntPtr, void>)native.Function("st_graph_free");
    }

    static readonly Lazy<(Functions? Native, string Why)> Extension = new(() =>
        CudaExtension.Load("cuda_graph", Source, out string why) is { } native ? (new Functions(native), "") : (null, why));

    readonly Functions _native;
    IntPtr _handle;

    CudaGraph(Functions native, IntPtr handle) { _native = native; _handle = handle; }

    /// <summary>A graph for CUDA device <paramref name="deviceIndex"/> (-1: the current one), or null with the reason
    /// where the extension cannot be built or loaded.</summary>
    public static CudaGraph? TryCreate(int deviceIndex, out string why)
    {
        var (native, loadWhy) = Extension.Value;
        why = loadWhy;
        if (native is null) return null;
        var handle = native.New(deviceIndex);
        if (handle != IntPtr.Zero) return new CudaGraph(native, handle);
        why = LastError(native);
        return null;
    }

    /// <summary>Runs <paramref name="work"/> on the graph's stream without capturing (a warm-up: libraries make their
    /// per-stream state, such as cuBLAS workspaces, outside the capture).</summary>
    public T Eager<T>(Func<T> work)
    {
        Check(_native.Enter(_handle));
        try { return work(); }
        finally { Check(_native.Exit(_handle)); }
    }

    /// <summary>Records <paramref name="work"/> (run nothing); its result is a tensor the replays write into.</summary>
    public T Capture<T>(Func<T> work)
    {
        Check(_native.Enter(_handle));
        try
        {
            Check(_native.CaptureBegin(_handle));
            T result;
            try { result = work(); }
            catch
            {
                _native.CaptureEnd(_handle);   // ends the failed capture; its own error adds nothing
                throw;
            }
            Check(_native.CaptureEnd(_handle));
            return result;
        }
        finally { Check(_native.Exit(_handle)); }
    }

    /// <summary>Runs the captured work on the current stream.</summary>
    public void Replay() => Check(_native.Replay(_handle));

    void Check(int status)
    {
        if (status != 0) throw new InvalidOperationException($"CUDA graph: {LastError(_native)}");
    }

    static string LastError(Functions native) =>
        Marshal.PtrToStringUTF8(native.Error()) ?? "unknown error";

    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        _native.Free(_handle);
        _handle = IntPtr.Zero;
    }
}
