// Masked images for Shapley explanations: the grid of players, baselines, batches of coalitions,
// and the two ways to turn coalitions into model values:
//   - PlanValues: the fast path. The masked images are written by one kernel launch per forward
//     batch (kernels/shapley_mask.h) straight into an InferencePlan's input buffer, in the plan's
//     dtype and on its device; no masked image is ever built anywhere else.
//   - ForwardValues: the plain path. Each masked image is built on the host with the reference
//     kernel and a callable model (eager forward) is run on them. The oracle of the tests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "io/image.h"
#include "layers/inference.h"
#include "tensor/tensor.h"

namespace fstm {

// The L x L grid of players over an H x W image. Cell (i, j) is player i * L + j and covers pixel
// rows [row_edges[i], row_edges[i + 1]) and columns [col_edges[j], col_edges[j + 1]) with
//   row_edges[i] = (i * H) / L,   col_edges[j] = (j * W) / L   (integer division),
// that is floor(torch.linspace(0, H, L + 1)) in exact arithmetic. When L divides the side every
// cell has side H / L (the authors' 224 / 16 = 14); otherwise cells are floor(H/L) or ceil(H/L)
// pixels, spread evenly, and every pixel belongs to exactly one cell.
struct GridGeometry {
  int height = 0, width = 0, grid = 0;
  std::vector<int32_t> row_edges, col_edges;  // [L + 1]
  std::vector<int32_t> row_cell, col_cell;    // [H], [W]: grid row / column of each pixel row / column

  // Throws fstm::Error when the grid is empty or has more rows or columns than the image has pixels.
  static GridGeometry make(int height, int width, int grid);
  int players() const { return grid * grid; }
  int64_t cell_pixels(int player) const;
};

// What absent players are replaced with. The model sees normalised input x = (pixel / 255 - mean) / std.
//   Black:      pixel value 0, i.e. x = -mean / std. The authors' baseline: their models take
//               unnormalised BGR 0..255 input and hide a cell by multiplying it with 0.
//   MeanColour: normalised 0, i.e. the normalisation's mean colour (ImageNet's: a flat grey). A
//               detector may read a flat grey face as fake, so the cells it hides can get negative
//               values for that reason alone (docs/shapley.md, "Baselines").
//   ImageMean:  the image's own mean colour (per channel, over all pixels).
//   Blur:       a Gaussian-blurred copy of the image (sigma in pixels; replicated borders).
//   Pristine:   the real counterpart's pixels where the data set has them (a fake's source frame,
//               aligned like the fake). It answers "which differences from the real frame make this
//               a fake", not "where does the model look": outside the manipulation a fake equals
//               its source, so those cells get about 0 whatever the model does.
enum class Baseline { Black, MeanColour, ImageMean, Blur, Pristine };
// "black", "mean-colour", "image-mean", "blur", "pristine"; throws naming the choices otherwise.
Baseline parse_baseline(std::string_view name);
const char* baseline_name(Baseline b);

// What some baselines need besides the image.
struct BaselineInputs {
  io::Normalization normalization{};  // Black: where pixel 0 lands in the model's input space
  float blur_sigma = 0;               // Blur: sigma in pixels; <= 0: one grid cell side (grid must be given)
  int grid = 0;
  Tensor pristine{};                  // Pristine: [H, W, C] or [1, H, W, C] f32, normalised like the image
};
// image: [H, W, C] or [1, H, W, C] f32 on the CPU -> [H, W, C] f32. Throws naming what is missing
// (a pristine image of another size, a blur without sigma or grid).
Tensor make_baseline(const Tensor& image, Baseline kind, const BaselineInputs& inputs = {});

// What a coalition's value reads from the model's logits [N, K]: logit[cls] (the paper's choice:
// the ground-truth class's logit before softmax), or, with minus >= 0, the margin
// logit[cls] - logit[minus] (for a detector: fake minus real, the evidence for "fake").
struct ValueTarget {
  int64_t cls = 0, minus = -1;
  ValueTarget(int64_t c = 0, int64_t m = -1) : cls(c), minus(m) {}  // NOLINT: a class index is a target
};

// A batch of coalitions in host memory. Permutation slot p holds ranks[p * players + c] = the
// position of player c; row (p, k) is the coalition of the first k players of permutation p.
struct MaskBatch {
  int players = 0;
  std::vector<int32_t> ranks;  // [perms, players]
  std::vector<int32_t> rows;   // [size, 2]: (permutation slot, step)

