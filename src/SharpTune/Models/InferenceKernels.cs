using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Fused CUDA kernels for inference (a native extension, <see cref="CudaExtension"/>), where a decode step is bound by
/// the number of kernels rather than by the GPU's bandwidth:
/// - RMSNorm in one kernel instead of eight (57 norms per token at 1.5B: ~400 kernels fewer). HF's roundings are kept:
///   the sum of squares in fp32, x·rsqrt(mean + eps) rounded to the activation dtype, times the weight in that dtype.
/// - Rotary embeddings in one kernel instead of four per tensor, with the same roundings as the op-by-op form
///   (x·cos and roll(x)·sin each rounded, then their sum), so the results are identical.
/// No backward: used only where autograd is off. Checked once per process against the op-by-op forms; where the
/// extension is unavailable or disagrees, the Try methods return null and callers compute op by op.
/// </summary>
internal static unsafe class InferenceKernels
{
    const string Source = """
        template <typename T, int Threads>
        __global__ void rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, int64_t h, float eps) {
            const T* xr = x + blockIdx.x * h;
            T* yr = y + blockIdx.x * h;
            float sum = 0.f;
            for (int64_t i = threadIdx.x; i < h; i += Threads) { float v = static_cast<float>(xr[i]); sum += v * v; }
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
            __shared__ float partial[Threads / 32];
            if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
            __syncthreads();
            if (threadIdx.x < 32) {
                sum = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : 0.f;
                for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffff, sum, o);
                if (threadIdx.x == 0) partial[0] = sum;
            }
            __syncthreads();
            float rstd = rsqrtf(partial[0] * (1.f / static_cast<float>(h)) + eps);
            for (int64_t i = threadIdx.x; i < h; i += Threads) {
                T normed = static_cast<T>(static_cast<float>(xr[i]) * rstd);
                yr[i] = static_cast<T>(static_cast<float>(w[i]) * static_cast<float>(normed));
            }
        }

        template <typename T>
        void launch(const at::Tensor& x, const at::Tensor& w, at::Tensor& y, int64_t rows, int64_t h, float eps) {
            auto stream = at::cuda::getCurrentCUDAStream();
            auto* xp = reinterpret_cast<const T*>(x.data_ptr());
            auto* wp = reinterpret_cast<const T*>(w.data_ptr());
            auto* yp = reinterpret_cast<T*>(y.data_ptr());
            if (h >= 1024) rms_norm_kernel<T, 512><<<rows, 512, 0, stream>>>(xp, wp, yp, h, eps);
            else if (h >= 256) rms_norm_kernel<T, 256><<<rows, 256, 0, stream>>>(xp, wp, yp, h, eps);
            else rms_norm_kernel<T, 64><<<rows, 64, 0, stream>>>(xp, wp, yp, h, eps);
        }

        // x (B, H, T, D) of any strides, cos and signed sin [B, T, D] contiguous; y (B, H, T, D) contiguous.
        template <typename T>
        __global__ void rope_kernel(const T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin, T* __restrict__ y,
                                    int64_t heads, int64_t len, int64_t dim, int64_t sb, int64_t sh, int64_t st, int64_t sd, int64_t total) {
            int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
            if (i >= total) return;
            int64_t d = i % dim, t = (i / dim) % len, h = (i / (dim * len)) % heads, b = i / (dim * len * heads);
            int64_t half = dim / 2, rolled = d < half ? d + half : d - half;
            const T* row = x + b * sb + h * sh + t * st;
            int64_t c = (b * len + t) * dim + d;
            // Rounded intrinsics: no fused multiply-add, each product rounded as the op-by-op form rounds it.
            T a = static_cast<T>(__fmul_rn(static_cast<float>(row[d * sd]), static_cast<float>(cos[c])));
            T r = static_cast<T>(__fmul_rn(static_cast<float>(row[rolled * sd]), static_cast<float>(sin[c])));
            y[i] = static_cast<T>(__fadd_rn(static_cast<float>(a), static_cast<float>(r)));
        }

        ST_EXPORT int st_rope(at::Tensor* x, at::Tensor* cos, at::Tensor* sin, at::Tensor** out) { ST_TRY(
            TORCH_CHECK(x->is_cuda() && x->dim() == 4 && x->scalar_type() == cos->scalar_type() && x->scalar_type() == sin->scalar_type(),
                "rope: x (B, H, T, D) on CUDA, cos and sin of its dtype");
            int64_t B = x->size(0), H = x->size(1), T = x->size(2), D = x->size(3);
            TORCH_CHECK(D % 2 == 0 && cos->numel() == B * T * D && sin->numel() == B * T * D, "rope: cos and sin of [B, T, D]");
            at::cuda::CUDAGuard guard(x->device());
            auto c = cos->contiguous();
            auto s = sin->contiguous();
            auto y = at::empty({B, H, T, D}, x->options());
            int64_t total = y.numel();
            if (total > 0) {
                auto stream = at::cuda::getCurrentCUDAStream();
                unsigned blocks = static_cast<unsigned>((total + 255) / 256);
                switch (x->scalar_type()) {
        #define ST_ROPE(type) rope_kernel<type><<<blocks, 256, 0, stream>>>(reinterpret_cast<const type*>(x->data_ptr()), \
                        reinterpret_cast<const type*>(c.data_ptr()), reinterpret_cast<const type*>(s.data_ptr()), reinterpret_cast<type*>(y.data_ptr()), \
                        H, T, D, x->stride(0), x->stride(1), x->stride(2), x->stride(3), total)
                    case at::kBFloat16: ST_ROPE(at::BFloat16); break;
                    case at::kHalf: ST_ROPE(at::Half); break;
                    case at::kFloat: ST_ROPE(float); break;
                    default: TORCH_CHECK(false, "rope: unsupported dtype ", x->scalar_type());
                }
                C10_CUDA_KERNEL_LAUNCH_CHECK();
            }
            *out = new at::Tensor(y);) }

        // y = w * (x * rsqrt(mean(x^2) + eps)) over the last dimension; x and w of one dtype (bf16, fp16 or fp32).
        ST_EXPORT int st_rms_norm(at::Tensor* x, at::Tensor* w, double eps, at::Tensor** out) { ST_TRY(
            TORCH_CHECK(x->is_cuda() && w->is_cuda() && x->scalar_type() == w->scalar_type(), "rms_norm: CUDA tensors of one dtype");
            int64_t h = x->size(-1);
            TORCH_CHECK(w->numel() == h, "rms_norm: weight size ", w->numel(), " for rows of ", h);
            at::cuda::CUDAGuard guard(x->device());
            auto xc = x->contiguous();
            auto wc = w->contiguous();
            auto y = at::empty_like(xc);
            int64_t rows = xc.numel() / h;
            if (rows > 0) {
                switch (xc.scalar_type()) {
                    case at::kBFloat16: launch<at::BFloat16>(xc, wc, y, rows, h, static_cast<float>(eps)); break;
                    case at::kHalf: launch<at::Half>(xc, wc, y, rows, h, static_cast<float>(eps)); break;
                    case at::kFloat: launch<float>(xc, wc, y, rows, h, static_cast<float>(eps)); break;
                    default: TORCH_CHECK(false, "rms_norm: unsupported dtype ", xc.scalar_type());
                }
                C10_CUDA_KERNEL_LAUNCH_CHECK();
            }
            *out = new at::Tensor(y);) }
        """;

