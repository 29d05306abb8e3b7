// CUDA masked-batch kernel (see kernels/shapley_mask.h). Grid: x covers one pixel row's W * C
// elements, y the pixel rows, z the masked images. Each thread copies one element from the image
// or the baseline, already in the output dtype (bf16 is moved as its 16 bits), so the result equals
// the CPU paths bit for bit. The cell lookups (row_cell, col_cell, one rank) hit the L1/L2 caches.
#include <cuda_runtime.h>

#include <string>

#include "kernels/shapley_mask.h"
#include "tensor/cuda/cuda_internal.h"
#include "tensor/error.h"

namespace fstm::kernels::cuda {

namespace {

constexpr int kMaskThreads = 256;
constexpr int64_t kMaxGridZ = 65535;

template <typename T>
__global__ void shapley_mask_kernel(const T* __restrict__ image, const T* __restrict__ baseline,
                                    const int32_t* __restrict__ row_cell, const int32_t* __restrict__ col_cell,
                                    const int32_t* __restrict__ ranks, const int32_t* __restrict__ rows, int grid,
                                    int64_t H, int64_t W, int64_t C, int64_t first_row, T* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // element within the pixel row
  if (i >= W * C) return;
  const int64_t y = blockIdx.y;
  const int64_t r = first_row + blockIdx.z;
  const int64_t x = i / C;
  const int64_t L2 = int64_t(grid) * grid;
  const int32_t perm = rows[2 * r], step = rows[2 * r + 1];
  const int64_t cell = int64_t(row_cell[y]) * grid + col_cell[x];
  const int64_t src = y * W * C + i;
  out[(r * H + y) * W * C + i] = ranks[perm * L2 + cell] < step ? image[src] : baseline[src];
}

void check(cudaError_t e, const char* what) {
  FSTM_CHECK(e == cudaSuccess, "shapley_mask: ", what, ": ", cudaGetErrorString(e));
}

template <typename T>
void launch(const ShapleyMaskArgs& a, cudaStream_t stream) {
  const dim3 block(kMaskThreads);
  const unsigned blocks_x = unsigned((a.width * a.channels + kMaskThreads - 1) / kMaskThreads);
  for (int64_t first = 0; first < a.n; first += kMaxGridZ) {
    const int64_t rows = a.n - first < kMaxGridZ ? a.n - first : kMaxGridZ;
    const dim3 grid(blocks_x, unsigned(a.height), unsigned(rows));
    shapley_mask_kernel<T><<<grid, block, 0, stream>>>(
        static_cast<const T*>(a.image), static_cast<const T*>(a.baseline), a.row_cell, a.col_cell, a.ranks, a.rows,
        a.grid, a.height, a.width, a.channels, first, static_cast<T*>(a.out));
    check(cudaGetLastError(), "launch");
  }
}

}  // namespace

void shapley_mask(const ShapleyMaskArgs& a, int device_index) {
  if (a.n == 0) return;
  FSTM_CHECK(a.height <= 65535, "shapley_mask: images taller than 65535 pixels are not supported on CUDA");
  ::fstm::cuda::DeviceGuard guard(device_index);
  const cudaStream_t s = ::fstm::cuda::compute_stream(device_index);
  if (a.dtype == DType::bf16) {
    launch<uint16_t>(a, s);
  } else {
    FSTM_CHECK(a.dtype == DType::f32, "shapley_mask: output dtype must be f32 or bf16");
    launch<float>(a, s);
  }
}

}  // namespace fstm::kernels::cuda
