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
        #include <optional>

        struct Graph {
            at::cuda::CUDAGraph graph;
            c10::DeviceIndex device;
            c10::cuda::CUDAStream side;
            std::optional<c10::cuda::CUDAStream> outer;
            explicit Graph(c10::DeviceIndex d) : device(d), side(at::cuda::getStreamFromPool(false, d)) {}
        };

        ST_EXPORT int st_graph_new(int device, Graph** out) { ST_TRY(
            *out = new Graph(device < 0 ? c10::cuda::current_device() : static_cast<c10::DeviceIndex>(device));) }

        // Later work goes to the side stream, after everything the current stream holds.
        ST_EXPORT int st_graph_enter(Graph* g) { ST_TRY(
            auto outer = at::cuda::getCurrentCUDAStream(g->device);
            at::cuda::CUDAEvent ready;
            ready.record(outer);
            ready.block(g->side);
            g->outer = outer;
            at::cuda::setCurrentCUDAStream(g->side);) }

        // Back to the stream that was current, which waits for the side stream's work.
        ST_EXPORT int st_graph_exit(Graph* g) { ST_TRY(
            if (g->outer) {
                at::cuda::CUDAEvent done;
                done.record(g->side);
                done.block(*g->outer);
                at::cuda::setCurrentCUDAStream(*g->outer);
                g->outer.reset();
            }) }

        // Thread-local capture mode: other threads (the .NET finalizer, a server's request threads) may use CUDA meanwhile.
        ST_EXPORT int st_graph_capture_begin(Graph* g) { ST_TRY(g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);) }
        ST_EXPORT int st_graph_capture_end(Graph* g) { ST_TRY(g->graph.capture_end();) }
        ST_EXPORT int st_graph_replay(Graph* g) { ST_TRY(g->graph.replay();) }
        ST_EXPORT void st_graph_free(Graph* g) { delete g; }
        """;

    sealed class Functions(CudaExtension native)
    {
        public readonly CudaExtension Native = native;
        public readonly delegate* unmanaged<int, IntPtr*, int> New = (delegate* unmanaged<int, IntPtr*, int>)native.Function("st_graph_new");
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
        IntPtr handle;
        if (native.New(deviceIndex, &handle) == 0) return new CudaGraph(native, handle);
        try { native.Native.Check(1); }
        catch (InvalidOperationException e) { why = e.Message; }
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

    void Check(int status) => _native.Native.Check(status);

    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        _native.Free(_handle);
        _handle = IntPtr.Zero;
    }
}
