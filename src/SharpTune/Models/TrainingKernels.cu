// Fused training kernels for the decoder's memory-bound parts, forward and backward, and the loss (Models/TrainingKernels.cs):
// - SwiGLU: act = silu(gate) * up in one pass over gate and up (op by op: silu, then the product, five passes), and
//   its backward in one pass (op by op: three kernels over gate, up, the saved silu(gate) and the incoming gradient).
// - Rotary embeddings in the (rows, heads, D) layout: one kernel each way instead of four forward and about five back.
// - Cross-entropy with its gradient written over the logits (at the end of this file).
// Roundings follow the op-by-op forms in the activation dtype: silu(gate) rounded, then its product with up rounded;
// x*cos and roll(x)*sin each rounded, then their sum. Compiled on first use by Runtime/CudaExtension (its prelude gives
// ATen, ST_EXPORT and ST_TRY); every entry runs on the current CUDA stream, as libtorch's own ops do.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

template <typename T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

template <typename T> __device__ __forceinline__ float f32(T v) { return static_cast<float>(v); }
template <typename T> __device__ __forceinline__ T rounded(float v) { return static_cast<T>(v); }

// silu(x) = x / (1 + exp(-x)) in fp32, as ATen's kernel computes it.
__device__ __forceinline__ float silu(float x) { return __fdiv_rn(x, __fadd_rn(1.f, expf(-x))); }

// y = round(round(silu(g)) * u), V values per thread (16 bytes; V = 1 where the pointers are not 16-byte aligned).
template <typename T, int V>
__global__ void swiglu_forward_kernel(const T* __restrict__ g, const T* __restrict__ u, T* __restrict__ y, int64_t n) {
    int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * V;
    if (i >= n) return;
    if (i + V <= n) {
        Pack<T, V> gp = *reinterpret_cast<const Pack<T, V>*>(g + i), up = *reinterpret_cast<const Pack<T, V>*>(u + i), yp;
#pragma unroll
        for (int j = 0; j < V; j++)
            yp.v[j] = rounded<T>(__fmul_rn(f32(rounded<T>(silu(f32(gp.v[j])))), f32(up.v[j])));
        *reinterpret_cast<Pack<T, V>*>(y + i) = yp;
    } else {
        for (int64_t k = i; k < n; k++) y[k] = rounded<T>(__fmul_rn(f32(rounded<T>(silu(f32(g[k])))), f32(u[k])));
    }
}

// The product's backward (du = dy * silu(g), ds = dy * u, each rounded) and silu's (dg = ds * s * (1 + g * (1 - s)),
// s = sigmoid(g), in fp32, rounded once), as autograd computes them op by op.
template <typename T>
__device__ __forceinline__ void swiglu_backward_one(T dy, T g, T u, T& dg, T& du) {
    float x = f32(g), d = f32(dy);
    du = rounded<T>(__fmul_rn(d, f32(rounded<T>(silu(x)))));
    float ds = f32(rounded<T>(__fmul_rn(d, f32(u))));
    float s = __fdiv_rn(1.f, __fadd_rn(1.f, expf(-x)));
    dg = rounded<T>(ds * s * (1.f + x * (1.f - s)));
}

template <typename T, int V>
__global__ void swiglu_backward_kernel(const T* __restrict__ dy, const T* __restrict__ g, const T* __restrict__ u,
                                       T* __restrict__ dg, T* __restrict__ du, int64_t n) {
    int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * V;
    if (i >= n) return;
    if (i + V <= n) {
        Pack<T, V> dyp = *reinterpret_cast<const Pack<T, V>*>(dy + i), gp = *reinterpret_cast<const Pack<T, V>*>(g + i),
                   up = *reinterpret_cast<const Pack<T, V>*>(u + i), dgp, dup;
#pragma unroll
        for (int j = 0; j < V; j++) swiglu_backward_one(dyp.v[j], gp.v[j], up.v[j], dgp.v[j], dup.v[j]);
        *reinterpret_cast<Pack<T, V>*>(dg + i) = dgp;
        *reinterpret_cast<Pack<T, V>*>(du + i) = dup;
    } else {
        for (int64_t k = i; k < n; k++) swiglu_backward_one(dy[k], g[k], u[k], dg[k], du[k]);
    }
}

