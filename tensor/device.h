// Where a tensor lives. The CPU is always there; CUDA devices come from the CUDA backend when
// fstm was built with it and a driver and GPU are present. Without them CUDA reports zero
// devices and everything runs on the CPU.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

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
};

void register_cuda_backend(DeviceBackend* backend);
DeviceBackend* cuda_backend();   // nullptr when fstm was built without CUDA
int cuda_device_count();         // 0 when built without CUDA or no usable GPU
bool cuda_compiled();

Allocator& allocator_for(Device device);
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace fstm
