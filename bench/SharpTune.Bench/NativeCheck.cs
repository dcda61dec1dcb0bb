using System.Diagnostics;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Bench;

/// <summary>Device check of <see cref="CudaExtension"/>: a raw CUDA kernel on a TorchSharp tensor, and a CUDA graph
/// captured around ordinary TorchSharp ops (a decode-like chain of small matmuls), replayed against eager.</summary>
static unsafe class NativeCheck
{
    const string Source = """
        #include <ATen/cuda/CUDAGraph.h>
        #include <ATen/cuda/CUDAEvent.h>

        __global__ void add_kernel(float* x, float v, int64_t n) {
            int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
            if (i < n) x[i] += v;
        }

        ST_EXPORT int check_add_(at::Tensor* x, float v) { ST_TRY(
            TORCH_CHECK(x->is_cuda() && x->scalar_type() == at::kFloat && x->is_contiguous(), "a contiguous float CUDA tensor");
            int64_t n = x->numel();
            add_kernel<<<(n + 255) / 256, 256, 0, at::cuda::getCurrentCUDAStream()>>>(x->data_ptr<float>(), v, n);
            C10_CUDA_KERNEL_LAUNCH_CHECK();) }

        ST_EXPORT int check_scaled(at::Tensor* x, double s, at::Tensor** out) { ST_TRY(*out = new at::Tensor(*x * s);) }

        struct Capture {
            at::cuda::CUDAGraph graph;
            c10::cuda::CUDAStream previous = at::cuda::getCurrentCUDAStream();
        };

        ST_EXPORT int check_graph_begin(Capture** out) { ST_TRY(
            auto* c = new Capture();
            auto side = at::cuda::getStreamFromPool();
            at::cuda::CUDAEvent ready; ready.record(c->previous); ready.block(side);
            at::cuda::setCurrentCUDAStream(side);
            try { c->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal); }
            catch (...) { at::cuda::setCurrentCUDAStream(c->previous); delete c; throw; }
            *out = c;) }

        ST_EXPORT int check_graph_end(Capture* c) { ST_TRY(
            auto side = at::cuda::getCurrentCUDAStream();
            try { c->graph.capture_end(); }
            catch (...) { at::cuda::setCurrentCUDAStream(c->previous); throw; }
            at::cuda::CUDAEvent done; done.record(side); done.block(c->previous);
            at::cuda::setCurrentCUDAStream(c->previous);) }

        ST_EXPORT int check_graph_replay(Capture* c) { ST_TRY(c->graph.replay();) }
        ST_EXPORT void check_graph_free(Capture* c) { delete c; }
        """;

    public static int Run(Args a)
    {
        var device = TorchRuntime.Initialize("cuda");
        var clock = Stopwatch.StartNew();
        var ext = CudaExtension.Load("check", Source, out string why, Console.Error.WriteLine);
        double buildSeconds = clock.Elapsed.TotalSeconds;
        if (ext is null) { Benches.Emit(new { bench = "native", ok = false, why }); return 1; }
        var add = (delegate* unmanaged<IntPtr, float, int>)ext.Function("check_add_");
        var scaled = (delegate* unmanaged<IntPtr, double, IntPtr*, int>)ext.Function("check_scaled");
        var begin = (delegate* unmanaged<IntPtr*, int>)ext.Function("check_graph_begin");
        var end = (delegate* unmanaged<IntPtr, int>)ext.Function("check_graph_end");
        var replay = (delegate* unmanaged<IntPtr, int>)ext.Function("check_graph_replay");
        var free = (delegate* unmanaged<IntPtr, void>)ext.Function("check_graph_free");

        using var scope = NewDisposeScope();
        var x = arange(1000, dtype: float32, device: device);
        ext.Check(add(x.Handle, 1.5f));
        bool kernelOk = x.cpu().allclose(arange(1000, dtype: float32) + 1.5f, 0, 0);
        IntPtr made;
        ext.Check(scaled(x.Handle, 2.0, &made));
        using var doubled = Tensor.UnsafeCreateTensor(made);
        bool returnOk = doubled.cpu().allclose(x.cpu() * 2, 0, 0);
        try { ext.Check(add(zeros(4, dtype: int64, device: device).Handle, 1)); } catch (InvalidOperationException e) { Console.Error.WriteLine($"expected error: {e.Message}"); }

        // A decode-like chain: 28 layers of a few small bf16 matmuls and pointwise ops on one token.
        int hidden = 1536, layers = 28;
        manual_seed(0);
        var weights = Enumerable.Range(0, layers * 3).Select(_ => (randn(hidden, hidden, dtype: bfloat16, device: device) * 0.02f)).ToArray();
        var input = randn(1, hidden, dtype: bfloat16, device: device);
        Tensor Step(Tensor h)
        {
            using var inner = NewDisposeScope();
            for (int l = 0; l < layers; l++)
            {
                var n = h * rsqrt(h.to(float32).pow(2).mean([-1], keepdim: true) + 1e-6f).to(bfloat16);
                var a = nn.functional.silu(n.matmul(weights[3 * l])) * n.matmul(weights[3 * l + 1]);
                h = h + a.matmul(weights[3 * l + 2]);
            }
            return h.MoveToOuterDisposeScope();
        }
        using (var warm = NewDisposeScope()) { Step(input); Step(input); }
        cuda.synchronize();
        IntPtr graph;
        ext.Check(begin(&graph));
        var output = Step(input);
        ext.Check(end(graph));
        input.copy_(randn(1, hidden, dtype: bfloat16, device: device));
        ext.Check(replay(graph));
        var eager = Step(input);
        double graphError = (output - eager).abs().max().to(float32).item<float>();
        bool graphOk = graphError <= 1e-2 * eager.abs().max().to(float32).item<float>();
        IntPtr captured = graph;

        double Time(Action body, int n)
        {
            body(); cuda.synchronize();
            var c = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) body();
            cuda.synchronize();
            return c.Elapsed.TotalMilliseconds / n;
        }
        double eagerMs = Time(() => { using var s = NewDisposeScope(); Step(input); }, 200);
        double graphMs = Time(() => ext.Check(replay(captured)), 200);
        free(captured);
        Benches.Emit(new
        {
            bench = "native", ok = kernelOk && returnOk && graphOk, kernel_ok = kernelOk, returned_tensor_ok = returnOk,
            graph_equals_eager = graphOk, graph_max_abs_error = graphError, build_or_load_s = buildSeconds, ops_per_step = layers * 12,
            eager_ms_per_step = eagerMs, graph_ms_per_step = graphMs, library = ext.LibraryPath,
        });
        return kernelOk && returnOk && graphOk ? 0 : 1;
    }
}
