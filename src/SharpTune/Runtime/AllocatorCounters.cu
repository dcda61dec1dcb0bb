// Counters of libtorch's two caching allocators, for the step trace (StepTrace): how often each went to the driver.
// A block the caching device allocator or the pinned host cache cannot serve from what it holds costs a driver call
// (cudaMalloc / cuMemMap; cudaHostAlloc), which is slow; a step that makes many is slow for that.
#include <ATen/cuda/CachingHostAllocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

// out (10 values, running totals since the process started unless said):
// device allocator: [0] driver allocations (cudaMalloc or cuMemMap), [1] driver frees, [2] allocations retried after
// freeing the cache, [3] synchronizations of all streams, [4] segments now, [5] bytes reserved now;
// pinned host cache: [6] cudaHostAlloc calls, [7] microseconds spent in them, [8] cudaFreeHost calls, [9] pinned bytes it holds now.
ST_EXPORT int ac_counters(int64_t* out) {
    ST_TRY(
        auto d = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
        out[0] = d.num_device_alloc;
        out[1] = d.num_device_free;
        out[2] = d.num_alloc_retries;
        out[3] = d.num_sync_all_streams;
        out[4] = d.segment[0].current;
        out[5] = d.reserved_bytes[0].current;
        auto h = at::cuda::CachingHostAllocator_getStats();
        out[6] = h.num_host_alloc;
        out[7] = h.host_alloc_time.total;
        out[8] = h.num_host_free;
        out[9] = h.allocated_bytes.current;   // blocks in use and free-listed (reserved_bytes is not in every torch)
    )
}
