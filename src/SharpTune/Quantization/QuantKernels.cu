// Fused dequantization for SharpTune's quantized weights (FourBitWeight, Int8Weight) and the host-memory embedding
// lookup. Compiled on first use by Runtime/CudaExtension against the installed PyTorch; every function is a plain
// extern "C" entry that takes at::Tensor pointers (TorchSharp handles) and returns a new at::Tensor (or null, with
// the reason in qk_last_error). Each kernel runs on the current CUDA stream, as libtorch's own ops do.
//
// Bit-for-bit contract with the stock-op path (FourBitWeight.DenseStock, Int8Weight.DenseStock): the same
// roundings in the same order. In bf16/fp16 the code value and the block's scale are each rounded to the output
// dtype, their product is taken in fp32 (exact for two bf16 values) and rounded once; the double-quantized scale is
// nested_code[c] * nested_absmax (fp32) + offset (fp32), never contracted into an fma.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#include <string>

#ifndef ST_EXPORT
#define ST_EXPORT extern "C" __attribute__((visibility("default")))
#endif

static thread_local std::string qk_error;
ST_EXPORT const char* qk_last_error() { return qk_error.c_str(); }

// Runs f and hands its tensor to the caller; an error becomes null and qk_last_error (never an exception across the ABI).
template <typename F> static at::Tensor* guarded(F f) {
    try { return new at::Tensor(f()); }
    catch (const std::exception& e) { qk_error = e.what(); }
    catch (...) { qk_error = "unknown error"; }
    return nullptr;
}

template <typename T> struct Out;
template <> struct Out<float> {
    static __device__ __forceinline__ float make(float v) { return v; }
    static __device__ __forceinline__ float round(float v) { return v; }
};
template <> struct Out<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat16 make(float v) { return __float2bfloat16_rn(v); }
    static __device__ __forceinline__ float round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
};
template <> struct Out<__half> {
    static __device__ __forceinline__ __half make(float v) { return __float2half_rn(v); }
    static __device__ __forceinline__ float round(float v) { return __half2float(__float2half_rn(v)); }
};

struct FourBitArgs {
    const uint8_t* packed;        // [ceil(n/2)] two indices per byte, the first in the high nibble
    const float* code;            // [16]
    const float* absmax;          // [blocks] fp32 (plain), or null
    const uint8_t* absmax_codes;  // [blocks] (double-quantized), or null
    const float* nested_absmax;   // [ceil(blocks / nested_block)]
    const float* nested_code;     // [256]
    float offset;
    int64_t nested_block;
    int64_t block;                // values per block, a multiple of 8
    int64_t n;                    // values
};

// Each thread expands 8 consecutive values (4 bytes), which never straddle a block since block % 8 == 0.
template <typename T, bool Nested>
__global__ void dequantize_4bit(FourBitArgs a, T* __restrict__ out) {
    __shared__ float code[16];
    __shared__ float nested[256];
    if (threadIdx.x < 16) code[threadIdx.x] = Out<T>::round(a.code[threadIdx.x]);
    if (Nested) for (int i = threadIdx.x; i < 256; i += blockDim.x) nested[i] = a.nested_code[i];
    __syncthreads();
    int64_t first = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (first >= a.n) return;
    int64_t blk = first / a.block;
    float scale = Nested ? __fadd_rn(__fmul_rn(nested[a.absmax_codes[blk]], a.nested_absmax[blk / a.nested_block]), a.offset)
                         : a.absmax[blk];
    scale = Out<T>::round(scale);
    alignas(16) T v[8];
    #pragma unroll
    for (int j = 0; j < 4; j++) {
        int64_t at = first + 2 * j;
        uint8_t b = at < a.n ? a.packed[at / 2] : 0;
        v[2 * j] = Out<T>::make(__fmul_rn(code[b >> 4], scale));
        v[2 * j + 1] = Out<T>::make(__fmul_rn(code[b & 15], scale));
    }
    if (first + 8 <= a.n) {
        const uint4* src = reinterpret_cast<const uint4*>(v);
        uint4* dst = reinterpret_cast<uint4*>(out + first);
        #pragma unroll
        for (int k = 0; k < (int)(8 * sizeof(T) / 16); k++) dst[k] = src[k];
    } else {
        for (int j = 0; first + j < a.n; j++) out[first + j] = v[j];
    }
}