// x [rows, heads, D] contiguous, cos and signed sin [rows, D] contiguous (the first half of sin negated, so that
// rotate_half(x) * sin = roll(x, D/2) * signed sin). Forward: y = round(round(x*cos) + round(roll(x)*sin)).
// Backward (the same kernel with backward = 1): autograd's gradient of that form, g*cos + roll back of (g*sin):
// gx[d] = round(round(g[d]*cos[d]) + round(g[p]*sin[p])), p = the partner of d half a row away.
template <typename T>
__global__ void rope_kernel(const T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin, T* __restrict__ y,
                            int64_t heads, int64_t dim, int64_t total, bool backward) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= total) return;
    int64_t d = i % dim, row = i / (dim * heads), half = dim / 2;
    int64_t p = d < half ? d + half : d - half;
    const T* xr = x + (i - d);
    const T* c = cos + row * dim;
    const T* s = sin + row * dim;
    T a = rounded<T>(__fmul_rn(f32(xr[d]), f32(c[d])));
    T r = rounded<T>(__fmul_rn(f32(xr[p]), f32(s[backward ? p : d])));
    y[i] = rounded<T>(__fadd_rn(f32(a), f32(r)));
}

static bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }
static unsigned blocks_for(int64_t n, int64_t per_block) { return static_cast<unsigned>((n + per_block - 1) / per_block); }

template <typename T>
static void swiglu_forward_launch(const at::Tensor& g, const at::Tensor& u, at::Tensor& y) {
    int64_t n = g.numel();
    auto stream = at::cuda::getCurrentCUDAStream();
    auto gp = reinterpret_cast<const T*>(g.data_ptr()), up = reinterpret_cast<const T*>(u.data_ptr());
    auto yp = reinterpret_cast<T*>(y.data_ptr());
    constexpr int V = 16 / sizeof(T);   // one 16-byte load per tensor and thread
    if (aligned16(g) && aligned16(u) && aligned16(y)) swiglu_forward_kernel<T, V><<<blocks_for(n, 256 * V), 256, 0, stream>>>(gp, up, yp, n);
    else swiglu_forward_kernel<T, 1><<<blocks_for(n, 256), 256, 0, stream>>>(gp, up, yp, n);
}

template <typename T>
static void swiglu_backward_launch(const at::Tensor& dy, const at::Tensor& g, const at::Tensor& u, at::Tensor& dg, at::Tensor& du) {
    int64_t n = g.numel();
    auto stream = at::cuda::getCurrentCUDAStream();
    auto dyp = reinterpret_cast<const T*>(dy.data_ptr()), gp = reinterpret_cast<const T*>(g.data_ptr()), up = reinterpret_cast<const T*>(u.data_ptr());
    auto dgp = reinterpret_cast<T*>(dg.data_ptr()), dup = reinterpret_cast<T*>(du.data_ptr());
    constexpr int V = 16 / sizeof(T);
    if (aligned16(dy) && aligned16(g) && aligned16(u) && aligned16(dg) && aligned16(du))
        swiglu_backward_kernel<T, V><<<blocks_for(n, 256 * V), 256, 0, stream>>>(dyp, gp, up, dgp, dup, n);
    else swiglu_backward_kernel<T, 1><<<blocks_for(n, 256), 256, 0, stream>>>(dyp, gp, up, dgp, dup, n);
}

static void check_pair(const at::Tensor& a, const at::Tensor& b, const char* what) {
    TORCH_CHECK(a.is_cuda() && b.is_cuda() && a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes(),
        what, ": CUDA tensors of one dtype and shape");
}

#define ST_DISPATCH(dtype, F, ...) switch (dtype) { \
    case at::kBFloat16: F<__nv_bfloat16>(__VA_ARGS__); break; \
    case at::kHalf: F<__half>(__VA_ARGS__); break; \
    case at::kFloat: F<float>(__VA_ARGS__); break; \
    default: TORCH_CHECK(false, "unsupported dtype ", dtype); }

