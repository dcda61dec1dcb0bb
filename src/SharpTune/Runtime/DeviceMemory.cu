// The CUDA caching allocator's statistics (what torch.cuda.memory_allocated / max_memory_allocated /
// memory_reserved report in Python), which TorchSharp does not bind. Used to account for a training step's memory.
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <cstdint>
#include <string>

#ifndef ST_EXPORT
#define ST_EXPORT extern "C" __attribute__((visibility("default")))
#endif

static thread_local std::string dm_error;
ST_EXPORT const char* dm_last_error() { return dm_error.c_str(); }

// out: allocated now, allocated peak, reserved now, reserved peak (bytes) of the current device. 0 on success.
ST_EXPORT int32_t dm_stats(int64_t* out) {
    try {
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
        out[0] = stats.allocated_bytes[0].current;
        out[1] = stats.allocated_bytes[0].peak;
        out[2] = stats.reserved_bytes[0].current;
        out[3] = stats.reserved_bytes[0].peak;
        return 0;
    } catch (const std::exception& e) { dm_error = e.what(); return 1; }
}

// out: free and total bytes of the current device as the driver counts them (every process's use, the context included).
ST_EXPORT int32_t dm_device_memory(int64_t* out) {
    size_t free = 0, total = 0;
    cudaError_t rc = cudaMemGetInfo(&free, &total);
    if (rc != cudaSuccess) { dm_error = cudaGetErrorString(rc); return 1; }
    out[0] = static_cast<int64_t>(free);
    out[1] = static_cast<int64_t>(total);
    return 0;
}

ST_EXPORT int32_t dm_reset_peak() {
    try { c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device()); return 0; } catch (...) { return 1; }
}

// Returns the allocator's unused cached blocks to the driver (torch.cuda.empty_cache()).
ST_EXPORT int32_t dm_empty_cache() {
    try { c10::cuda::CUDACachingAllocator::emptyCache(); return 0; } catch (...) { return 1; }
}
