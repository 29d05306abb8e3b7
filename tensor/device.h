// Where a tensor lives. The CPU is always there; CUDA devices come from the CUDA backend when
// fstm was built with it and a driver and GPU are present. Without them CUDA reports zero
// devices and everything runs on the CPU.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "tensor/cuda_api.h"
#include "tensor/dtype.h"

namespace fstm {

class Allocator;

enum class DeviceKind : unsigned char { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
  // "cpu", "cuda", "cuda:1". Throws fstm::Error when the text is malformed or the device does
  // not exist in this process (for example cuda on a machine without a GPU).
  static Device parse(std::string_view text);

  bool is_cpu() const { return kind == DeviceKind::cpu; }
  bool is_cuda() const { return kind == DeviceKind::cuda; }
  std::string str() const;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// What a non-CPU backend provides to the tensor library. The CUDA backend registers one at load
// time (tensor/cuda/); the CPU needs none.
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual int device_count() = 0;                       // 0 with no driver or no GPU
  virtual std::string device_name(int index) = 0;       // "NVIDIA H100 80GB HBM3"
  virtual std::string status() = 0;                     // why there are no devices, or versions
  virtual Allocator& allocator(int index) = 0;
  // Copies between host and device or device and device; synchronous with respect to the host.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void memset_zero(void* dst, Device device, size_t bytes) = 0;
  virtual void synchronize(int index) = 0;
  // Converts n elements between dtypes on the device that holds both buffers. Returns false when
  // the backend cannot (Tensor::to(DType) then converts on the host).
  virtual bool convert(const void* src, DType from, void* dst, DType to, int64_t n, Device device) {
    return false;
  }

  // The runtime controls behind tensor/cuda_api.h and tensor/cuda_host.h.
  // Queries of a device never used return zeros and create nothing.
  virtual cuda::MemoryStats memory_stats(int index) = 0;
  virtual void reset_peak_memory(int index) = 0;
  virtual void empty_cache(int index) = 0;
  virtual void synchronize_if_used(int index) = 0;
  virtual cuda::DeviceMemory device_memory(int index) = 0;
  virtual std::string library_versions() = 0;
  // Events on a device's compute stream, as opaque handles.
  virtual void* event_create(int device, bool timing) = 0;
  virtual void event_destroy(void* event) noexcept = 0;
  virtual void event_record(void* event, int device) = 0;
  virtual void event_synchronize(void* event) = 0;
  virtual bool event_query(void* event) = 0;
  virtual float event_elapsed_ms(void* start, void* end) = 0;
  // Page-locked host memory, and a host-to-device copy queued on the compute stream that returns
  // at once (the host buffer must stay untouched until an event recorded after it completes).
  virtual void* host_alloc_pinned(size_t bytes) = 0;
  virtual void host_free_pinned(void* ptr) noexcept = 0;
  virtual void copy_to_device_queued(void* dst, int device, const void* src, size_t bytes) = 0;
};

// The CUDA backend lives in its own library, libfstm_cuda.so, next to libfstm. It is opened at
// run time the first time anything asks for CUDA (cuda_backend(), a CUDA device or tensor), so a
// machine without the CUDA libraries runs everything on the CPU. When loaded, the library
// registers its DeviceBackend (and its kernels, kernels/cuda_table.h) from static initialisers.
void register_cuda_backend(DeviceBackend* backend);
DeviceBackend* cuda_backend_registered();  // what is registered now; never opens the library
DeviceBackend* cuda_backend();   // nullptr when CUDA is not built or libfstm_cuda.so cannot load
int cuda_device_count();         // 0 when CUDA is not loaded or there is no usable GPU
bool cuda_compiled();            // this build has a CUDA backend library (it may still not load)
// One line on CUDA, as `fstm info` prints it after "cuda: ": "not built (fstm was configured
// without CUDA)", "not loaded (libcudnn.so.9: cannot open shared object file: ...)", or the loaded
// backend's status() (versions and devices, or why there is no usable device).
std::string cuda_status();
// Opens libfstm_cuda.so once; returns false (cuda_status() says why) when it cannot.
bool load_cuda_backend();

Allocator& allocator_for(Device device);
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace fstm
