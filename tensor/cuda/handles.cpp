// cuDNN and cuBLAS handles, one per device, bound to the device's compute stream, plus their error
// messages. The only translation unit of tensor/ that includes the vendor headers.
#include <cublas_v2.h>
#include <cudnn.h>

#include <mutex>

#include "tensor/cuda/cuda_internal.h"

namespace fstm::cuda {

namespace {

// cuBLAS allocates its own workspace on first use unless given one, and it may not allocate while
// a CUDA graph is captured; NVIDIA recommends 32 MiB on Hopper.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

struct Handles {
  std::once_flag cudnn_once, cublas_once;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
};
Handles g_handles[kMaxDevices];

}  // namespace

cudnnContext* cudnn_handle(int index) {
  check_device(index);
  Handles& h = g_handles[index];
  std::call_once(h.cudnn_once, [&] {
    DeviceGuard guard(index);
    cudnnHandle_t handle = nullptr;
    FSTM_CUDNN_CHECK(cudnnCreate(&handle));
    FSTM_CUDNN_CHECK(cudnnSetStream(handle, compute_stream(index)));
    h.cudnn = handle;
  });
  return h.cudnn;
}

cublasContext* cublas_handle(int index) {
  check_device(index);
  Handles& h = g_handles[index];
  std::call_once(h.cublas_once, [&] {
    DeviceGuard guard(index);
    cublasHandle_t handle = nullptr;
    FSTM_CUBLAS_CHECK(cublasCreate(&handle));
    FSTM_CUBLAS_CHECK(cublasSetStream(handle, compute_stream(index)));
    void* workspace = nullptr;  // owned by the handle for the life of the process
    FSTM_CUDA_CHECK(cudaMalloc(&workspace, kCublasWorkspaceBytes));
    FSTM_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, kCublasWorkspaceBytes));
    FSTM_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
    h.cublas = handle;
  });
  return h.cublas;
}

std::string vendor_library_versions() {
  const size_t v = cudnnGetVersion();  // 91900 = 9.19.0
  std::string text = "cuDNN " + std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." +
                     std::to_string(v % 100);
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    text += ", cuBLAS " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  }
  return text;
}

void throw_cudnn_error(int status, const char* call, const char* file, int line) {
  std::string message = detail::concat("cuDNN error in ", call, " (", file, ":", line,
                                       "): ", cudnnGetErrorString(static_cast<cudnnStatus_t>(status)));
  char detail_text[512] = {};
  cudnnGetLastErrorString(detail_text, sizeof detail_text);
  if (detail_text[0]) message += std::string(" [") + detail_text + "]";
  throw Error(message);
}

void throw_cublas_error(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cublasStatus_t>(status);
  throw Error(detail::concat("cuBLAS error in ", call, " (", file, ":", line, "): ", cublasGetStatusString(s), " (",
                             cublasGetStatusName(s), ")"));
}

}  // namespace fstm::cuda
