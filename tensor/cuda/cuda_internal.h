// Internal to the CUDA backend and kernels/cuda: error checks, the device guard, the per-device
// compute stream, allocator and library handles. Needs the CUDA runtime headers; does not include
// cuDNN or cuBLAS (their handles are passed around as the opaque struct pointers they are).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/device.h"
#include "tensor/error.h"

struct cudnnContext;   // cudnnHandle_t is cudnnContext*
struct cublasContext;  // cublasHandle_t is cublasContext*

namespace fstm::cuda {

class CachingAllocator;

constexpr int kMaxDevices = 64;  // devices beyond this are ignored

// Throw fstm::Error naming the failed call, where it was made and the library's error string.
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(int status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* file, int line);

#define FSTM_CUDA_CHECK(call)                                                             \
  do {                                                                                    \
    const cudaError_t fstm_status_ = (call);                                              \
    if (fstm_status_ != cudaSuccess) ::fstm::cuda::throw_cuda_error(fstm_status_, #call, __FILE__, __LINE__); \
  } while (0)
// After a <<<...>>> launch: reports bad launch configurations (and earlier asynchronous errors).
#define FSTM_CUDA_CHECK_LAUNCH(kernel_name)                                                \
  do {                                                                                    \
    const cudaError_t fstm_status_ = cudaGetLastError();                                  \
    if (fstm_status_ != cudaSuccess)                                                      \
      ::fstm::cuda::throw_cuda_error(fstm_status_, "launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)
// cuDNN and cuBLAS report success as 0.
#define FSTM_CUDNN_CHECK(call)                                                            \
  do {                                                                                    \
    const int fstm_status_ = int(call);                                                   \
    if (fstm_status_ != 0) ::fstm::cuda::throw_cudnn_error(fstm_status_, #call, __FILE__, __LINE__); \
  } while (0)
#define FSTM_CUBLAS_CHECK(call)                                                           \
  do {                                                                                    \
    const int fstm_status_ = int(call);                                                   \
    if (fstm_status_ != 0) ::fstm::cuda::throw_cublas_error(fstm_status_, #call, __FILE__, __LINE__); \
  } while (0)

// Makes `index` the current device for the scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  explicit DeviceGuard(Device device) : DeviceGuard(device.index) {}
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Throws fstm::Error unless `index` is a usable CUDA device.
void check_device(int index);
// The one compute stream of a device (created on first use, non-blocking, never destroyed).
cudaStream_t compute_stream(int index);
CachingAllocator& caching_allocator(int index);
// Library handles bound to compute_stream(index); created on first use, never destroyed (the
// driver may already be gone when static destructors run). Use from one thread at a time.
cudnnContext* cudnn_handle(int index);
cublasContext* cublas_handle(int index);
// "cuDNN 9.19.0, cuBLAS 13.0.2" (tensor/cuda/handles.cpp).
std::string vendor_library_versions();
// True while the compute stream of `index` is being captured into a CUDA graph.
bool stream_is_capturing(int index);

// Device-side dtype conversion (tensor/cuda/convert.cu); false when the pair is not supported.
bool convert_on_device(const void* src, DType from, void* dst, DType to, int64_t n, cudaStream_t stream);
// Whether this binary has kernel code the current device can run; `why` says what is missing.
bool kernels_runnable(std::string* why);

}  // namespace fstm::cuda