ST_EXPORT int st_swiglu_forward(at::Tensor* gate, at::Tensor* up, at::Tensor** out) { ST_TRY(
    check_pair(*gate, *up, "swiglu");
    at::cuda::CUDAGuard guard(gate->device());
    auto g = gate->contiguous();
    auto u = up->contiguous();
    auto y = at::empty_like(g);
    if (g.numel() > 0) {
        ST_DISPATCH(g.scalar_type(), swiglu_forward_launch, g, u, y);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    *out = new at::Tensor(y);) }

ST_EXPORT int st_swiglu_backward(at::Tensor* grad, at::Tensor* gate, at::Tensor* up, at::Tensor** gate_grad, at::Tensor** up_grad) { ST_TRY(
    check_pair(*gate, *up, "swiglu backward");
    check_pair(*grad, *gate, "swiglu backward");
    at::cuda::CUDAGuard guard(gate->device());
    auto dy = grad->contiguous();
    auto g = gate->contiguous();
    auto u = up->contiguous();
    auto dg = at::empty_like(g);
    auto du = at::empty_like(g);
    if (g.numel() > 0) {
        ST_DISPATCH(g.scalar_type(), swiglu_backward_launch, dy, g, u, dg, du);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    *gate_grad = new at::Tensor(dg);
    *up_grad = new at::Tensor(du);) }

template <typename T>
static void rope_launch(const at::Tensor& x, const at::Tensor& c, const at::Tensor& s, at::Tensor& y, int64_t heads, int64_t dim, bool backward) {
    int64_t total = x.numel();
    rope_kernel<T><<<blocks_for(total, 256), 256, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(x.data_ptr()), reinterpret_cast<const T*>(c.data_ptr()), reinterpret_cast<const T*>(s.data_ptr()),
        reinterpret_cast<T*>(y.data_ptr()), heads, dim, total, backward);
}

// x (B, T, heads, D), cos and signed sin (B, T, 1, D); backward != 0: x is the incoming gradient.
ST_EXPORT int st_rope(at::Tensor* x, at::Tensor* cos, at::Tensor* sin, int backward, at::Tensor** out) { ST_TRY(
    TORCH_CHECK(x->is_cuda() && x->dim() == 4 && x->scalar_type() == cos->scalar_type() && x->scalar_type() == sin->scalar_type(),
        "rope: x (B, T, heads, D) on CUDA, cos and sin of its dtype");
    int64_t B = x->size(0), T = x->size(1), H = x->size(2), D = x->size(3);
    TORCH_CHECK(D % 2 == 0 && cos->numel() == B * T * D && sin->numel() == B * T * D, "rope: cos and sin of [B, T, 1, D]");
    at::cuda::CUDAGuard guard(x->device());
    auto xc = x->contiguous();
    auto c = cos->contiguous();
    auto s = sin->contiguous();
    auto y = at::empty_like(xc);
    if (xc.numel() > 0) {
        ST_DISPATCH(xc.scalar_type(), rope_launch, xc, c, s, y, H, D, backward != 0);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    *out = new at::Tensor(y);) }

// Cross-entropy of one chunk of logits with its gradient, in place (Training/CausalLoss.cs): one block per row of
// logits [N, V] (activation dtype). Pass 1 keeps a running max and rescaled sum of exp in fp32 per thread, merged over
// the block into lse = max + log(sum); pass 2 overwrites the row with (exp(x - lse) - onehot(target)) * w, computed in
// fp32 and rounded once, w = 1/normalizer on scored rows (target != -100) and 0 on the others. row_loss[r] = (lse -
// x[target]) on scored rows, 0 on the others. The op-by-op form (CrossEntropyWithGradient) holds an fp32 copy of the
// logits and logsumexp's two fp32 temporaries, and passes over them about ten times; this reads the row twice and
// writes it once.
__device__ __forceinline__ void lse_merge(float& m, float& s, float om, float os) {
    if (om == -INFINITY) return;
    if (m == -INFINITY) { m = om; s = os; return; }
    if (om > m) { s = s * expf(m - om) + os; m = om; }
    else s += os * expf(om - m);
}

__device__ __forceinline__ void lse_add(float& m, float& s, float x) {
    if (x == -INFINITY) return;   // exp(-inf) adds nothing (and -inf - -inf would be NaN)
    if (x > m) { s = (m == -INFINITY ? 0.f : s * expf(m - x)) + 1.f; m = x; }
    else s += expf(x - m);
}

template <typename T, int V>
__global__ void cross_entropy_kernel(T* __restrict__ logits, const int64_t* __restrict__ target, float* __restrict__ row_loss,
                                     int64_t vocab, float inv_normalizer) {
    constexpr int kThreads = 1024;
    __shared__ float shared_m[kThreads / 32], shared_s[kThreads / 32];
    __shared__ float row_lse;
    int64_t row = blockIdx.x;
    T* x = logits + row * vocab;
    bool vector = V > 1 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    int64_t body = vector ? vocab / V * V : 0;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * V; i < body; i += kThreads * V) {
        Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(x + i);
#pragma unroll
        for (int j = 0; j < V; j++) lse_add(m, s, f32(p.v[j]));
    }
    for (int64_t i = body + threadIdx.x; i < vocab; i += kThreads) lse_add(m, s, f32(x[i]));
    for (int offset = 16; offset > 0; offset /= 2) {
        float om = __shfl_down_sync(0xffffffff, m, offset), os = __shfl_down_sync(0xffffffff, s, offset);
        lse_merge(m, s, om, os);
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) { shared_m[warp] = m; shared_s[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        m = lane < kThreads / 32 ? shared_m[lane] : -INFINITY;
        s = lane < kThreads / 32 ? shared_s[lane] : 0.f;
        for (int offset = 16; offset > 0; offset /= 2) {
            float om = __shfl_down_sync(0xffffffff, m, offset), os = __shfl_down_sync(0xffffffff, s, offset);
            lse_merge(m, s, om, os);
        }
        if (lane == 0) {
            float lse = m + logf(s);
            row_lse = lse;
            int64_t t = target[row];
            row_loss[row] = t >= 0 && t < vocab ? lse - f32(x[t]) : 0.f;   // read before pass 2 overwrites the row
        }
    }
    __syncthreads();
    float lse = row_lse;
    int64_t t = target[row];
    float w = t >= 0 && t < vocab ? inv_normalizer : 0.f;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * V; i < body; i += kThreads * V) {
        Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(x + i);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float g = expf(f32(p.v[j]) - lse) - (i + j == t ? 1.f : 0.f);
            p.v[j] = rounded<T>(g * w);
        }
        *reinterpret_cast<Pack<T, V>*>(x + i) = p;
    }
    for (int64_t i = body + threadIdx.x; i < vocab; i += kThreads)
        x[i] = rounded<T>((expf(f32(x[i]) - lse) - (i == t ? 1.f : 0.f)) * w);
}

