// PinnedBuffer and copy_to_device_async (tensor/cuda_host.h), in every build: page-locked memory
// and queued copies with CUDA and a device, ordinary host memory and memcpy otherwise.
#include "tensor/cuda_host.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "tensor/device.h"

namespace fstm {

namespace {
constexpr size_t kHostAlignment = 64;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  if (cuda_device_count() > 0) {
    ptr_ = cuda_backend()->host_alloc_pinned(bytes);
    pinned_ = true;
    return;
  }
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
  // Pinned memory and events exist only when the CUDA backend made them.
  DeviceBackend* b = cuda_backend_registered();
  if (event_) {
    // Destructors must not throw: an error here can only be a sticky device error already reported.
    try {
      if (pending_) b->event_synchronize(event_);
    } catch (const std::exception&) {
    }
    b->event_destroy(event_);
  }
  if (ptr_ && pinned_) {
    b->host_free_pinned(ptr_);
    ptr_ = nullptr;
  }
  std::free(ptr_);
  ptr_ = nullptr;
  event_ = nullptr;
  bytes_ = 0;
  pinned_ = pending_ = false;
  event_device_ = -1;
}

void PinnedBuffer::wait() {
  if (pending_) cuda_backend_registered()->event_synchronize(event_);
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
  DeviceBackend* b = cuda_backend();
  FSTM_CHECK(b != nullptr, "copy_to_device_async into ", dst.describe(), ": there is no CUDA backend (cuda: ",
             cuda_status(), ")");
  const int index = dst.device().index;
  if (!src.pinned_) {
    // Pageable memory (allocated before a device was visible): a plain synchronous copy.
    b->copy(dst.raw_data(), dst.device(), from, Device::cpu(), bytes);
    return;
  }
  if (src.event_ && src.event_device_ != index) {  // an event belongs to one device
    src.wait();
    b->event_destroy(src.event_);
    src.event_ = nullptr;
  }
  if (!src.event_) {
    src.event_ = b->event_create(index, /*timing=*/false);
    src.event_device_ = index;
  }
  b->copy_to_device_queued(dst.raw_data(), index, from, bytes);
  b->event_record(src.event_, index);
  src.pending_ = true;
}

}  // namespace fstm