    static readonly Lock Gate = new();
    static CudaExtension? _native;
    static delegate* unmanaged<IntPtr, IntPtr, double, IntPtr*, int> _rmsNorm;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, int> _rope;
    static bool? _available;

    /// <summary>Why the fused kernels are off in this process (null while they are on or not yet tried).</summary>
    public static string? Unavailable { get; private set; }

    /// <summary>"fused norm/rope kernels", or why the norms and rotations run op by op.</summary>
    public static string Describe() => _available == true ? "fused norm/rope kernels" : $"norm/rope op by op ({Unavailable ?? "not tried"})";

    /// <summary>RMSNorm of x over its last dimension (CUDA, autograd off) by the fused kernel; null where it is unavailable.</summary>
    public static Tensor? TryRmsNorm(Tensor x, Tensor weight, double eps) =>
        Usable(x) && x.dtype == weight.dtype ? RmsNorm(x, weight, eps) : null;

    /// <summary>x (B, H, T, D) rotated as <see cref="Rope.Apply"/> does, with cos and signed sin [B, 1, T, D]; null where
    /// the fused kernel is unavailable.</summary>
    public static Tensor? TryRope(Tensor x, Tensor cos, Tensor signedSin) =>
        Usable(x) && x.dim() == 4 && cos.dim() == 4 && cos.shape[1] == 1 && cos.shape[2] == x.shape[2] && x.dtype == cos.dtype ? Rope(x, cos, signedSin) : null;