template <typename T>
static void cross_entropy_launch(at::Tensor& logits, const at::Tensor& target, at::Tensor& loss, float inv_normalizer) {
    int64_t rows = logits.size(0), vocab = logits.size(1);
    constexpr int V = 16 / sizeof(T);
    cross_entropy_kernel<T, V><<<static_cast<unsigned>(rows), 1024, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<T*>(logits.data_ptr()), target.data_ptr<int64_t>(), loss.data_ptr<float>(), vocab, inv_normalizer);
}

// logits [N, V] contiguous (overwritten with the gradient), target [N] int64 on the same device; row_loss: a new [N] fp32.
ST_EXPORT int st_cross_entropy_inplace(at::Tensor* logits, at::Tensor* target, double normalizer, at::Tensor** row_loss) { ST_TRY(
    TORCH_CHECK(logits->is_cuda() && logits->dim() == 2 && logits->is_contiguous(), "cross_entropy: contiguous CUDA logits [N, V]");
    TORCH_CHECK(target->device() == logits->device() && target->scalar_type() == at::kLong && target->dim() == 1 &&
        target->size(0) == logits->size(0) && target->is_contiguous(), "cross_entropy: int64 targets [N] beside the logits");
    at::cuda::CUDAGuard guard(logits->device());
    auto loss = at::empty({logits->size(0)}, logits->options().dtype(at::kFloat));
    float inv = 1.f / static_cast<float>(normalizer);
    if (logits->numel() > 0) {
        ST_DISPATCH(logits->scalar_type(), cross_entropy_launch, *logits, *target, loss, inv);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    *row_loss = new at::Tensor(loss);) }

// The compressed lm_head's loss (Training/CausalLoss.cs SlicedCrossEntropy), one slice of the head's rows at a time:
// logits [N, C] (activation dtype, contiguous) hold vocabulary columns [start, start + C); one block per row.
// sliced_lse folds the slice into each row's running log-sum-exp (max, and the sum of exp(x - max), in fp32) and, where
// the row's target lies in the slice, sets picked to its logit: what the op-by-op form computes with about eight ops
// per slice (amax, maximum, two exp, sum, gather, ...), in one launch. sliced_softmax_grad overwrites the slice with
// (exp(x - lse) - onehot(target)) * w, w = 1/normalizer on scored rows and 0 on the others, in fp32, rounded once.
template <int Threads>
__device__ __forceinline__ void block_lse(float& m, float& s, float* shared_m, float* shared_s) {
    for (int offset = 16; offset > 0; offset /= 2) {
        float om = __shfl_down_sync(0xffffffff, m, offset), os = __shfl_down_sync(0xffffffff, s, offset);
        lse_merge(m, s, om, os);
    }
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) { shared_m[warp] = m; shared_s[warp] = s; }
    __syncthreads();
    if (warp == 0) {
        m = lane < Threads / 32 ? shared_m[lane] : -INFINITY;
        s = lane < Threads / 32 ? shared_s[lane] : 0.f;
        for (int offset = 16; offset > 0; offset /= 2) {
            float om = __shfl_down_sync(0xffffffff, m, offset), os = __shfl_down_sync(0xffffffff, s, offset);
            lse_merge(m, s, om, os);
        }
    }
}

