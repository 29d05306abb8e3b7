#include "kernels/shapley_mask.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void check_shapley_mask_args(const ShapleyMaskArgs& a) {
  FSTM_CHECK(a.height >= 1 && a.width >= 1 && a.channels >= 1, "shapley_mask: empty image [", a.height, ", ",
             a.width, ", ", a.channels, "]");
  FSTM_CHECK(a.grid >= 1 && a.grid <= a.height && a.grid <= a.width, "shapley_mask: a ", a.grid, "x", a.grid,
             " grid does not fit a ", a.height, "x", a.width, " image");
  FSTM_CHECK(a.dtype == DType::f32 || a.dtype == DType::bf16, "shapley_mask: output dtype must be f32 or bf16, got ",
             dtype_name(a.dtype));
  FSTM_CHECK(a.n >= 0 && a.perms >= 0, "shapley_mask: negative row or permutation count");
  FSTM_CHECK(a.row_cell && a.col_cell && a.col_edges && a.image_f32 && a.baseline_f32 && a.image && a.baseline &&
                 (a.n == 0 || (a.ranks && a.rows && a.out)),
             "shapley_mask: missing buffer");
  const int64_t L2 = int64_t(a.grid) * a.grid;
  for (int64_t r = 0; r < a.n; ++r) {
    FSTM_CHECK(a.rows[2 * r] >= 0 && a.rows[2 * r] < a.perms, "shapley_mask: row ", r, " names permutation ",
               a.rows[2 * r], " of ", a.perms);
    FSTM_CHECK(a.rows[2 * r + 1] >= 0 && a.rows[2 * r + 1] <= L2, "shapley_mask: row ", r, " has step ",
               a.rows[2 * r + 1], " outside [0, ", L2, "]");
  }
}

void shapley_mask(const ShapleyMaskArgs& a, Device device) {
  if (a.n == 0) return;
  if (device.is_cuda()) {
    cuda_kernels("shapley_mask").shapley_mask(a, device.index);
  } else if (use_reference()) {
    ref::shapley_mask(a);
  } else {
    cpu::shapley_mask(a);
  }
}

}  // namespace fstm::kernels
