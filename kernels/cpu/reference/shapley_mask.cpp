// Reference masked-batch kernel: one element at a time, straight from the definition in
// kernels/shapley_mask.h. It converts every element from f32 to the output dtype itself, so it
// also checks that the fast paths' once-per-image conversion gives the same bits.
#include "kernels/shapley_mask.h"

namespace fstm::kernels::ref {

void shapley_mask(const ShapleyMaskArgs& a) {
  const int64_t H = a.height, W = a.width, C = a.channels, L2 = int64_t(a.grid) * a.grid;
  for (int64_t r = 0; r < a.n; ++r) {
    const int32_t* ranks = a.ranks + int64_t(a.rows[2 * r]) * L2;  // [L2] of permutation p
    const int32_t step = a.rows[2 * r + 1];
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t cell = int64_t(a.row_cell[y]) * a.grid + a.col_cell[x];
        const bool present = ranks[cell] < step;
        for (int64_t c = 0; c < C; ++c) {
          const int64_t src = (y * W + x) * C + c;       // [H, W, C]
          const int64_t dst = ((r * H + y) * W + x) * C + c;  // [n, H, W, C]
          const float v = present ? a.image_f32[src] : a.baseline_f32[src];
          if (a.dtype == DType::bf16) {
            static_cast<uint16_t*>(a.out)[dst] = f32_to_bf16(v);
          } else {
            static_cast<float*>(a.out)[dst] = v;
          }
        }
      }
  }
}

}  // namespace fstm::kernels::ref