// Row-wise int8: out[r, c] = values[r, c] * scale[r], the scale rounded to the output dtype first.
template <typename T>
__global__ void dequantize_int8(const int8_t* __restrict__ values, const float* __restrict__ scale, int64_t cols, int64_t n, T* __restrict__ out) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = Out<T>::make(__fmul_rn((float)values[i], Out<T>::round(scale[i / cols])));
}

// Rows of a table in pinned host memory (read over the bus through its mapped address), written to the device.
__global__ void gather_rows(const uint8_t* __restrict__ table, const int64_t* __restrict__ ids, int64_t rows, int64_t row_bytes, uint8_t* __restrict__ out) {
    int64_t r = blockIdx.x;
    int64_t id = ids[r];
    uint8_t* dst = out + r * row_bytes;
    if (id < 0 || id >= rows) {   // ids are checked against the vocabulary before they get here; never read outside the table
        for (int64_t k = threadIdx.x; k < row_bytes; k += blockDim.x) dst[k] = 0;
        return;
    }
    const uint8_t* src = table + id * row_bytes;
    if (row_bytes % 16 == 0 && ((uintptr_t)src % 16 == 0) && ((uintptr_t)dst % 16 == 0)) {
        for (int64_t k = threadIdx.x; k < row_bytes / 16; k += blockDim.x)
            reinterpret_cast<uint4*>(dst)[k] = reinterpret_cast<const uint4*>(src)[k];
    } else {
        for (int64_t k = threadIdx.x; k < row_bytes; k += blockDim.x) dst[k] = src[k];
    }
}

static void check_launch() {
    cudaError_t e = cudaGetLastError();
    TORCH_CHECK(e == cudaSuccess, "kernel launch failed: ", cudaGetErrorString(e));
}

static void check_cuda(const at::Tensor& t, at::ScalarType dtype, const char* what) {
    TORCH_CHECK(t.is_cuda(), what, " must be on a CUDA device");
    TORCH_CHECK(t.scalar_type() == dtype, what, " has dtype ", t.scalar_type(), ", expected ", dtype);
    TORCH_CHECK(t.is_contiguous(), what, " must be contiguous");
}

template <typename T>
static void launch_4bit(bool nested, int64_t grid, int threads, cudaStream_t stream, const FourBitArgs& a, at::Tensor& out) {
    T* o = reinterpret_cast<T*>(out.data_ptr());
    if (nested) dequantize_4bit<T, true><<<grid, threads, 0, stream>>>(a, o);
    else dequantize_4bit<T, false><<<grid, threads, 0, stream>>>(a, o);
}

// absmax: fp32 [blocks] when nested_absmax is null, else uint8 codes [blocks] with nested_absmax fp32 and nested_code fp32 [256].
ST_EXPORT at::Tensor* qk_dequantize_4bit(const at::Tensor* packed, const at::Tensor* code, const at::Tensor* absmax,
    const at::Tensor* nested_absmax, const at::Tensor* nested_code, float offset, int64_t nested_block, int64_t block,
    int64_t rows, int64_t cols, int32_t dtype) {
    return guarded([&]() -> at::Tensor {
        bool nested = nested_absmax != nullptr;
        check_cuda(*packed, at::kByte, "packed weight");
        check_cuda(*code, at::kFloat, "code");
        check_cuda(*absmax, nested ? at::kByte : at::kFloat, "absmax");
        if (nested) { check_cuda(*nested_absmax, at::kFloat, "nested absmax"); check_cuda(*nested_code, at::kFloat, "nested code"); }
        TORCH_CHECK(block > 0 && block % 8 == 0, "block size must be a positive multiple of 8, got ", block);
        int64_t n = rows * cols;
        TORCH_CHECK(packed->numel() >= (n + 1) / 2, "packed weight has ", packed->numel(), " bytes, [", rows, ", ", cols, "] needs ", (n + 1) / 2);
        TORCH_CHECK(absmax->numel() >= (n + block - 1) / block, "absmax has ", absmax->numel(), " blocks, expected ", (n + block - 1) / block);
        TORCH_CHECK(!nested || nested_code->numel() == 256, "nested code must have 256 values");
        TORCH_CHECK(!nested || (nested_block > 0 && nested_absmax->numel() >= (absmax->numel() + nested_block - 1) / nested_block), "nested absmax too short");
        auto kind = static_cast<at::ScalarType>(dtype);
        auto out = at::empty({rows, cols}, packed->options().dtype(kind));
        FourBitArgs a{packed->data_ptr<uint8_t>(), code->data_ptr<float>(),
            nested ? nullptr : absmax->data_ptr<float>(), nested ? absmax->data_ptr<uint8_t>() : nullptr,
            nested ? nested_absmax->data_ptr<float>() : nullptr, nested ? nested_code->data_ptr<float>() : nullptr,
            offset, nested_block, block, n};
        if (n == 0) return out;
        int threads = 256;
        int64_t grid = ((n + 7) / 8 + threads - 1) / threads;
        auto stream = c10::cuda::getCurrentCUDAStream().stream();
        if (kind == at::kBFloat16) launch_4bit<__nv_bfloat16>(nested, grid, threads, stream, a, out);
        else if (kind == at::kHalf) launch_4bit<__half>(nested, grid, threads, stream, a, out);
        else if (kind == at::kFloat) launch_4bit<float>(nested, grid, threads, stream, a, out);
        else TORCH_CHECK(false, "unsupported output dtype ", kind);
        check_launch();
        return out;
    });
}

