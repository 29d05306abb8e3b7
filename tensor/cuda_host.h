// Page-locked ("pinned") host buffers and asynchronous host-to-device copies, for the data loader.
//
// A loader thread fills a PinnedBuffer with a batch; the training thread calls
// copy_to_device_async() which queues the copy on the device's compute stream and returns at once,
// so the host can prepare the next batch while the GPU copies and computes. The copy is ordered
// before every kernel queued after it, so the destination tensor can be used right away.
//
// The buffer must not be rewritten while a copy out of it is pending: data() waits for pending
// copies before it hands out the pointer, so the obvious loop is safe.
//
// Without CUDA or without a GPU a PinnedBuffer is ordinary (pageable) host memory and copying into
// a CPU tensor is a plain memcpy, so the same loader code runs everywhere.
#pragma once
#include <cstddef>

#include "tensor/tensor.h"

namespace fstm {

class PinnedBuffer;
// Copies dst.nbytes() bytes starting at src_offset into dst. A CUDA dst: queued on its compute
// stream, returns without waiting. A CPU dst: memcpy. Throws fstm::Error when the buffer is too
// small.
void copy_to_device_async(PinnedBuffer& src, Tensor& dst, size_t src_offset = 0);

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);   // page-locked when a CUDA device is present
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  // For writing: waits until no queued copy reads the buffer any more.
  void* data();
  template <typename T>
  T* data_as() {
    return static_cast<T*>(data());
  }
  // For reading (queued copies only read, so no wait).
  const void* data() const { return ptr_; }
  size_t size() const { return bytes_; }
  bool pinned() const { return pinned_; }
  // Blocks until every copy queued from this buffer has finished.
  void wait();

 private:
  friend void copy_to_device_async(PinnedBuffer& src, Tensor& dst, size_t src_offset);
  void release();

  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
  void* event_ = nullptr;   // cudaEvent_t recorded after the last queued copy
  int event_device_ = -1;
  bool pending_ = false;
};

}  // namespace fstm