constexpr int kSliceThreads = 512;

template <typename T, int V>
__global__ void sliced_lse_kernel(const T* __restrict__ logits, const int64_t* __restrict__ target, float* __restrict__ run_max,
                                  float* __restrict__ run_sum, float* __restrict__ picked, int64_t cols, int64_t start) {
    __shared__ float shared_m[kSliceThreads / 32], shared_s[kSliceThreads / 32];
    int64_t row = blockIdx.x;
    const T* x = logits + row * cols;
    bool vector = V > 1 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    int64_t body = vector ? cols / V * V : 0;
    float m = -INFINITY, s = 0.f;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * V; i < body; i += kSliceThreads * V) {
        Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(x + i);
#pragma unroll
        for (int j = 0; j < V; j++) lse_add(m, s, f32(p.v[j]));
    }
    for (int64_t i = body + threadIdx.x; i < cols; i += kSliceThreads) lse_add(m, s, f32(x[i]));
    block_lse<kSliceThreads>(m, s, shared_m, shared_s);
    if (threadIdx.x == 0) {
        float rm = run_max[row], rs = run_sum[row];
        lse_merge(rm, rs, m, s);
        run_max[row] = rm;
        run_sum[row] = rs;
        int64_t t = target[row] - start;
        if (t >= 0 && t < cols) picked[row] = f32(x[t]);
    }
}

