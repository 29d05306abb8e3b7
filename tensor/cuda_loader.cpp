// Opening the CUDA backend, libfstm_cuda.so, at run time (tensor/device.h).
//
// The library sits next to libfstm (the build folder, or lib/ of an installation). Opening it
// runs its static initialisers, which register the DeviceBackend (tensor/cuda/cuda_backend.cpp)
// and the kernel table (kernels/cuda/kernel_table.cpp). It is opened at most once per process; if
// that fails (no such file, or a CUDA library it needs is missing), the reason is kept for
// cuda_status() and everything runs on the CPU.
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "fstm_build_config.h"
#include "tensor/device.h"

namespace fstm {

namespace {

constexpr const char* kCudaLibrary = "libfstm_cuda.so";

struct LoadResult {
  bool loaded = false;
  std::string status;  // why not, when not loaded
};

// The folder of the library (or program) this function was linked into.
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr) return "";
  const std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

LoadResult open_library() {
  if (!FSTM_HAVE_CUDA) return {false, "not built (fstm was configured without CUDA)"};
  const std::string path = own_folder() + kCudaLibrary;
  // RTLD_NOW: a missing CUDA symbol fails here, with its name, not at the first kernel.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return {false, std::string("not loaded (") + (why ? why : path + ": dlopen failed") + ")"};
  }
  // Never closed: tensors and cached kernels of the backend may live until exit.
  if (cuda_backend_registered() == nullptr) return {false, "not loaded (" + path + " registered no CUDA backend)"};
  return {true, ""};
}

LoadResult& load_result() {
  static LoadResult result;
  return result;
}

}  // namespace

bool load_cuda_backend() {
  static std::once_flag once;
  std::call_once(once, [] { load_result() = open_library(); });
  return load_result().loaded;
}

std::string cuda_status() {
  if (DeviceBackend* b = cuda_backend()) return b->status();
  return load_result().status;
}

}  // namespace fstm
