#include "fstm/lib/masking.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "autograd/autograd.h"
#include "kernels/shapley_mask.h"

namespace fstm {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// [H, W, C] or [1, H, W, C] f32 on the CPU -> a [H, W, C] view.
Tensor as_hwc(const Tensor& image, const char* what) {
  FSTM_CHECK(image.defined(), what, ": undefined tensor");
  FSTM_CHECK(image.device().is_cpu() && image.dtype() == DType::f32, what, " must be an f32 tensor on the CPU, got ",
             image.describe());
  if (image.dim() == 4) {
    FSTM_CHECK(image.size(0) == 1, what, " must hold one image, got ", image.describe());
    return image.reshape(Shape{image.size(1), image.size(2), image.size(3)});
  }
  FSTM_CHECK(image.dim() == 3, what, " must be [H, W, C] or [1, H, W, C], got ", image.describe());
  return image;
}

Tensor i32_tensor(const std::vector<int32_t>& v, Device device) {
  Tensor t = Tensor::empty(Shape{int64_t(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t.to(device);
}

Tensor convert_f32(const Tensor& src, DType dtype) {
  if (dtype == DType::f32) return src;
  Tensor out = Tensor::empty(src.shape(), dtype);
  const float* s = src.data<float>();
  uint16_t* d = out.data<uint16_t>();
  for (int64_t i = 0; i < src.numel(); ++i) d[i] = f32_to_bf16(s[i]);  // the reference kernel's rounding
  return out;
}

// Separable Gaussian blur of [H, W, C] with replicated borders.
Tensor gaussian_blur(const Tensor& image, float sigma) {
  const int64_t H = image.size(0), W = image.size(1), C = image.size(2);
  const int radius = std::max(1, int(std::ceil(3.0f * sigma)));
  std::vector<float> taps(static_cast<size_t>(2 * radius + 1));
  float total = 0;
  for (int k = -radius; k <= radius; ++k) total += taps[size_t(k + radius)] = std::exp(-0.5f * k * k / (sigma * sigma));
  for (float& t : taps) t /= total;
  Tensor tmp = Tensor::empty(image.shape()), out = Tensor::empty(image.shape());
  const float* src = image.data<float>();
  float* mid = tmp.data<float>();
  float* dst = out.data<float>();
  auto clamp = [](int64_t v, int64_t n) { return std::min(std::max<int64_t>(v, 0), n - 1); };
  for (int64_t y = 0; y < H; ++y)  // along rows
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) {
        float acc = 0;
        for (int k = -radius; k <= radius; ++k) acc += taps[size_t(k + radius)] * src[(y * W + clamp(x + k, W)) * C + c];
        mid[(y * W + x) * C + c] = acc;
      }
  for (int64_t y = 0; y < H; ++y)  // along columns
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) {
        float acc = 0;
        for (int k = -radius; k <= radius; ++k) acc += taps[size_t(k + radius)] * mid[(clamp(y + k, H) * W + x) * C + c];
        dst[(y * W + x) * C + c] = acc;
      }
  return out;
}

}  // namespace

// ---- grid ------------------------------------------------------------------------------------

GridGeometry GridGeometry::make(int height, int width, int grid) {
  FSTM_CHECK(grid >= 1, "grid must be at least 1, got ", grid);
  FSTM_CHECK(height >= 1 && width >= 1, "image of ", width, "x", height, " pixels has no grid");
  FSTM_CHECK(grid <= height && grid <= width, "a ", grid, "x", grid, " grid (", int64_t(grid) * grid,
             " players) needs at least ", grid, " pixels per side; the image is ", width, "x", height);
  GridGeometry g;
  g.height = height;
  g.width = width;
  g.grid = grid;
  for (int i = 0; i <= grid; ++i) {
    g.row_edges.push_back(int32_t(int64_t(i) * height / grid));
    g.col_edges.push_back(int32_t(int64_t(i) * width / grid));
  }
  g.row_cell.resize(size_t(height));
  g.col_cell.resize(size_t(width));
  for (int i = 0; i < grid; ++i) {
    for (int y = g.row_edges[size_t(i)]; y < g.row_edges[size_t(i) + 1]; ++y) g.row_cell[size_t(y)] = i;
    for (int x = g.col_edges[size_t(i)]; x < g.col_edges[size_t(i) + 1]; ++x) g.col_cell[size_t(x)] = i;
  }
  return g;
}

int64_t GridGeometry::cell_pixels(int player) const {
  const int i = player / grid, j = player % grid;
  return int64_t(row_edges[size_t(i) + 1] - row_edges[size_t(i)]) * (col_edges[size_t(j) + 1] - col_edges[size_t(j)]);
}

// ---- baselines -------------------------------------------------------------------------------

Baseline parse_baseline(std::string_view name) {
  for (Baseline b : {Baseline::Black, Baseline::MeanColour, Baseline::ImageMean, Baseline::Blur, Baseline::Pristine})
    if (name == baseline_name(b)) return b;
  throw Error("unknown baseline '" + std::string(name) +
              "' (expected black, mean-colour, image-mean, blur or pristine)");
}

const char* baseline_name(Baseline b) {
  switch (b) {
    case Baseline::Black: return "black";
    case Baseline::MeanColour: return "mean-colour";
    case Baseline::ImageMean: return "image-mean";
    case Baseline::Blur: return "blur";
    case Baseline::Pristine: return "pristine";
  }
  return "?";
}

namespace {

// Every pixel set to one colour per channel.
Tensor flat_colour(const Shape& hwc, const std::vector<double>& colour) {
  Tensor out = Tensor::empty(hwc);
  const int64_t C = hwc[2], pixels = hwc[0] * hwc[1];
  float* o = out.data<float>();
  for (int64_t i = 0; i < pixels; ++i)
    for (int64_t c = 0; c < C; ++c) o[i * C + c] = float(colour[size_t(c)]);
  return out;
}

std::vector<double> image_mean_colour(const Tensor& x) {
  const int64_t C = x.size(2), pixels = x.size(0) * x.size(1);
  std::vector<double> mean(size_t(C), 0.0);
  const float* p = x.data<float>();
  for (int64_t i = 0; i < pixels; ++i)
    for (int64_t c = 0; c < C; ++c) mean[size_t(c)] += p[i * C + c];
  for (double& m : mean) m /= double(pixels);
  return mean;
}

// Pixel value 0 in the normalised space: -mean / std per channel.
std::vector<double> black_colour(const io::Normalization& n, int64_t channels) {
  FSTM_CHECK(channels == 3, "black baseline: the image has ", channels, " channels, the normalisation 3");
  std::vector<double> colour(3);
  for (size_t c = 0; c < 3; ++c) colour[c] = -double(n.mean[c]) / double(n.std[c]);
  return colour;
}

}  // namespace

Tensor make_baseline(const Tensor& image, Baseline kind, const BaselineInputs& in) {
  const Tensor x = as_hwc(image, "baseline image");
  switch (kind) {
    case Baseline::Black: return flat_colour(x.shape(), black_colour(in.normalization, x.size(2)));
    case Baseline::MeanColour: return Tensor::zeros(x.shape());
    case Baseline::ImageMean: return flat_colour(x.shape(), image_mean_colour(x));
    case Baseline::Blur: {
      float sigma = in.blur_sigma;
      if (sigma <= 0) {
        FSTM_CHECK(in.grid >= 1, "blur baseline: give a sigma or the grid size");
        sigma = float(std::max(x.size(0), x.size(1))) / float(in.grid);
      }
      return gaussian_blur(x, sigma);
    }
    case Baseline::Pristine: {
      FSTM_CHECK(in.pristine.defined(), "pristine baseline: no pristine image was given (the real counterpart of ",
                 x.describe(), ")");
      const Tensor p = as_hwc(in.pristine, "pristine image");
      FSTM_CHECK(p.shape() == x.shape(), "pristine baseline: the pristine image ", p.describe(),
                 " does not match the explained image ", x.describe());
      return p.clone();
    }
  }
  throw Error("unknown baseline");
}

// ---- batches ---------------------------------------------------------------------------------

int32_t MaskBatch::add_permutation(const int32_t* permutation_ranks) {
  ranks.insert(ranks.end(), permutation_ranks, permutation_ranks + players);
  return int32_t(perms() - 1);
}

void MaskBatch::add_row(int32_t perm, int32_t step) {
  rows.push_back(perm);
  rows.push_back(step);
}

void MaskBatch::add_coalition(const std::vector<bool>& present) {
  FSTM_CHECK(int64_t(present.size()) == players, "coalition of ", present.size(), " players in a batch of ", players);
  std::vector<int32_t> r(static_cast<size_t>(players));
  int32_t next = 0;
  for (int c = 0; c < players; ++c)
    if (present[size_t(c)]) r[size_t(c)] = next++;
  const int32_t size = next;
  for (int c = 0; c < players; ++c)
    if (!present[size_t(c)]) r[size_t(c)] = next++;
  add_row(add_permutation(r.data()), size);
}

// ---- the masking source ----------------------------------------------------------------------

MaskSource::MaskSource(const Tensor& image, const Tensor& baseline, const GridGeometry& geometry, DType dtype,
                       Device device)
    : geometry_(geometry), dtype_(dtype), device_(device) {
  image_f32_ = as_hwc(image, "image");
  baseline_f32_ = as_hwc(baseline, "baseline");
  FSTM_CHECK(image_f32_.size(0) == geometry.height && image_f32_.size(1) == geometry.width, "image ",
             image_f32_.describe(), " does not match the grid's ", geometry.width, "x", geometry.height, " pixels");
  FSTM_CHECK(baseline_f32_.shape() == image_f32_.shape(), "baseline ", baseline_f32_.describe(),
             " does not match image ", image_f32_.describe());
  FSTM_CHECK(dtype == DType::f32 || dtype == DType::bf16, "masked images must be f32 or bf16, got ",
             dtype_name(dtype));
  channels_ = image_f32_.size(2);
  image_ = convert_f32(image_f32_, dtype).to(device);
  baseline_ = convert_f32(baseline_f32_, dtype).to(device);
  row_cell_ = i32_tensor(geometry.row_cell, device);
  col_cell_ = i32_tensor(geometry.col_cell, device);
  col_edges_ = i32_tensor(geometry.col_edges, device);
}

namespace {
kernels::ShapleyMaskArgs host_args(const GridGeometry& g, int64_t channels, const Tensor& image_f32,
                                   const Tensor& baseline_f32, const MaskBatch& batch) {
  kernels::ShapleyMaskArgs a;
  a.height = g.height;
  a.width = g.width;
  a.channels = channels;
  a.grid = g.grid;
  a.row_cell = g.row_cell.data();
  a.col_cell = g.col_cell.data();
  a.col_edges = g.col_edges.data();
  a.image_f32 = image_f32.data<float>();
  a.baseline_f32 = baseline_f32.data<float>();
  a.image = a.image_f32;
  a.baseline = a.baseline_f32;
  a.ranks = batch.ranks.data();
  a.perms = batch.perms();
  a.rows = batch.rows.data();
  a.n = batch.size();
  return a;
}
}  // namespace

void MaskSource::write(const MaskBatch& batch, Tensor& out) const {
  FSTM_CHECK(batch.players == geometry_.players(), "batch of ", batch.players, " players for a grid of ",
             geometry_.players());
  FSTM_CHECK(out.dim() == 4 && out.size(0) >= batch.size() && out.size(1) == geometry_.height &&
                 out.size(2) == geometry_.width && out.size(3) == channels_,
             "masked batch of ", batch.size(), " images of ", image_f32_.describe(), " does not fit ",
             out.describe());
  FSTM_CHECK(out.dtype() == dtype_ && out.device() == device_, "masked images are prepared as ", dtype_name(dtype_),
             " on ", device_.str(), ", the buffer is ", out.describe(), " on ", out.device().str());
  kernels::ShapleyMaskArgs a = host_args(geometry_, channels_, image_f32_, baseline_f32_, batch);
  a.dtype = dtype_;
  a.out = out.raw_data();
  kernels::check_shapley_mask_args(a);  // on the host copies of rows and ranks
  a.image = image_.raw_data();
  a.baseline = baseline_.raw_data();
  Tensor ranks, rows;
  if (device_.is_cuda()) {
    ranks = i32_tensor(batch.ranks, device_);
    rows = i32_tensor(batch.rows, device_);
    a.ranks = ranks.data<int32_t>();
    a.rows = rows.data<int32_t>();
    a.row_cell = row_cell_.data<int32_t>();
    a.col_cell = col_cell_.data<int32_t>();
    a.col_edges = col_edges_.data<int32_t>();
  }
  kernels::shapley_mask(a, device_);
}

Tensor MaskSource::build_reference(const MaskBatch& batch, DType dtype) const {
  FSTM_CHECK(batch.players == geometry_.players(), "batch of ", batch.players, " players for a grid of ",
             geometry_.players());
  Tensor out = Tensor::empty(Shape{batch.size(), geometry_.height, geometry_.width, channels_}, dtype);
  kernels::ShapleyMaskArgs a = host_args(geometry_, channels_, image_f32_, baseline_f32_, batch);
  a.dtype = dtype;
  a.out = out.raw_data();
  kernels::check_shapley_mask_args(a);
  kernels::ref::shapley_mask(a);
  return out;
}

// ---- coalition values ------------------------------------------------------------------------

namespace {
// [N, K] logits (any device) -> values[r] = logits[r, cls] (- logits[r, minus]) for r < n.
void read_target(const Tensor& logits, int64_t n, ValueTarget target, float* values) {
  const Tensor host = logits.slice(0, n).to(Device::cpu());
  const int64_t K = host.size(1);
  const float* p = host.data<float>();
  for (int64_t r = 0; r < n; ++r)
    values[r] = target.minus >= 0 ? p[r * K + target.cls] - p[r * K + target.minus] : p[r * K + target.cls];
}

void check_target(ValueTarget target, int64_t classes) {
  FSTM_CHECK(target.cls >= 0 && target.cls < classes, "class ", target.cls, " is out of range: the model has ",
             classes, " classes (0..", classes - 1, ")");
  FSTM_CHECK(target.minus < classes && target.minus != target.cls, "margin class ", target.minus,
             " is out of range or the explained class itself: the model has ", classes, " classes");
}
}  // namespace

PlanValues::PlanValues(InferencePlan& plan, const Tensor& image, const Tensor& baseline, const GridGeometry& geometry,
                       ValueTarget target)
    : plan_(plan),
      source_(image, baseline, geometry, plan.dtype(), plan.input_buffer().device()),
      target_(target) {
  const Shape& in = plan.input_shape();
  FSTM_CHECK(in[1] == geometry.height && in[2] == geometry.width, "the model's plan takes ", in[2], "x", in[1],
             " images, the grid is over ", geometry.width, "x", geometry.height);
  const Shape& out = plan.graph().values[size_t(plan.graph().output)];
  FSTM_CHECK(out.size() == 2, "the model must output logits [N, K], its plan outputs ", out.str());
  classes_ = out[1];
  check_target(target, classes_);
  Tensor buffer = plan.input_buffer();
  buffer.zero_();  // rows past a partial batch are run too: keep them finite
}

void PlanValues::evaluate(const MaskBatch& batch, float* values) {
  const int64_t n = batch.size();
  FSTM_CHECK(n <= max_batch(), "batch of ", n, " coalitions for a plan of ", max_batch());
  if (n == 0) return;
  Tensor buffer = plan_.input_buffer();
  auto t0 = Clock::now();
  source_.write(batch, buffer);
  timing_.mask_seconds += seconds_since(t0);
  t0 = Clock::now();
  const Tensor logits = plan_.run_input_buffer();
  timing_.forward_seconds += seconds_since(t0);
  t0 = Clock::now();
  read_target(logits, n, target_, values);
  timing_.readback_seconds += seconds_since(t0);
  timing_.batches += 1;
  timing_.rows += n;
  timing_.forward_rows += max_batch();
}

ForwardValues::ForwardValues(Forward forward, const Tensor& image, const Tensor& baseline,
                             const GridGeometry& geometry, ValueTarget target, int64_t max_batch)
    : forward_(std::move(forward)), source_(image, baseline, geometry), target_(target), max_batch_(max_batch) {
  FSTM_CHECK(max_batch >= 1, "batch size must be at least 1");
  FSTM_CHECK(target.cls >= 0, "class ", target.cls, " is out of range");
}

void ForwardValues::evaluate(const MaskBatch& batch, float* values) {
  const int64_t n = batch.size();
  FSTM_CHECK(n <= max_batch_, "batch of ", n, " coalitions for a maximum of ", max_batch_);
  if (n == 0) return;
  auto t0 = Clock::now();
  const Tensor x = source_.build_reference(batch);
  timing_.mask_seconds += seconds_since(t0);
  t0 = Clock::now();
  Tensor logits;
  {
    NoGradGuard no_grad;
    logits = forward_(x);
  }
  timing_.forward_seconds += seconds_since(t0);
  FSTM_CHECK(logits.dim() == 2 && logits.size(0) == n, "the model must output logits [", n, ", K], got ",
             logits.describe());
  check_target(target_, logits.size(1));
  t0 = Clock::now();
  read_target(logits, n, target_, values);
  timing_.readback_seconds += seconds_since(t0);
  timing_.batches += 1;
  timing_.rows += n;
  timing_.forward_rows += n;
}

}  // namespace fstm