template <typename T, int V>
__global__ void sliced_softmax_grad_kernel(T* __restrict__ logits, const int64_t* __restrict__ target, const float* __restrict__ lse,
                                           int64_t cols, int64_t start, float inv_normalizer) {
    int64_t row = blockIdx.x;
    T* x = logits + row * cols;
    float l = lse[row];
    int64_t t = target[row];
    float w = t >= 0 ? inv_normalizer : 0.f;
    int64_t local = t - start;   // the onehot's column in this slice (outside [0, cols) where the target is elsewhere)
    bool vector = V > 1 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    int64_t body = vector ? cols / V * V : 0;
    for (int64_t i = static_cast<int64_t>(threadIdx.x) * V; i < body; i += kSliceThreads * V) {
        Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(x + i);
#pragma unroll
        for (int j = 0; j < V; j++) p.v[j] = rounded<T>(__fmul_rn(__fsub_rn(expf(__fsub_rn(f32(p.v[j]), l)), i + j == local ? 1.f : 0.f), w));
        *reinterpret_cast<Pack<T, V>*>(x + i) = p;
    }
    for (int64_t i = body + threadIdx.x; i < cols; i += kSliceThreads)
        x[i] = rounded<T>(__fmul_rn(__fsub_rn(expf(__fsub_rn(f32(x[i]), l)), i == local ? 1.f : 0.f), w));
}

static void check_slice(const at::Tensor& logits, const at::Tensor& target, const char* what) {
    TORCH_CHECK(logits.is_cuda() && logits.dim() == 2 && logits.is_contiguous(), what, ": contiguous CUDA logits [N, C]");
    TORCH_CHECK(target.device() == logits.device() && target.scalar_type() == at::kLong && target.dim() == 1 &&
        target.size(0) == logits.size(0) && target.is_contiguous(), what, ": int64 targets [N] beside the logits");
}

static void check_row_floats(const at::Tensor& t, const at::Tensor& logits, const char* what) {
    TORCH_CHECK(t.device() == logits.device() && t.scalar_type() == at::kFloat && t.dim() == 1 && t.size(0) == logits.size(0) &&
        t.is_contiguous(), what, ": fp32 [N] beside the logits");
}

template <typename T>
static void sliced_lse_launch(const at::Tensor& logits, const at::Tensor& target, at::Tensor& max, at::Tensor& sum, at::Tensor& picked, int64_t start) {
    constexpr int V = 16 / sizeof(T);
    sliced_lse_kernel<T, V><<<static_cast<unsigned>(logits.size(0)), kSliceThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(logits.data_ptr()), target.data_ptr<int64_t>(), max.data_ptr<float>(), sum.data_ptr<float>(),
        picked.data_ptr<float>(), logits.size(1), start);
}

template <typename T>
static void sliced_softmax_grad_launch(at::Tensor& logits, const at::Tensor& target, const at::Tensor& lse, int64_t start, float inv) {
    constexpr int V = 16 / sizeof(T);
    sliced_softmax_grad_kernel<T, V><<<static_cast<unsigned>(logits.size(0)), kSliceThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<T*>(logits.data_ptr()), target.data_ptr<int64_t>(), lse.data_ptr<float>(), logits.size(1), start, inv);
}

// logits [N, C] of columns [start, start + C); max, sum and picked [N] fp32, updated in place.
ST_EXPORT int st_sliced_lse(at::Tensor* logits, at::Tensor* target, int64_t start, at::Tensor* max, at::Tensor* sum, at::Tensor* picked) { ST_TRY(
    check_slice(*logits, *target, "sliced_lse");
    check_row_floats(*max, *logits, "sliced_lse max");
    check_row_floats(*sum, *logits, "sliced_lse sum");
    check_row_floats(*picked, *logits, "sliced_lse picked");
    at::cuda::CUDAGuard guard(logits->device());
    if (logits->numel() > 0) {
        ST_DISPATCH(logits->scalar_type(), sliced_lse_launch, *logits, *target, *max, *sum, *picked, start);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }) }

