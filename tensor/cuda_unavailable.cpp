// tensor/cuda_api.h in builds without CUDA: queries report nothing and Event says why it cannot
// exist. (With CUDA these live in tensor/cuda/cuda_backend.cpp.)
#include "fstm_build_config.h"

#if !FSTM_HAVE_CUDA

#include "tensor/cuda_api.h"
#include "tensor/error.h"

namespace fstm {

namespace cuda {

MemoryStats memory_stats(int) { return {}; }
void reset_peak_memory(int) {}
void empty_cache(int) {}
void synchronize(int) {}
DeviceMemory device_memory(int) { return {}; }
std::string library_versions() { return ""; }

Event::Event(int device, bool) : device_(device) {
  throw Error(detail::concat("CUDA event on cuda:", device, " requested but fstm was built without CUDA"));
}
Event::~Event() = default;
void Event::record() {}
void Event::synchronize() {}
bool Event::query() { return true; }
float Event::elapsed_ms_since(const Event&) { return 0.0f; }

}  // namespace cuda

}  // namespace fstm

#endif  // !FSTM_HAVE_CUDA
