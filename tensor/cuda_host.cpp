// PinnedBuffer and copy_to_device_async (tensor/cuda_host.h), in every build: page-locked memory
// and queued copies with CUDA and a device, ordinary host memory and memcpy otherwise.
#include "tensor/cuda_host.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "fstm_build_config.h"
#if FSTM_HAVE_CUDA
#include "tensor/cuda/cuda_internal.h"
#endif

namespace fstm {

namespace {
constexpr size_t kHostAlignment = 64;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
#if FSTM_HAVE_CUDA
  if (cuda_device_count() > 0) {
    // Portable: usable for copies to every device.
    FSTM_CUDA_CHECK(cudaHostAlloc(&ptr_, bytes, cudaHostAllocPortable));
    pinned_ = true;
    return;
  }
#endif
  ptr_ = std::aligned_alloc(kHostAlignment, (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment);
  if (!ptr_) throw std::bad_alloc();
}

PinnedBuffer::~PinnedBuffer() { release(); }

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept { *this = std::move(other); }

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    pinned_ = std::exchange(other.pinned_, false);
    event_ = std::exchange(other.event_, nullptr);
    event_device_ = std::exchange(other.event_device_, -1);
    pending_ = std::exchange(other.pending_, false);
  }
  return *this;
}

void PinnedBuffer::release() {
#if FSTM_HAVE_CUDA
  // Destructors must not throw: errors here can only be sticky device errors already reported.
  if (event_) {
    if (pending_) (void)cudaEventSynchronize(static_cast<cudaEvent_t>(event_));
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(event_));
  }
  if (ptr_ && pinned_) {
    (void)cudaFreeHost(ptr_);
    ptr_ = nullptr;
  }
#endif
  std::free(ptr_);
  ptr_ = nullptr;
  event_ = nullptr;
  bytes_ = 0;
  pinned_ = pending_ = false;
  event_device_ = -1;
}

void PinnedBuffer::wait() {
#if FSTM_HAVE_CUDA
  if (pending_) FSTM_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)));
#endif
  pending_ = false;
}

void* PinnedBuffer::data() {
  wait();
  return ptr_;
}

void copy_to_device_async(PinnedBuffer& src, Tensor& dst, size_t src_offset) {
  const size_t bytes = dst.nbytes();
  FSTM_CHECK(src_offset <= src.size() && bytes <= src.size() - src_offset, "copy_to_device_async: ",
             dst.describe(), " needs ", bytes, " bytes from offset ", src_offset, " of a ", src.size(),
             "-byte host buffer");
  if (bytes == 0) return;
  const char* from = static_cast<const char*>(src.ptr_) + src_offset;
  if (dst.device().is_cpu()) {
    std::memcpy(dst.raw_data(), from, bytes);
    return;
  }
#if FSTM_HAVE_CUDA
  const int index = dst.device().index;
  cuda::DeviceGuard guard(index);
  const cudaStream_t stream = cuda::compute_stream(index);
  if (!src.pinned_) {
    // Pageable memory (allocated before a device was visible): a plain synchronous copy.
    FSTM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), from, bytes, cudaMemcpyHostToDevice, stream));
    FSTM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  if (src.event_ && src.event_device_ != index) {  // an event belongs to one device
    src.wait();
    FSTM_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(src.event_)));
    src.event_ = nullptr;
  }
  if (!src.event_) {
    cudaEvent_t event = nullptr;
    FSTM_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    src.event_ = event;
    src.event_device_ = index;
  }
  FSTM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), from, bytes, cudaMemcpyHostToDevice, stream));
  FSTM_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(src.event_), stream));
  src.pending_ = true;
#else
  throw Error(detail::concat("copy_to_device_async into ", dst.describe(), " but fstm was built without CUDA"));
#endif
}

}  // namespace fstm