  explicit MaskBatch(int players_ = 0) : players(players_) {}
  int64_t perms() const { return players ? int64_t(ranks.size()) / players : 0; }
  int64_t size() const { return int64_t(rows.size()) / 2; }
  void clear() {
    ranks.clear();
    rows.clear();
  }
  // Appends a permutation given by its ranks ([players]); returns its slot.
  int32_t add_permutation(const int32_t* permutation_ranks);
  void add_row(int32_t perm, int32_t step);
  // Appends the coalition {c : present[c]} as one row (a permutation that puts it first).
  void add_coalition(const std::vector<bool>& present);
  // Whether player c is in row r's coalition.
  bool present(int64_t r, int c) const { return ranks[size_t(rows[2 * r]) * players + c] < rows[2 * r + 1]; }
};

// One image, its baseline and its grid, prepared on the device and in the dtype the masked images
// are written in (bf16 sources are converted once here, not once per masked image).
class MaskSource {
 public:
  // image, baseline: [H, W, C] or [1, H, W, C] f32 on the CPU (normalised).
  MaskSource(const Tensor& image, const Tensor& baseline, const GridGeometry& geometry, DType dtype = DType::f32,
             Device device = Device::cpu());

  // Writes the masked images of `batch` into rows [0, batch.size()) of `out` ([>= size, H, W, C], this
  // source's dtype and device): the fused path, one kernel launch.
  void write(const MaskBatch& batch, Tensor& out) const;
  // The same images by the reference kernel, as a new host tensor [size, H, W, C] in `dtype`.
  Tensor build_reference(const MaskBatch& batch, DType dtype = DType::f32) const;

  const GridGeometry& geometry() const { return geometry_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

 private:
  GridGeometry geometry_;
  DType dtype_;
  Device device_;
  int64_t channels_ = 0;
  Tensor image_f32_, baseline_f32_;  // [H, W, C] f32 on the host (the reference's sources)
  Tensor image_, baseline_;          // [H, W, C] in dtype_ on device_ (the fast paths' sources)
  Tensor row_cell_, col_cell_, col_edges_;  // i32 on device_
};

// Time spent per part of the evaluation, for the benchmark's masking-overhead figure.
struct EvalTiming {
  double mask_seconds = 0, forward_seconds = 0, readback_seconds = 0;
  int64_t batches = 0, rows = 0, forward_rows = 0;  // forward_rows counts the padding of partial batches
};

// Values of coalitions: the target's value (ValueTarget) on the masked image of each row.
class CoalitionValues {
 public:
  virtual ~CoalitionValues() = default;
  virtual int players() const = 0;
  virtual int64_t max_batch() const = 0;
  // values[r] for r in [0, batch.size()); batch.size() <= max_batch().
  virtual void evaluate(const MaskBatch& batch, float* values) = 0;
  virtual EvalTiming timing() const { return {}; }
};

// The fast path: fused masking into `plan`'s input buffer (its dtype, its device), then the plan.
// A partial batch runs the whole plan; rows past the batch keep older masked images.
class PlanValues final : public CoalitionValues {
 public:
  // image, baseline: [H, W, C] or [1, H, W, C] f32 on the CPU, H and W those of the plan.
  PlanValues(InferencePlan& plan, const Tensor& image, const Tensor& baseline, const GridGeometry& geometry,
             ValueTarget target);
  int players() const override { return source_.geometry().players(); }
  int64_t max_batch() const override { return plan_.input_shape()[0]; }
  void evaluate(const MaskBatch& batch, float* values) override;
  EvalTiming timing() const override { return timing_; }

 private:
  InferencePlan& plan_;
  MaskSource source_;
  ValueTarget target_;
  int64_t classes_;
  EvalTiming timing_;
};

// The plain path: masked images built one by one on the host (reference kernel, f32), then
// `forward` ([n, H, W, C] -> [n, K] logits, e.g. an eval-mode model's eager forward) on batches of
// at most max_batch rows.
class ForwardValues final : public CoalitionValues {
 public:
  using Forward = std::function<Tensor(const Tensor&)>;
  ForwardValues(Forward forward, const Tensor& image, const Tensor& baseline, const GridGeometry& geometry,
                ValueTarget target, int64_t max_batch = 64);
  int players() const override { return source_.geometry().players(); }
  int64_t max_batch() const override { return max_batch_; }
  void evaluate(const MaskBatch& batch, float* values) override;
  EvalTiming timing() const override { return timing_; }

 private:
  Forward forward_;
  MaskSource source_;
  ValueTarget target_;
  int64_t max_batch_;
  EvalTiming timing_;
};

}  // namespace fstm