    static bool Usable(Tensor x) => x.device_type == DeviceType.CUDA && !is_grad_enabled() && Available(x.device);

    static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        IntPtr result;
        _native!.Check(_rmsNorm(x.Handle, weight.Handle, eps, &result));
        return Tensor.UnsafeCreateTensor(result);
    }

    static Tensor Rope(Tensor x, Tensor cos, Tensor signedSin)
    {
        IntPtr result;
        _native!.Check(_rope(x.Handle, cos.Handle, signedSin.Handle, &result));
        return Tensor.UnsafeCreateTensor(result);
    }

    static bool Available(Device device)
    {
        if (_available is { } known) return known;
        lock (Gate)
        {
            if (_available is { } again) return again;
            _native = CudaExtension.Load("inference_kernels", Source, out string why);
            if (_native is null) Unavailable = why;
            else
            {
                _rmsNorm = (delegate* unmanaged<IntPtr, IntPtr, double, IntPtr*, int>)_native.Function("st_rms_norm");
                _rope = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr*, int>)_native.Function("st_rope");
                Unavailable = Check(device);
            }
            _available = Unavailable is null;
            return _available.Value;
        }
    }

    /// <summary>Null when the kernels agree with the op-by-op forms (bf16 and fp32), else what differs.</summary>
    static string? Check(Device device)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float32 })
        {
            // Deterministic inputs: the check must not move the random generators.
            foreach (int h in new[] { 1536, 128 })
            {
                var x = (arange(7 * h, dtype: float32, device: device).view(7, h) * 0.37).sin().mul(3).to(dtype);
                var w = (arange(h, dtype: float32, device: device) * 0.11).cos().add(1.2).to(dtype);
                var xf = x.to(float32);
                var expected = (w * (xf * rsqrt(xf.pow(2).mean([-1], keepdim: true) + 1e-6)).to(dtype)).to(float32);
                var actual = RmsNorm(x, w, 1e-6).to(float32);
                // A rounding step or two of the dtype may differ (the sum of squares is added in another order).
                double error = ((actual - expected).abs() / (expected.abs() + 1e-3)).max().item<float>();
                double step = dtype == ScalarType.Float32 ? 1e-4 : 4 * Math.Pow(2, -8);
                if (!(error <= step)) return $"the fused RMSNorm differs from the op-by-op one by {error:E2} (relative, {dtype}, width {h})";
            }
            // (B, H, T, D) = (2, 3, 5, 8), transposed from (B, T, H, D) as the model passes it.
            var q = (arange(2 * 5 * 3 * 8, dtype: float32, device: device).view(2, 5, 3, 8) * 0.23).sin().to(dtype).transpose(1, 2);
            var angle = arange(2 * 5 * 8, dtype: float32, device: device).view(2, 1, 5, 8) * 0.05;
            var cos = angle.cos().to(dtype);
            var sin = angle.sin().to(dtype);
            var rotated = q * cos + q.roll(4, -1) * sin;   // Rope.Apply's op-by-op form
            if (!Rope(q, cos, sin).equal(rotated).all().item<bool>()) return $"the fused rotary embedding differs from the op-by-op one ({dtype})";
        }
        return null;
    }
}
