// The registry of kernels/cuda_table.h: libfstm_cuda.so registers its table when loaded; the
// dispatcher asks for it, opening the library on first use.
#include "kernels/cuda_table.h"

#include <atomic>

#include "tensor/device.h"
#include "tensor/error.h"

namespace fstm::kernels {

namespace {
std::atomic<const CudaKernelTable*> g_cuda_table{nullptr};  // constant-initialised: safe at load
}  // namespace

void register_cuda_kernels(const CudaKernelTable* table) { g_cuda_table.store(table, std::memory_order_release); }

const CudaKernelTable& cuda_kernels(const char* what) {
  if (const CudaKernelTable* t = g_cuda_table.load(std::memory_order_acquire)) return *t;
  load_cuda_backend();
  if (const CudaKernelTable* t = g_cuda_table.load(std::memory_order_acquire)) return *t;
  throw Error(detail::concat(what, ": a CUDA tensor was passed but there is no CUDA backend (cuda: ", cuda_status(), ")"));
}

}  // namespace fstm::kernels
