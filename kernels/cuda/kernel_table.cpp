// The table of kernels/cuda_table.h, filled with this library's kernels and registered with
// libfstm when libfstm_cuda.so is loaded.
#include "kernels/cuda_table.h"

namespace fstm::kernels {

namespace {

const CudaKernelTable* cuda_table() {
  static const CudaKernelTable table = [] {
    CudaKernelTable t;
#define FSTM_CUDA_TABLE_FILL(fn) t.fn = &cuda::fn;
    FSTM_CUDA_KERNEL_NAMES(FSTM_CUDA_TABLE_FILL)
#undef FSTM_CUDA_TABLE_FILL
    t.make_executor = &cuda::make_executor;
    return t;
  }();
  return &table;
}

struct Registrar {
  Registrar() { register_cuda_kernels(cuda_table()); }
} registrar;

}  // namespace

}  // namespace fstm::kernels