// logits [N, C] of columns [start, start + C), overwritten with their gradient; lse [N] fp32.
ST_EXPORT int st_sliced_softmax_grad(at::Tensor* logits, at::Tensor* target, int64_t start, at::Tensor* lse, double normalizer) { ST_TRY(
    check_slice(*logits, *target, "sliced_softmax_grad");
    check_row_floats(*lse, *logits, "sliced_softmax_grad lse");
    at::cuda::CUDAGuard guard(logits->device());
    float inv = 1.f / static_cast<float>(normalizer);
    if (logits->numel() > 0) {
        ST_DISPATCH(logits->scalar_type(), sliced_softmax_grad_launch, *logits, *target, *lse, start, inv);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }) }

// One step of 8-bit AdamW (Training/AdamW8bit.cs) over a flat fp32 parameter, in place: one CUDA block per block of 256
// values. Each thread dequantizes its m (signed dynamic map) and v (unsigned) as code[index] * absmax, applies
// AdamW.Update in fp32 with the roundings of its stock ops (each op its own rounding; inside one op, the expression
// that ATen's kernel evaluates: lerp's m + w*(g - m), addcmul's v + a*(g*g), addcdiv's p + a*(m/denom)), then the block
// takes its new absmax and each value the nearest code: the count of midpoints between sorted codes below it (the
// stock path's bucketize), mapped back through the sort order, so that a value halfway between takes the lower code.
struct AdamScalars {
    float decay;            // 1 - lr*wd
    float w1;               // 1 - beta1, lerp's weight
    float beta2, one_minus_beta2;
    float inv_bias2;        // 1 / sqrt(1 - beta2^t): ATen divides by a scalar as a product with its reciprocal
    float eps;
    float step_size;        // -lr / (1 - beta1^t)
    int decay_on;           // weight decay != 0
};

constexpr int kAdamBlock = 256;

__device__ __forceinline__ float block_absmax(float v, float* shared) {
    for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, offset));
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
    __syncthreads();
    float r = shared[0];
    for (int w = 1; w < kAdamBlock / 32; w++) r = fmaxf(r, shared[w]);
    __syncthreads();   // shared is reused by the next reduction
    return r;
}

__device__ __forceinline__ uint8_t nearest_code(float x, const float* mids, const uint8_t* order) {
    int lo = 0, hi = 255;   // bucketize (right = false): the number of midpoints below x, in [0, 255]
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (mids[mid] < x) lo = mid + 1; else hi = mid;
    }
    return order[lo];
}

__global__ void adamw8bit_kernel(float* __restrict__ p, const float* __restrict__ g, uint8_t* __restrict__ m_codes,
                                 float* __restrict__ m_absmax, uint8_t* __restrict__ v_codes, float* __restrict__ v_absmax,
                                 const float* __restrict__ signed_code, const float* __restrict__ signed_mids, const uint8_t* __restrict__ signed_order,
                                 const float* __restrict__ unsigned_code, const float* __restrict__ unsigned_mids, const uint8_t* __restrict__ unsigned_order,
                                 int64_t n, AdamScalars a) {
    __shared__ float s_code[256], u_code[256], s_mids[255], u_mids[255], reduce[kAdamBlock / 32];
    __shared__ uint8_t s_order[256], u_order[256];
    int k = threadIdx.x;
    s_code[k] = signed_code[k]; u_code[k] = unsigned_code[k];
    s_order[k] = signed_order[k]; u_order[k] = unsigned_order[k];
    if (k < 255) { s_mids[k] = signed_mids[k]; u_mids[k] = unsigned_mids[k]; }
    __syncthreads();
    int64_t block = blockIdx.x, i = block * kAdamBlock + k;
    bool in = i < n;
    float m = 0.f, v = 0.f;
    if (in) {
        m = __fmul_rn(s_code[m_codes[i]], m_absmax[block]);
        v = __fmul_rn(u_code[v_codes[i]], v_absmax[block]);
        float gv = g[i], pv = p[i];
        if (a.decay_on) pv = __fmul_rn(pv, a.decay);
        m = m + a.w1 * (gv - m);                                      // lerp (weight < 0.5)
        v = __fmul_rn(v, a.beta2);
        v = v + a.one_minus_beta2 * (gv * gv);                        // addcmul
        float denom = __fadd_rn(__fmul_rn(sqrtf(v), a.inv_bias2), a.eps);
        p[i] = pv + a.step_size * (m / denom);                        // addcdiv
    }
    float m_max = block_absmax(in ? fabsf(m) : 0.f, reduce);
    float v_max = block_absmax(in ? fabsf(v) : 0.f, reduce);
    if (k == 0) { m_absmax[block] = m_max; v_absmax[block] = v_max; }
    if (in) {
        m_codes[i] = nearest_code(__fdiv_rn(m, m_max > 0.f ? m_max : 1.f), s_mids, s_order);
        v_codes[i] = nearest_code(__fdiv_rn(v, v_max > 0.f ? v_max : 1.f), u_mids, u_order);
    }
}

