// Fast masked-batch kernel. A pixel row of a masked image is at most L spans, each copied whole
// from the image or from the baseline; neighbouring cells with the same source merge into one
// copy. The sources are already in the output dtype (converted once per image by the caller), so
// bf16 rows cost no per-element conversion. Rows x pixel rows are spread over the OpenMP threads.
//
// Cost per masked image: H * W * C * sizeof(dtype) bytes written, at most H * L copies; the
// membership test is one rank comparison per cell and pixel row, so consecutive steps of one
// permutation (which differ by one cell) need no state carried between rows.
#include <cstring>

#include "kernels/shapley_mask.h"

namespace fstm::kernels::cpu {

void shapley_mask(const ShapleyMaskArgs& a) {
  const int64_t H = a.height, W = a.width, C = a.channels, L = a.grid, L2 = L * L;
  const size_t elem = dtype_size(a.dtype);
  const size_t pixel_bytes = size_t(C) * elem;
  const char* image = static_cast<const char*>(a.image);
  const char* baseline = static_cast<const char*>(a.baseline);
  char* out = static_cast<char*>(a.out);
  const int64_t work = a.n * H;
#pragma omp parallel for schedule(static) if (work * W * C > (1 << 15))
  for (int64_t i = 0; i < work; ++i) {
    const int64_t r = i / H, y = i % H;
    const int32_t* ranks = a.ranks + int64_t(a.rows[2 * r]) * L2 + int64_t(a.row_cell[y]) * L;  // this grid row
    const int32_t step = a.rows[2 * r + 1];
    const size_t row_offset = size_t(y * W) * pixel_bytes;
    char* dst = out + size_t(r * H * W) * pixel_bytes + row_offset;
    int64_t j = 0;
    while (j < L) {
      const bool present = ranks[j] < step;
      int64_t end = j + 1;
      while (end < L && (ranks[end] < step) == present) ++end;  // merge cells with the same source
      const size_t begin_bytes = size_t(a.col_edges[j]) * pixel_bytes;
      const size_t span_bytes = size_t(a.col_edges[end] - a.col_edges[j]) * pixel_bytes;
      std::memcpy(dst + begin_bytes, (present ? image : baseline) + row_offset + begin_bytes, span_bytes);
      j = end;
    }
  }
}

}  // namespace fstm::kernels::cpu
