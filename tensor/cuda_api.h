// CUDA runtime controls that any code may call in every build: this header needs no CUDA headers.
//
// The CUDA backend (tensor/cuda/) keeps, per device:
//   - one compute stream: every kernel, cuDNN/cuBLAS call, memset and copy of that device runs on
//     it, so work is ordered without events and freed memory can be reused at once;
//   - a caching allocator: freed blocks are kept in per-size free lists and reused by the next
//     allocation of that size class (stream order makes that safe); on out-of-memory the cache is
//     returned to the driver and the allocation retried once;
//   - one cuDNN and one cuBLAS handle bound to the compute stream.
//
// In builds without CUDA, or with no usable GPU, the queries report zeros, empty_cache() and
// synchronize() do nothing, and Event throws fstm::Error saying why.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fstm::cuda {

struct MemoryStats {
  size_t bytes_in_use = 0;        // held by live tensors (rounded to the size class)
  size_t bytes_cached = 0;        // freed, kept for reuse
  size_t bytes_in_graph_pools = 0;  // freed, reserved for captured CUDA graphs (kernels/cuda/graph.h)
  size_t peak_bytes_in_use = 0;
  uint64_t allocations = 0;       // calls to allocate()
  uint64_t cache_hits = 0;        // of which served without cudaMalloc
  uint64_t device_mallocs = 0;    // cudaMalloc calls
  uint64_t device_frees = 0;      // cudaFree calls (empty_cache, out-of-memory retries)
  uint64_t oom_retries = 0;       // allocations that succeeded only after emptying the cache
};

// Allocator statistics of device `index`; zeros when it does not exist or was never used.
MemoryStats memory_stats(int index);
void reset_peak_memory(int index);
// Waits for the device, then returns every cached block to the driver.
void empty_cache(int index);
// Waits until all work queued on the compute stream of device `index` is done.
void synchronize(int index);
// Free and total memory of the device as the driver reports them (zeros without a device).
struct DeviceMemory {
  size_t free = 0, total = 0;
};
DeviceMemory device_memory(int index);
// "driver 12.8, runtime 13.0, cuDNN 9.19.0, cuBLAS 13.0.2"; "" without CUDA.
std::string library_versions();

// A CUDA event recorded on a device's compute stream, for timing and for waiting on part of the
// queued work. Throws fstm::Error when the device does not exist.
class Event {
 public:
  explicit Event(int device = 0, bool timing = true);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record();           // marks the current end of the compute stream
  void synchronize();      // waits until the marked work is done
  bool query();            // true when the marked work is done
  // Milliseconds between `start` and this event (both recorded and completed, timing enabled).
  float elapsed_ms_since(const Event& start);

 private:
  void* event_ = nullptr;  // cudaEvent_t
  int device_ = 0;
};

}  // namespace fstm::cuda
