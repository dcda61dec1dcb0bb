// Copies between the GPU and pinned host memory on a side stream (CopyStream.cs): libtorch's ops of this process run on
// the current stream (TorchSharp binds no stream API), where a copy would hold up the kernels queued behind it.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <mutex>
#include <vector>

static std::mutex cs_gate;
static std::vector<cudaStream_t> cs_streams;

// One stream of our own per device, not c10's stream pool: the pool's first use creates dozens of streams.
static c10::cuda::CUDAStream cs_side(c10::DeviceIndex device) {
    std::lock_guard<std::mutex> lock(cs_gate);
    if (cs_streams.size() <= (size_t)device) cs_streams.resize(device + 1, nullptr);
    if (!cs_streams[device]) {
        c10::cuda::CUDAGuard guard(device);
        C10_CUDA_CHECK(cudaStreamCreateWithFlags(&cs_streams[device], cudaStreamNonBlocking));
    }
    return c10::cuda::getStreamFromExternal(cs_streams[device], device);
}

// dst.copy_(src) for one tensor on the GPU and one in pinned host memory, on the side stream of the GPU's device, after
// the work queued on the current stream so far. The GPU tensor's block is not reused before the copy has run (its
// use on the side stream is recorded with the caching allocator; the host block's with the host allocator, by
// copy_). *done receives an event that marks the copy's end, for cs_wait.
ST_EXPORT int cs_copy(at::Tensor* dst, at::Tensor* src, void** done) {
    ST_TRY(
        const at::Tensor& gpu = dst->is_cuda() ? *dst : *src;
        TORCH_CHECK(dst->is_cuda() != src->is_cuda(), "cs_copy: one tensor on the GPU, one on the host");
        c10::cuda::CUDAGuard guard(gpu.device());
        auto compute = at::cuda::getCurrentCUDAStream();
        auto side = cs_side(gpu.device().index());
        at::cuda::CUDAEvent ready;
        ready.record(compute);
        ready.block(side);
        {
            c10::cuda::CUDAStreamGuard on(side);
            dst->copy_(*src, /*non_blocking=*/true);
        }
        c10::cuda::CUDACachingAllocator::recordStream(gpu.storage().data_ptr(), side);
        auto* event = new at::cuda::CUDAEvent();
        event->record(side);
        *done = event)
}

// The current stream waits (on the GPU, the host does not) for the copy that made `done`, which is freed.
ST_EXPORT int cs_wait(void* done) {
    ST_TRY(
        auto* event = static_cast<at::cuda::CUDAEvent*>(done);
        event->block(at::cuda::getCurrentCUDAStream(event->device_index()));
        delete event)
}
