// The masked-batch kernel of the Shapley explainer: writes B masked copies of one image straight
// into an inference plan's input buffer, one per (permutation, step) pair.
//
// Players are the cells of an L x L grid over an H x W image. Permutation p is given by its ranks
// (ranks[p, c] = the position of cell c in the permutation); row r = (p, k) is the coalition of
// the first k players of permutation p, so cell c is present in row r when ranks[p, c] < k:
//
//   out[r, y, x, ch] = ranks[p, cell(y, x)] < k ? image[y, x, ch] : baseline[y, x, ch]
//   cell(y, x) = row_cell[y] * L + col_cell[x]
//
// Any coalition can be written this way (put its members first and take k = its size), so the
// per-grid sampler and exact enumeration use the same kernel.
//
// Arguments are plain pointers, so this header needs no CUDA and one struct drives all three
// paths. Every pointer lives on the device that runs the kernel.
#pragma once
#include <cstdint>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace fstm::kernels {

struct ShapleyMaskArgs {
  int64_t height = 0, width = 0, channels = 0;  // image [H, W, C]
  int grid = 0;                                 // L; players = L * L
  const int32_t* row_cell = nullptr;            // [H]: grid row of each pixel row
  const int32_t* col_cell = nullptr;            // [W]: grid column of each pixel column
  const int32_t* col_edges = nullptr;           // [L + 1]: grid column j = pixel columns [edges[j], edges[j + 1])
  // Sources [H, W, C]. The reference reads the f32 copies and converts every element to `dtype`;
  // the fast paths read `image`/`baseline`, which the caller converted to `dtype` once per image
  // (for f32 they are the f32 copies).
  const float* image_f32 = nullptr;
  const float* baseline_f32 = nullptr;
  const void* image = nullptr;
  const void* baseline = nullptr;
  const int32_t* ranks = nullptr;  // [perms, L * L]
  int64_t perms = 0;
  const int32_t* rows = nullptr;   // [n, 2]: (permutation, step), step in [0, L * L]
  int64_t n = 0;
  void* out = nullptr;             // [n, H, W, C] in `dtype` (f32 or bf16)
  DType dtype = DType::f32;
};

// Checks the sizes and that every row names an existing permutation and a step in [0, L*L]
// (host-side rows only; reads `rows` and `ranks`). Throws fstm::Error.
void check_shapley_mask_args(const ShapleyMaskArgs& a);

namespace ref {
void shapley_mask(const ShapleyMaskArgs& a);  // plain loops, one element at a time: the oracle
}
namespace cpu {
void shapley_mask(const ShapleyMaskArgs& a);  // OpenMP over rows and pixel rows, span copies
}
namespace cuda {
// Queues the kernel on the device's compute stream, after the forwards already queued there, so
// it never overwrites an input a forward still reads. Defined only in builds with CUDA.
void shapley_mask(const ShapleyMaskArgs& a, int device_index);
}

// Runs the CPU path (fast, or the reference under FSTM_REFERENCE_KERNELS=1) or, for a CUDA
// device, the CUDA kernel on the device's compute stream.
void shapley_mask(const ShapleyMaskArgs& a, Device device);

}  // namespace fstm::kernels