static void check_table(const at::Tensor& t, at::ScalarType type, int64_t size, const at::Tensor& p, const char* what) {
    TORCH_CHECK(t.device() == p.device() && t.scalar_type() == type && t.numel() == size && t.is_contiguous(), "adamw8bit: ", what,
        " must be a contiguous ", size, "-value table beside the parameter");
}

// p, g: [n] fp32 contiguous; codes [n] uint8; absmax [ceil(n / 256)] fp32; per map: code [256], midpoints of the sorted
// code [255] (fp32) and the sort order [256] (uint8).
ST_EXPORT int st_adamw8bit_step(at::Tensor* p, at::Tensor* g, at::Tensor* m_codes, at::Tensor* m_absmax, at::Tensor* v_codes,
                                at::Tensor* v_absmax, at::Tensor* signed_code, at::Tensor* signed_mids, at::Tensor* signed_order,
                                at::Tensor* unsigned_code, at::Tensor* unsigned_mids, at::Tensor* unsigned_order,
                                float decay, float w1, float beta2, float one_minus_beta2, float inv_bias2, float eps, float step_size,
                                int decay_on) { ST_TRY(
    int64_t n = p->numel(), blocks = (n + kAdamBlock - 1) / kAdamBlock;
    TORCH_CHECK(p->is_cuda() && p->scalar_type() == at::kFloat && p->is_contiguous(), "adamw8bit: a contiguous fp32 CUDA parameter");
    TORCH_CHECK(g->device() == p->device() && g->scalar_type() == at::kFloat && g->is_contiguous() && g->numel() == n,
        "adamw8bit: a contiguous fp32 gradient of the parameter's size");
    check_table(*m_codes, at::kByte, n, *p, "m's codes");
    check_table(*v_codes, at::kByte, n, *p, "v's codes");
    check_table(*m_absmax, at::kFloat, blocks, *p, "m's absmax");
    check_table(*v_absmax, at::kFloat, blocks, *p, "v's absmax");
    check_table(*signed_code, at::kFloat, 256, *p, "the signed code");
    check_table(*unsigned_code, at::kFloat, 256, *p, "the unsigned code");
    check_table(*signed_mids, at::kFloat, 255, *p, "the signed midpoints");
    check_table(*unsigned_mids, at::kFloat, 255, *p, "the unsigned midpoints");
    check_table(*signed_order, at::kByte, 256, *p, "the signed order");
    check_table(*unsigned_order, at::kByte, 256, *p, "the unsigned order");
    at::cuda::CUDAGuard guard(p->device());
    AdamScalars a{decay, w1, beta2, one_minus_beta2, inv_bias2, eps, step_size, decay_on};
    if (n > 0) {
        adamw8bit_kernel<<<static_cast<unsigned>(blocks), kAdamBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
            p->data_ptr<float>(), g->data_ptr<float>(), m_codes->data_ptr<uint8_t>(), m_absmax->data_ptr<float>(),
            v_codes->data_ptr<uint8_t>(), v_absmax->data_ptr<float>(), signed_code->data_ptr<float>(), signed_mids->data_ptr<float>(),
            signed_order->data_ptr<uint8_t>(), unsigned_code->data_ptr<float>(), unsigned_mids->data_ptr<float>(),
            unsigned_order->data_ptr<uint8_t>(), n, a);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }) }