ST_EXPORT at::Tensor* qk_dequantize_int8(const at::Tensor* values, const at::Tensor* scale, int32_t dtype) {
    return guarded([&]() -> at::Tensor {
        check_cuda(*values, at::kChar, "int8 weight");
        check_cuda(*scale, at::kFloat, "scale");
        TORCH_CHECK(values->dim() == 2 && scale->numel() == values->size(0), "int8 weight must be [out, in] with one scale per row");
        auto kind = static_cast<at::ScalarType>(dtype);
        auto out = at::empty(values->sizes(), values->options().dtype(kind));
        int64_t n = values->numel(), cols = values->size(1);
        if (n == 0) return out;
        int threads = 256;
        int64_t grid = (n + threads - 1) / threads;
        auto stream = c10::cuda::getCurrentCUDAStream().stream();
        const int8_t* v = values->data_ptr<int8_t>();
        const float* s = scale->data_ptr<float>();
        if (kind == at::kBFloat16) dequantize_int8<__nv_bfloat16><<<grid, threads, 0, stream>>>(v, s, cols, n, reinterpret_cast<__nv_bfloat16*>(out.data_ptr()));
        else if (kind == at::kHalf) dequantize_int8<__half><<<grid, threads, 0, stream>>>(v, s, cols, n, reinterpret_cast<__half*>(out.data_ptr()));
        else if (kind == at::kFloat) dequantize_int8<float><<<grid, threads, 0, stream>>>(v, s, cols, n, out.data_ptr<float>());
        else TORCH_CHECK(false, "unsupported output dtype ", kind);
        check_launch();
        return out;
    });
}

// table: a pinned CPU tensor [rows, H]; ids: int64 on the device [N] -> [N, H] on the ids' device, table's dtype.
ST_EXPORT at::Tensor* qk_gather_host_rows(const at::Tensor* table, const at::Tensor* ids) {
    return guarded([&]() -> at::Tensor {
        TORCH_CHECK(!table->is_cuda() && table->is_pinned(), "the host table must be in pinned memory");
        TORCH_CHECK(table->dim() == 2 && table->is_contiguous(), "the host table must be a contiguous [rows, H] tensor");
        check_cuda(*ids, at::kLong, "ids");
        void* mapped = nullptr;
        cudaError_t e = cudaHostGetDevicePointer(&mapped, table->data_ptr(), 0);
        TORCH_CHECK(e == cudaSuccess, "the host table is not mapped for the device: ", cudaGetErrorString(e));
        int64_t n = ids->numel(), row_bytes = table->size(1) * table->element_size();
        auto out = at::empty({n, table->size(1)}, ids->options().dtype(table->scalar_type()));
        if (n == 0) return out;
        auto stream = c10::cuda::getCurrentCUDAStream().stream();
        gather_rows<<<n, 256, 0, stream>>>(static_cast<const uint8_t*>(mapped), ids->data_ptr<int64_t>(), table->size(0), row_bytes,
            static_cast<uint8_t*>(out.data_ptr()));
        check_launch();
        return out;
    });
}
