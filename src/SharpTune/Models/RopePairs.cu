// Rotary embeddings in the (rows, heads, D) layout, a thread per group of V dimension pairs (d, d + D/2): the partners
// are read as 16-byte vectors from both halves of the row, instead of one 2-byte element per thread reading its partner
// apart (TrainingKernels.cu's rope_kernel, which this replaces where it builds and agrees with it exactly). Same
// roundings: y[d] = round(round(x[d]*cos[d]) + round(x[p]*sin[q])), p the partner, q = d forward and p backward.
// A separate extension: if it does not build, training keeps the element-wise kernel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

template <typename T, int V> struct alignas(sizeof(T) * V) RopePack { T v[V]; };

template <typename T> __device__ __forceinline__ float rp_f32(T v) { return static_cast<float>(v); }
template <typename T> __device__ __forceinline__ T rp_round(float v) { return static_cast<T>(v); }

template <typename T>
__device__ __forceinline__ T rp_rotate(T x, T c, T partner, T s) {
    T a = rp_round<T>(__fmul_rn(rp_f32(x), rp_f32(c)));
    T r = rp_round<T>(__fmul_rn(rp_f32(partner), rp_f32(s)));
    return rp_round<T>(__fadd_rn(rp_f32(a), rp_f32(r)));
}

// x [rows, heads, D] contiguous, cos and signed sin [rows, D] contiguous; groups = rows * heads * (D/2) / V.
template <typename T, int V>
__global__ void rope_pairs_kernel(const T* __restrict__ x, const T* __restrict__ cos, const T* __restrict__ sin, T* __restrict__ y,
                                  int64_t heads, int64_t dim, int64_t groups, bool backward) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= groups) return;
    int64_t half = dim / 2, per_head = half / V;
    int64_t rh = i / per_head, d = (i % per_head) * V, row = rh / heads;
    const T* xr = x + rh * dim;
    const T* c = cos + row * dim;
    const T* s = sin + row * dim;
    T* yr = y + rh * dim;
    RopePack<T, V> x1 = *reinterpret_cast<const RopePack<T, V>*>(xr + d), x2 = *reinterpret_cast<const RopePack<T, V>*>(xr + d + half);
    RopePack<T, V> c1 = *reinterpret_cast<const RopePack<T, V>*>(c + d), c2 = *reinterpret_cast<const RopePack<T, V>*>(c + d + half);
    RopePack<T, V> s1 = *reinterpret_cast<const RopePack<T, V>*>(s + d), s2 = *reinterpret_cast<const RopePack<T, V>*>(s + d + half);
    RopePack<T, V> y1, y2;
#pragma unroll
    for (int j = 0; j < V; j++) {
        y1.v[j] = rp_rotate(x1.v[j], c1.v[j], x2.v[j], backward ? s2.v[j] : s1.v[j]);
        y2.v[j] = rp_rotate(x2.v[j], c2.v[j], x1.v[j], backward ? s1.v[j] : s2.v[j]);
    }
    *reinterpret_cast<RopePack<T, V>*>(yr + d) = y1;
    *reinterpret_cast<RopePack<T, V>*>(yr + d + half) = y2;
}

static bool rp_aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

template <typename T>
static void rope_pairs_launch(const at::Tensor& x, const at::Tensor& c, const at::Tensor& s, at::Tensor& y, int64_t heads, int64_t dim, bool backward) {
    constexpr int V = 16 / sizeof(T);
    auto stream = at::cuda::getCurrentCUDAStream();
    auto xp = reinterpret_cast<const T*>(x.data_ptr()), cp = reinterpret_cast<const T*>(c.data_ptr()), sp = reinterpret_cast<const T*>(s.data_ptr());
    auto yp = reinterpret_cast<T*>(y.data_ptr());
    int64_t pairs = x.numel() / 2;
    bool vector = (dim / 2) % V == 0 && rp_aligned16(x) && rp_aligned16(c) && rp_aligned16(s) && rp_aligned16(y);
    if (vector) {
        int64_t groups = pairs / V;
        rope_pairs_kernel<T, V><<<static_cast<unsigned>((groups + 255) / 256), 256, 0, stream>>>(xp, cp, sp, yp, heads, dim, groups, backward);
    } else {
        rope_pairs_kernel<T, 1><<<static_cast<unsigned>((pairs + 255) / 256), 256, 0, stream>>>(xp, cp, sp, yp, heads, dim, pairs, backward);
    }
}

// x (B, T, heads, D), cos and signed sin (B, T, 1, D); backward != 0: x is the incoming gradient.
ST_EXPORT int st_rope_pairs(at::Tensor* x, at::Tensor* cos, at::Tensor* sin, int backward, at::Tensor** out) { ST_TRY(
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
        switch (xc.scalar_type()) {
            case at::kBFloat16: rope_pairs_launch<__nv_bfloat16>(xc, c, s, y, H, D, backward != 0); break;
            case at::kHalf: rope_pairs_launch<__half>(xc, c, s, y, H, D, backward != 0); break;
            case at::kFloat: rope_pairs_launch<float>(xc, c, s, y, H, D, backward != 0); break;
            default: TORCH_CHECK(false, "rope: unsupported dtype ", xc.scalar_type());
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    *out = new at::Tensor(y);) }
