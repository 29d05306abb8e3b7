// The Shapley explainer: grid geometry, the fused masking kernel against the reference, the
// estimator against exact values (Shapley's definition, averaged over all n! orders), the axioms
// (efficiency, symmetry, dummy, linearity), 1/sqrt(T) convergence, antithetic pairs, early stopping,
// the plan path against the plain path, and the `fstm explain` command.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "fstm/lib/heatmap.h"
#include "fstm/lib/shapley.h"
#include "io/safetensors.h"
#include "kernels/shapley_mask.h"
#include "layers/classifier.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {

// A small nonlinear network from fstm::ops: conv3x3 + ReLU, strided conv3x3 + sigmoid, global
// average pool, linear to 3 logits. Random weights, fixed by the seed.
struct TinyNet {
  Tensor w1, b1, w2, b2, w3, b3;
  explicit TinyNet(uint64_t seed) {
    Rng rng(seed);
    w1 = test::random_tensor(Shape{5, 3, 3, 3}, rng, -0.6f, 0.6f);
    b1 = test::random_tensor(Shape{5}, rng, -0.2f, 0.2f);
    w2 = test::random_tensor(Shape{6, 5, 3, 3}, rng, -0.5f, 0.5f);
    b2 = test::random_tensor(Shape{6}, rng, -0.2f, 0.2f);
    w3 = test::random_tensor(Shape{3, 6}, rng, -2.0f, 2.0f);
    b3 = test::random_tensor(Shape{3}, rng, -0.5f, 0.5f);
  }
  Tensor forward(const Tensor& x) const {
    ops::Conv2dParams p1;
    p1.pad_h = p1.pad_w = 1;
    ops::Conv2dParams p2 = p1;
    p2.stride_h = p2.stride_w = 2;
    Tensor h = ops::relu(ops::conv2d(x, w1, b1, p1));
    h = ops::sigmoid(ops::conv2d(h, w2, b2, p2));
    return ops::linear(ops::global_avg_pool(h), w3, b3);
  }
};

// A coalition game given by a function of the members, for tests of the estimator alone.
class GameValues final : public CoalitionValues {
 public:
  GameValues(int players, std::function<double(const std::vector<bool>&)> v, int64_t max_batch = 64)
      : players_(players), v_(std::move(v)), max_batch_(max_batch) {}
  int players() const override { return players_; }
  int64_t max_batch() const override { return max_batch_; }
  void evaluate(const MaskBatch& batch, float* values) override {
    ASSERT_LE(batch.size(), max_batch_);
    for (int64_t r = 0; r < batch.size(); ++r) {
      std::vector<bool> present(static_cast<size_t>(players_));
      for (int c = 0; c < players_; ++c) present[size_t(c)] = batch.present(r, c);
      values[r] = float(v_(present));
      ++evaluated;
    }
  }
  int64_t evaluated = 0;

 private:
  int players_;
  std::function<double(const std::vector<bool>&)> v_;
  int64_t max_batch_;
};

uint64_t bits_of(const std::vector<bool>& present) {
  uint64_t b = 0;
  for (size_t c = 0; c < present.size(); ++c) b |= uint64_t(present[c]) << c;
  return b;
}

// The values of all 2^n coalitions of `values`, indexed by member bits.
std::vector<float> coalition_table(CoalitionValues& values) {
  const int n = values.players();
  const int64_t total = int64_t(1) << n;
  std::vector<float> table(static_cast<size_t>(total));
  for (int64_t first = 0; first < total; first += values.max_batch()) {
    MaskBatch batch(n);
    const int64_t last = std::min(total, first + values.max_batch());
    for (int64_t s = first; s < last; ++s) {
      std::vector<bool> present(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) present[size_t(c)] = (s >> c) & 1;
      batch.add_coalition(present);
    }
    values.evaluate(batch, &table[size_t(first)]);
  }
  return table;
}

// Shapley's definition: the mean marginal over all n! orders of the players (n <= 9 here).
std::vector<double> shapley_by_all_orders(const std::vector<float>& table, int n) {
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> phi(static_cast<size_t>(n), 0.0);
  int64_t orders = 0;
  do {
    uint64_t s = 0;
    for (int c : order) {
      phi[size_t(c)] += double(table[s | (uint64_t(1) << c)]) - double(table[s]);
      s |= uint64_t(1) << c;
    }
    ++orders;
  } while (std::next_permutation(order.begin(), order.end()));
  for (double& p : phi) p /= double(orders);
  return phi;
}

double rms_error(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / double(a.size()));
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

::testing::AssertionResult maps_close(const std::vector<double>& actual, const std::vector<double>& expected,
                                      double atol) {
  if (actual.size() != expected.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < actual.size(); ++i)
    if (!(std::abs(actual[i] - expected[i]) <= atol))
      return ::testing::AssertionFailure() << "player " << i << ": " << actual[i] << " vs " << expected[i]
                                           << " (atol " << atol << ")";
  return ::testing::AssertionSuccess();
}

Tensor random_image(int H, int W, uint64_t seed) {
  Rng rng(seed);
  return test::random_tensor(Shape{1, H, W, 3}, rng, -2.0f, 2.0f);
}

// The cell of pixel (y, x) from the definition: the last i with floor(i * H / L) <= y.
int cell_by_definition(int y, int x, int H, int W, int L) {
  int i = 0, j = 0;
  while (i + 1 < L && (i + 1) * H / L <= y) ++i;
  while (j + 1 < L && (j + 1) * W / L <= x) ++j;
  return i * L + j;
}

MaskBatch random_rows(int players, int perms, int extra_rows, uint64_t seed) {
  Rng rng(seed);
  MaskBatch b(players);
  for (int p = 0; p < perms; ++p) {
    std::vector<int32_t> order(static_cast<size_t>(players)), ranks(static_cast<size_t>(players));
    std::iota(order.begin(), order.end(), 0);
    for (int i = players - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i) + 1)]);
    for (int k = 0; k < players; ++k) ranks[size_t(order[size_t(k)])] = k;
    b.add_permutation(ranks.data());
  }
  for (int k = 0; k <= players; ++k) b.add_row(0, k);  // a whole sweep, both ends included
  for (int r = 0; r < extra_rows; ++r) b.add_row(int32_t(rng.below(uint64_t(perms))), int32_t(rng.below(uint64_t(players) + 1)));
  return b;
}

}  // namespace

// ---- grid ---------------------------------------------------------------------------------------

TEST(ShapleyGrid, SplitsByIntegerDivisionLikeLinspace) {
  // floor(torch.linspace(0, 10, 4)) = [0, 3, 6, 10]; floor(linspace(0, 7, 4)) = [0, 2, 4, 7]
  const GridGeometry g = GridGeometry::make(10, 7, 3);
  EXPECT_EQ(g.row_edges, (std::vector<int32_t>{0, 3, 6, 10}));
  EXPECT_EQ(g.col_edges, (std::vector<int32_t>{0, 2, 4, 7}));
  EXPECT_EQ(g.cell_pixels(0), 3 * 2);
  EXPECT_EQ(g.cell_pixels(8), 4 * 3);
  int64_t total = 0;
  for (int c = 0; c < g.players(); ++c) total += g.cell_pixels(c);
  EXPECT_EQ(total, 70);
  // The authors' 224 / 16: every cell 14 x 14.
  const GridGeometry a = GridGeometry::make(224, 224, 16);
  for (int i = 0; i <= 16; ++i) EXPECT_EQ(a.row_edges[size_t(i)], 14 * i);
  for (int y = 0; y < 13; ++y)
    for (int x = 0; x < 11; ++x) {
      const GridGeometry o = GridGeometry::make(13, 11, 4);
      EXPECT_EQ(o.row_cell[size_t(y)] * 4 + o.col_cell[size_t(x)], cell_by_definition(y, x, 13, 11, 4));
    }
  EXPECT_THROW(GridGeometry::make(10, 7, 8), Error);  // more grid columns than pixels
  EXPECT_THROW(GridGeometry::make(10, 7, 0), Error);
}

// ---- masking ------------------------------------------------------------------------------------

TEST(ShapleyMask, ReferenceFollowsTheDefinition) {
  const int H = 13, W = 11, L = 4;
  const GridGeometry g = GridGeometry::make(H, W, L);
  const Tensor image = random_image(H, W, 1);
  const Tensor baseline = make_baseline(image, Baseline::Blur, {.blur_sigma = 2.0f});
  MaskSource src(image, baseline, g);
  Rng rng(3);
  MaskBatch batch(g.players());
  std::vector<std::vector<bool>> coalitions;
  for (int r = 0; r < 6; ++r) {
    std::vector<bool> present(static_cast<size_t>(g.players()));
    for (int c = 0; c < g.players(); ++c) present[size_t(c)] = rng.below(2) == 1;
    batch.add_coalition(present);
    coalitions.push_back(present);
  }
  const Tensor out = src.build_reference(batch);
  const float* o = out.data<float>();
  const float* im = image.data<float>();
  const float* bl = baseline.data<float>();
  for (int r = 0; r < 6; ++r)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        for (int c = 0; c < 3; ++c) {
          const size_t s = size_t((y * W + x) * 3 + c);
          const bool in = coalitions[size_t(r)][size_t(cell_by_definition(y, x, H, W, L))];
          ASSERT_EQ(o[size_t(r) * H * W * 3 + s], in ? im[s] : bl[s]) << "row " << r << " y " << y << " x " << x;
        }
}

TEST(ShapleyMask, FusedEqualsReferenceBitExact) {
  struct Case {
    int H, W, L;
  };
  for (const Case k : {Case{13, 11, 4}, Case{7, 9, 3}, Case{16, 16, 16}, Case{5, 17, 5}, Case{32, 24, 6}}) {
    for (DType dtype : {DType::f32, DType::bf16}) {
      SCOPED_TRACE(std::to_string(k.H) + "x" + std::to_string(k.W) + " L=" + std::to_string(k.L) + " " +
                   dtype_name(dtype));
      const GridGeometry g = GridGeometry::make(k.H, k.W, k.L);
      const Tensor image = random_image(k.H, k.W, uint64_t(k.H * 100 + k.L));
      const Tensor baseline = make_baseline(image, Baseline::ImageMean);
      MaskSource src(image, baseline, g, dtype);
      const MaskBatch batch = random_rows(g.players(), 3, 17, uint64_t(k.W));
      const int64_t n = batch.size();
      Tensor out = Tensor::empty(Shape{n + 2, k.H, k.W, 3}, dtype);
      std::memset(out.raw_data(), 0xA5, out.nbytes());  // rows past the batch must stay untouched
      src.write(batch, out);
      const Tensor expected = src.build_reference(batch, dtype);
      const size_t row_bytes = size_t(k.H) * k.W * 3 * dtype_size(dtype);
      ASSERT_EQ(std::memcmp(out.raw_data(), expected.raw_data(), size_t(n) * row_bytes), 0);
      const auto* tail = static_cast<const uint8_t*>(out.raw_data()) + size_t(n) * row_bytes;
      EXPECT_TRUE(std::all_of(tail, tail + 2 * row_bytes, [](uint8_t b) { return b == 0xA5; }));
    }
  }
}

TEST(ShapleyMask, RejectsBadRowsAndBuffers) {
  const GridGeometry g = GridGeometry::make(8, 8, 2);
  const Tensor image = random_image(8, 8, 2);
  MaskSource src(image, make_baseline(image, Baseline::MeanColour), g);
  MaskBatch batch = random_rows(4, 1, 0, 1);
  Tensor small = Tensor::empty(Shape{2, 8, 8, 3});
  EXPECT_THROW(src.write(batch, small), Error);  // 5 rows into 2
  Tensor wrong_dtype = Tensor::empty(Shape{5, 8, 8, 3}, DType::bf16);
  EXPECT_THROW(src.write(batch, wrong_dtype), Error);
  batch.add_row(0, 5);  // step past the 4 players
  Tensor out = Tensor::empty(Shape{6, 8, 8, 3});
  EXPECT_THROW(src.write(batch, out), Error);
  EXPECT_THROW(MaskSource(random_image(9, 8, 1), make_baseline(image, Baseline::MeanColour), g), Error);
}

TEST(ShapleyMask, CudaEqualsReferenceBitExact) {
  FSTM_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::bf16}) {
    const GridGeometry g = GridGeometry::make(29, 23, 5);
    const Tensor image = random_image(29, 23, 9);
    MaskSource src(image, make_baseline(image, Baseline::Blur, {.grid = 5}), g, dtype, Device::cuda());
    const MaskBatch batch = random_rows(g.players(), 4, 40, 5);
    Tensor out = Tensor::zeros(Shape{batch.size(), 29, 23, 3}, dtype, Device::cuda());
    src.write(batch, out);
    const Tensor host = out.to(Device::cpu());
    const Tensor expected = src.build_reference(batch, dtype);
    EXPECT_EQ(std::memcmp(host.raw_data(), expected.raw_data(), expected.nbytes()), 0) << dtype_name(dtype);
  }
}

TEST(ShapleyBaseline, ZeroMeanBlur) {
  const Tensor image = random_image(6, 5, 4);
  const std::vector<float> x = image.to_vector();
  for (float v : make_baseline(image, Baseline::MeanColour).to_vector()) EXPECT_EQ(v, 0.0f);
  const std::vector<float> m = make_baseline(image, Baseline::ImageMean).to_vector();
  for (int c = 0; c < 3; ++c) {
    double mean = 0;
    for (int i = 0; i < 30; ++i) mean += x[size_t(i * 3 + c)];
    mean /= 30;
    for (int i = 0; i < 30; ++i) EXPECT_NEAR(m[size_t(i * 3 + c)], mean, 1e-6);
  }
  // A blur keeps a constant image constant and smooths a random one.
  const Tensor flat = Tensor::full(Shape{1, 6, 5, 3}, 0.75f);
  for (float v : make_baseline(flat, Baseline::Blur, {.blur_sigma = 1.5f}).to_vector()) EXPECT_NEAR(v, 0.75f, 1e-6);
  const std::vector<float> b = make_baseline(image, Baseline::Blur, {.blur_sigma = 1.5f}).to_vector();
  double var_x = 0, var_b = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    var_x += x[i] * x[i];
    var_b += b[i] * b[i];
  }
  EXPECT_LT(var_b, 0.5 * var_x);
  EXPECT_THROW(parse_baseline("gray"), Error);
}

// Black is pixel value 0 as the model's input normalisation maps it: the same tensor io makes of a
// black image, for ImageNet's normalisation and for another one.
TEST(ShapleyBaseline, BlackIsPixelZeroUnderTheModelsNormalisation) {
  const Tensor image = random_image(6, 5, 4);
  io::Normalization other;
  other.mean = {0.5f, 0.25f, 0.125f};
  other.std = {0.5f, 2.0f, 0.25f};
  for (const io::Normalization& n : {io::Normalization{}, other}) {
    const Tensor black = io::image_to_tensor(io::Image::blank(5, 6, 0), n);
    const std::vector<float> got = make_baseline(image, Baseline::Black, {.normalization = n}).to_vector();
    const std::vector<float> want = black.to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
  }
  EXPECT_LT(make_baseline(image, Baseline::Black).to_vector()[0], -2.0f);  // -0.485 / 0.229
}

TEST(ShapleyBaseline, PristineIsTheGivenCounterpart) {
  const Tensor image = random_image(6, 5, 4), pristine = random_image(6, 5, 9);
  EXPECT_EQ(make_baseline(image, Baseline::Pristine, {.pristine = pristine}).to_vector(), pristine.to_vector());
  EXPECT_THROW(make_baseline(image, Baseline::Pristine), Error);  // none given
  EXPECT_THROW(make_baseline(image, Baseline::Pristine, {.pristine = random_image(5, 5, 1)}), Error);  // other size
}

TEST(ShapleyBaseline, NamesRoundTrip) {
  for (Baseline b : {Baseline::Black, Baseline::MeanColour, Baseline::ImageMean, Baseline::Blur, Baseline::Pristine})
    EXPECT_EQ(parse_baseline(baseline_name(b)), b);
  EXPECT_THROW(parse_baseline("zero"), Error);  // the grey's old name, which hid what it is
  EXPECT_EQ(ShapleyOptions{}.baseline, Baseline::Black);
  EXPECT_EQ(parse_shapley_value("margin"), ShapleyValue::Margin);
  EXPECT_THROW(parse_shapley_value("prob"), Error);
}

// The margin value is logit[cls] - logit[other]: by linearity, its map is the difference of the two
// classes' logit maps, and the margin needs a two-class model.
TEST(ShapleyValueTarget, MarginIsTheDifferenceOfTheTwoLogitMaps) {
  Rng rng(5);
  const Tensor w = test::random_tensor(Shape{2, 4 * 4 * 3}, rng, -1.0f, 1.0f);
  auto linear = [&](const Tensor& x) { return ops::linear(x.reshape(Shape{x.size(0), 48}), w, Tensor()); };
  const Tensor image = random_image(4, 4, 2);
  const Tensor baseline = make_baseline(image, Baseline::Black);
  const GridGeometry g = GridGeometry::make(4, 4, 2);
  ForwardValues fake(linear, image, baseline, g, 1), real(linear, image, baseline, g, 0),
      margin(linear, image, baseline, g, ValueTarget(1, 0));
  const ShapleyResult a = exact_shapley(fake, 2), b = exact_shapley(real, 2), m = exact_shapley(margin, 2);
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(m.phi[size_t(c)], a.phi[size_t(c)] - b.phi[size_t(c)], 1e-4) << c;
  EXPECT_NEAR(m.v_empty, a.v_empty - b.v_empty, 1e-4);
  ShapleyOptions o;
  o.value = ShapleyValue::Margin;
  EXPECT_EQ(value_target(1, 2, o).minus, 0);
  EXPECT_THROW(value_target(1, 3, o), Error);
  EXPECT_EQ(value_target(2, 3, ShapleyOptions{}).minus, -1);
}

// ---- the estimator against exact values ----------------------------------------------------------

TEST(ShapleyExact, EnumerationEqualsTheMeanOverAllOrders) {
  // exact_shapley (coalition weights) against Shapley's definition (all n! orders), tiny conv net
  const TinyNet net(11);
  for (int L : {2, 3}) {
    const GridGeometry g = GridGeometry::make(12, 10, L);
    const Tensor image = random_image(12, 10, 21);
    ForwardValues values([&](const Tensor& x) { return net.forward(x); }, image, make_baseline(image, Baseline::MeanColour),
                         g, 1, 64);
    const std::vector<float> table = coalition_table(values);
    const std::vector<double> truth = shapley_by_all_orders(table, g.players());
    const ShapleyResult exact = exact_shapley(values, L);
    EXPECT_TRUE(maps_close(exact.phi, truth, 1e-6 * max_abs(truth) + 1e-9)) << "L = " << L;
    EXPECT_GT(max_abs(truth), 1e-3);  // the game is not trivial
    EXPECT_DOUBLE_EQ(exact.v_full, table.back());
    EXPECT_DOUBLE_EQ(exact.v_empty, table.front());
  }
}

TEST(ShapleyEstimator, ConvergesToExactValuesAsOneOverSqrtT) {
  const TinyNet net(12);
  const GridGeometry g = GridGeometry::make(12, 12, 3);
  const Tensor image = random_image(12, 12, 22);
  ForwardValues net_values([&](const Tensor& x) { return net.forward(x); }, image,
                           make_baseline(image, Baseline::ImageMean), g, 0, 128);
  const std::vector<float> table = coalition_table(net_values);
  const std::vector<double> truth = shapley_by_all_orders(table, 9);
  GameValues game(9, [&](const std::vector<bool>& s) { return table[bits_of(s)]; });
  for (ShapleySampler sampler : {ShapleySampler::Permutation, ShapleySampler::PerGrid}) {
    SCOPED_TRACE(shapley_sampler_name(sampler));
    std::vector<double> log_t, log_err;
    for (int64_t T : {8, 32, 128, 512}) {
      double mse = 0;
      const int seeds = 24;
      for (int s = 0; s < seeds; ++s) {
        ShapleyOptions o;
        o.grid = 3;
        o.samples = T;
        o.sampler = sampler;
        o.seed = uint64_t(1000 * T + s);
        const ShapleyResult r = estimate_shapley(game, o);
        const double e = rms_error(r.phi, truth);
        mse += e * e;
      }
      log_t.push_back(std::log(double(T)));
      log_err.push_back(0.5 * std::log(mse / seeds));
    }
    // least-squares slope of log(error) on log(T): -1/2 for a Monte Carlo mean
    const double mt = std::accumulate(log_t.begin(), log_t.end(), 0.0) / 4;
    const double me = std::accumulate(log_err.begin(), log_err.end(), 0.0) / 4;
    double num = 0, den = 0;
    for (size_t i = 0; i < 4; ++i) {
      num += (log_t[i] - mt) * (log_err[i] - me);
      den += (log_t[i] - mt) * (log_t[i] - mt);
    }
    const double slope = num / den;
    EXPECT_GT(slope, -0.65);
    EXPECT_LT(slope, -0.35);
    EXPECT_LT(std::exp(log_err.back()), 0.1 * max_abs(truth));  // and it is actually converging to the truth
  }
}

TEST(ShapleyEstimator, EfficiencyHoldsForEveryT) {
  const TinyNet net(13);
  const GridGeometry g = GridGeometry::make(11, 13, 3);
  const Tensor image = random_image(11, 13, 23);
  ForwardValues values([&](const Tensor& x) { return net.forward(x); }, image, make_baseline(image, Baseline::MeanColour),
                       g, 2, 10);
  for (bool antithetic : {false, true})
    for (int64_t T : {1, 2, 3, 5, 8}) {
      ShapleyOptions o;
      o.grid = 3;
      o.samples = T;
      o.antithetic = antithetic;
      o.seed = uint64_t(T);
      const ShapleyResult r = estimate_shapley(values, o);
      const double range = std::abs(r.v_full) + std::abs(r.v_empty);
      EXPECT_LE(std::abs(r.efficiency_gap()), 1e-6 * range + 1e-7) << "T = " << T;
      EXPECT_EQ(r.samples, T);
      EXPECT_EQ(r.evaluations, 2 + T * 8);  // the ends once, then 8 forwards per permutation
      EXPECT_NE(r.v_full, r.v_empty);
    }
}

TEST(ShapleyEstimator, LinearModelIsExactWithOnePermutation) {
  // f(x) = w_k . x + b_k: the Shapley value of a cell is w_k . (x - baseline) over the cell.
  const int H = 9, W = 14, L = 4;
  const GridGeometry g = GridGeometry::make(H, W, L);
  Rng rng(31);
  const Tensor w = test::random_tensor(Shape{2, H * W * 3}, rng);
  const Tensor b = test::random_tensor(Shape{2}, rng);
  const Tensor image = random_image(H, W, 24);
  const Tensor baseline = make_baseline(image, Baseline::Blur, {.blur_sigma = 1.0f});
  auto forward = [&](const Tensor& x) { return ops::linear(ops::flatten(x), w, b); };
  const std::vector<float> wx = w.to_vector(), xs = image.to_vector(), bs = baseline.to_vector();
  std::vector<double> expected(static_cast<size_t>(g.players()), 0.0);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        const size_t i = size_t((y * W + x) * 3 + c);
        expected[size_t(g.row_cell[size_t(y)] * L + g.col_cell[size_t(x)])] +=
            double(wx[size_t(H * W * 3) + i]) * (double(xs[i]) - double(bs[i]));  // class 1
      }
  ForwardValues values(forward, image, baseline, g, 1, 64);
  const double tol = 2e-5 * std::accumulate(expected.begin(), expected.end(), 0.0,
                                            [](double a, double v) { return a + std::abs(v); });
  for (ShapleySampler sampler : {ShapleySampler::Permutation, ShapleySampler::PerGrid})
    for (uint64_t seed : {1u, 2u, 3u}) {
      ShapleyOptions o;
      o.grid = L;
      o.samples = 1;
      o.sampler = sampler;
      o.seed = seed;
      const ShapleyResult r = estimate_shapley(values, o);
      EXPECT_TRUE(maps_close(r.phi, expected, tol)) << shapley_sampler_name(sampler) << " seed " << seed;
    }
}

TEST(ShapleyEstimator, SymmetricPlayersAreEqualAndDummiesZero) {
  // Symmetry: a model that only sees the image's mean colour, and cells 0 and 5 holding the same
  // pixels (cells of equal size), so swapping them never changes a value.
  const int H = 12, W = 12, L = 3;
  const GridGeometry g = GridGeometry::make(H, W, L);
  Tensor image = random_image(H, W, 25);
  float* p = image.data<float>();
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) p[((4 + y) * W + 8 + x) * 3 + c] = p[(y * W + x) * 3 + c];  // cell 5 := cell 0
  Rng rng(32);
  const Tensor w1 = test::random_tensor(Shape{8, 3}, rng, -3, 3), b1 = test::random_tensor(Shape{8}, rng);
  const Tensor w2 = test::random_tensor(Shape{2, 8}, rng, -3, 3), b2 = test::random_tensor(Shape{2}, rng);
  auto pooled = [&](const Tensor& x) {
    return ops::linear(ops::sigmoid(ops::linear(ops::global_avg_pool(x), w1, b1)), w2, b2);
  };
  ForwardValues sym(pooled, image, make_baseline(image, Baseline::MeanColour), g, 0, 64);
  const ShapleyResult exact = exact_shapley(sym, L);
  EXPECT_NEAR(exact.phi[0], exact.phi[5], 1e-6 * max_abs(exact.phi));
  EXPECT_GT(std::abs(exact.phi[0] - exact.phi[1]), 1e-4 * max_abs(exact.phi));  // not all equal
  ShapleyOptions o;
  o.grid = L;
  o.samples = 400;
  o.antithetic = true;
  const ShapleyResult est = estimate_shapley(sym, o);
  EXPECT_NEAR(est.phi[0], est.phi[5], 0.05 * max_abs(exact.phi));

  // Dummy: the network never sees cells 4 and 8 (their pixels are multiplied by 0 first), so every
  // marginal of theirs is exactly zero, whatever T.
  const TinyNet net(14);
  Tensor keep = Tensor::full(Shape{1, H, W, 3}, 1.0f);
  for (int y = 4; y < 12; ++y)
    for (int x = 4; x < 12; ++x)
      if ((y < 8) == (x < 8))
        for (int c = 0; c < 3; ++c) keep.data<float>()[(y * W + x) * 3 + c] = 0.0f;
  auto blind = [&](const Tensor& x) {
    Tensor k = keep;
    if (x.size(0) != 1) {
      k = Tensor::empty(x.shape());
      for (int64_t n = 0; n < x.size(0); ++n)
        std::memcpy(k.data<float>() + n * H * W * 3, keep.data<float>(), size_t(H * W * 3) * sizeof(float));
    }
    return net.forward(ops::mul(x, k));
  };
  ForwardValues dummy(blind, image, make_baseline(image, Baseline::ImageMean), g, 0, 128);  // one batch
  for (ShapleySampler sampler : {ShapleySampler::Permutation, ShapleySampler::PerGrid}) {
    ShapleyOptions d;
    d.grid = L;
    d.samples = 6;
    d.sampler = sampler;
    const ShapleyResult r = estimate_shapley(dummy, d);
    EXPECT_EQ(r.phi[4], 0.0);
    EXPECT_EQ(r.phi[8], 0.0);
    EXPECT_NE(r.phi[0], 0.0);
  }
}

TEST(ShapleyEstimator, AntitheticPairIsExactForPairwiseGames) {
  // v(S) = (sum_{i in S} a_i)^2 has phi_i = a_i * sum(a); a permutation and its reverse average to
  // exactly that (the pairwise terms cancel), for both samplers; one permutation alone does not.
  const std::vector<double> a{0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 0.05, -0.9, 1.6};
  const double A = std::accumulate(a.begin(), a.end(), 0.0);
  GameValues game(9, [&](const std::vector<bool>& s) {
    double t = 0;
    for (size_t i = 0; i < s.size(); ++i) t += s[i] ? a[i] : 0.0;
    return t * t;
  });
  std::vector<double> expected;
  for (double x : a) expected.push_back(x * A);
  for (ShapleySampler sampler : {ShapleySampler::Permutation, ShapleySampler::PerGrid}) {
    ShapleyOptions o;
    o.grid = 3;
    o.samples = 2;
    o.sampler = sampler;
    o.antithetic = true;
    o.seed = 77;
    EXPECT_TRUE(maps_close(estimate_shapley(game, o).phi, expected, 1e-5)) << shapley_sampler_name(sampler);
    o.antithetic = false;
    EXPECT_FALSE(maps_close(estimate_shapley(game, o).phi, expected, 1e-3)) << shapley_sampler_name(sampler);
  }
}

TEST(ShapleyEstimator, CostsHalfTheAuthorsSamplerAndAnyBatchSizeGivesTheSameMap) {
  EXPECT_EQ(planned_evaluations(256, ShapleyOptions{}), 2 + 100 * 255);  // 25,502 for L = 16, T = 100
  ShapleyOptions authors;
  authors.sampler = ShapleySampler::PerGrid;
  EXPECT_EQ(planned_evaluations(256, authors), 2 + 100 * 2 * 256);  // 51,202
  EXPECT_LE(2 * planned_evaluations(256, ShapleyOptions{}), planned_evaluations(256, authors));

  auto v = [](const std::vector<bool>& s) {
    double t = 0, u = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      t += s[i] ? std::sin(double(i)) : 0.0;
      u *= s[i] ? 1.1 : 0.97;
    }
    return std::tanh(t) * u;
  };
  for (ShapleySampler sampler : {ShapleySampler::Permutation, ShapleySampler::PerGrid}) {
    std::vector<double> reference;
    for (int64_t batch : {64, 7, 1, 3}) {  // 7 and 3 split permutations across batches
      GameValues game(16, v, batch);
      ShapleyOptions o;
      o.grid = 4;
      o.samples = 9;
      o.sampler = sampler;
      o.antithetic = true;
      o.seed = 5;
      const ShapleyResult r = estimate_shapley(game, o);
      EXPECT_EQ(game.evaluated, planned_evaluations(16, o));
      EXPECT_EQ(r.evaluations, planned_evaluations(16, o));
      if (reference.empty()) reference = r.phi;
      EXPECT_EQ(r.phi, reference) << "batch " << batch;  // bit for bit
    }
  }
}

TEST(ShapleyEstimator, HalvesMeasureInstabilityAndStopEarly) {
  GameValues game(16, [](const std::vector<bool>& s) {
    double t = 0;
    for (size_t i = 0; i < s.size(); ++i) t += s[i] ? 0.1 * double(i + 1) : 0.0;
    return std::sin(t) + 0.2 * t;
  });
  ShapleyOptions o;
  o.grid = 4;
  o.samples = 400;
  o.seed = 3;
  const ShapleyResult full = estimate_shapley(game, o);
  EXPECT_EQ(full.samples, 400);
  EXPECT_EQ(full.samples_half[0], 200);
  EXPECT_EQ(full.samples_half[1], 200);
  EXPECT_FALSE(full.stopped_early);
  // the map is the mean of the halves, and the reported instability is theirs
  for (size_t c = 0; c < 16; ++c) EXPECT_NEAR(full.phi[c], 0.5 * (full.phi_half[0][c] + full.phi_half[1][c]), 1e-12);
  EXPECT_DOUBLE_EQ(full.instability, map_instability(full.phi_half[0], full.phi_half[1]));
  ASSERT_EQ(full.curve.size(), 100u);  // every 4 samples
  EXPECT_EQ(full.curve.back().samples, 200);
  EXPECT_LT(full.curve.back().instability, full.curve.front().instability);

  o.until_instability = 2 * full.instability;  // reached well before T = 400
  const ShapleyResult early = estimate_shapley(game, o);
  EXPECT_TRUE(early.stopped_early);
  EXPECT_LT(early.samples, 400);
  EXPECT_EQ(early.samples_half[0], early.samples_half[1]);
  EXPECT_LT(early.instability, o.until_instability);
  EXPECT_LE(std::abs(early.efficiency_gap()), 1e-5);  // no half sample in the map
  EXPECT_LT(early.evaluations, full.evaluations);

  o.until_instability = 1e-9;  // never reached: runs to T
  EXPECT_EQ(estimate_shapley(game, o).samples, 400);

  o.samples = 1;  // one sample: no second half to compare with
  o.until_instability = 0;
  EXPECT_TRUE(std::isnan(estimate_shapley(game, o).instability));
}

TEST(ShapleyEstimator, RejectsBadOptions) {
  GameValues game(9, [](const std::vector<bool>&) { return 0.0; });
  ShapleyOptions o;
  o.grid = 3;
  o.samples = 0;
  EXPECT_THROW(estimate_shapley(game, o), Error);
  o.samples = 1;
  o.grid = 4;  // 16 players for a 9-player game
  EXPECT_THROW(estimate_shapley(game, o), Error);
  o.grid = 3;
  o.until_instability = -1;
  EXPECT_THROW(estimate_shapley(game, o), Error);
  EXPECT_THROW(parse_shapley_sampler("owen"), Error);
}

// ---- the fused plan path against the plain path ---------------------------------------------------

TEST(ShapleyPlan, FusedPlanPathMatchesThePlainPath) {
  const TinyNet net(15);
  const int H = 15, W = 13, L = 4;
  const GridGeometry g = GridGeometry::make(H, W, L);
  const Tensor image = random_image(H, W, 26);
  const Tensor baseline = make_baseline(image, Baseline::Blur, {.grid = L});
  ShapleyOptions o;
  o.grid = L;
  o.samples = 6;
  o.antithetic = true;
  o.seed = 9;
  ForwardValues plain([&](const Tensor& x) { return net.forward(x); }, image, baseline, g, 2, 64);
  const ShapleyResult expected = estimate_shapley(plain, o);
  // batch 7: permutations of 15 steps straddle batches
  InferencePlan plan([&](const Tensor& x) { return net.forward(x); }, Shape{7, H, W, 3});
  PlanValues fused(plan, image, baseline, g, 2);
  const ShapleyResult r = estimate_shapley(fused, o);
  EXPECT_TRUE(maps_close(r.phi, expected.phi, 1e-4 * max_abs(expected.phi)));
  EXPECT_EQ(r.evaluations, expected.evaluations);
  EXPECT_EQ(r.forward_rows, 7 * ((r.evaluations + 6) / 7));
  EXPECT_LE(std::abs(r.efficiency_gap()), 1e-5);

  // The plan's input buffer holds exactly the reference's masked images (f32 and bf16).
  for (DType dtype : {DType::f32, DType::bf16}) {
    std::unique_ptr<InferencePlan> p;
    try {
      p = std::make_unique<InferencePlan>([&](const Tensor& x) { return net.forward(x); }, Shape{9, H, W, 3}, dtype);
    } catch (const Error& e) {
      ASSERT_EQ(dtype, DType::bf16) << e.what();  // bf16 plans need oneDNN
      continue;
    }
    PlanValues values(*p, image, baseline, g, 0);
    const MaskBatch batch = random_rows(g.players(), 2, 0, 4);  // one sweep: 17 rows
    MaskBatch first(g.players());
    first.ranks = batch.ranks;
    first.rows.assign(batch.rows.begin(), batch.rows.begin() + 2 * 9);
    std::vector<float> v(9);
    values.evaluate(first, v.data());
    const Tensor expected_images = MaskSource(image, baseline, g).build_reference(first, dtype);
    EXPECT_EQ(std::memcmp(p->input_buffer().raw_data(), expected_images.raw_data(), expected_images.nbytes()), 0)
        << dtype_name(dtype);
    const std::vector<float> logits = p->run(expected_images.to(DType::f32)).to_vector();
    for (int r = 0; r < 9; ++r) EXPECT_EQ(v[size_t(r)], logits[size_t(r * 3)]);
  }
}

TEST(ShapleyPlan, ExplainImageRejectsAClassOutOfRange) {
  const TinyNet net(16);
  InferencePlan plan([&](const Tensor& x) { return net.forward(x); }, Shape{4, 8, 8, 3});
  ShapleyOptions o;
  o.grid = 2;
  o.samples = 1;
  EXPECT_THROW(explain_image(plan, random_image(8, 8, 1), 3, o), Error);
  EXPECT_THROW(explain_image(plan, random_image(8, 9, 1), 0, o), Error);
  const ShapleyResult r = explain_image(plan, random_image(8, 8, 1), 2, o);
  EXPECT_EQ(r.phi.size(), 4u);
}

// ---- fstm explain ---------------------------------------------------------------------------------

namespace {

using test::CommandResult;
using test::read_text;
using test::run_fstm;

class ExplainCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("explain_cli"));
    auto model = make_classifier("resnet18", 3, 7);
    io::StateDict sd;
    for (auto& [name, t] : model->state_dict()) sd.add(name, t);
    io::write_safetensors(*dir_ + "/weights.safetensors", sd);
    io::ModelMetadata meta;
    meta.arch = "resnet18";
    meta.num_classes = 3;
    meta.input_size = 32;
    meta.normalization = io::Normalization{};
    io::write_safetensors(*dir_ + "/model.safetensors", sd, io::to_metadata(meta));
    Rng rng(8);
    for (auto [name, w, h] : {std::tuple{"face.png", 32, 32}, std::tuple{"wide.png", 40, 32}}) {
      io::Image img = io::Image::blank(w, h);
      for (auto& b : img.rgb) b = uint8_t(rng.below(256));
      io::save_image(img, *dir_ + "/" + name);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model_flags() {
    return "--arch resnet18 --num-classes 3 --weights " + *dir_ + "/weights.safetensors --size 32";
  }
  static std::string* dir_;
};
std::string* ExplainCommand::dir_ = nullptr;

}  // namespace

TEST_F(ExplainCommand, WritesTheMapAsJsonAndPictures) {
  const std::string out = *dir_ + "/maps";
  const CommandResult r = run_fstm("explain --model " + *dir_ + "/model.safetensors --image " + *dir_ +
                                       "/face.png --grid 2 --samples 4 --class 1 --seed 3 --json --out " + out,
                                   *dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);  // stdout is only the JSON
  EXPECT_EQ(j["class"], 1);
  EXPECT_EQ(j["grid"], 2);
  EXPECT_EQ(j["samples"], 4);
  EXPECT_EQ(j["evaluations"], 2 + 4 * 3);
  ASSERT_EQ(j["phi"].size(), 2u);
  ASSERT_EQ(j["phi"][0].size(), 2u);
  double sum = 0;
  for (const auto& row : j["phi"])
    for (double v : row) sum += v;
  const double vf = j["v_full"], ve = j["v_empty"];
  EXPECT_NEAR(sum, vf - ve, 1e-4 * (std::abs(vf) + std::abs(ve)) + 1e-6);
  EXPECT_TRUE(j.contains("instability") && j.contains("seconds"));
  // v_full is the class-1 logit of the unmasked image
  EXPECT_NEAR(vf, double(j["logits"][1]), 1e-4 * std::abs(vf) + 1e-5);
  const io::Image overlay = io::load_image(out + "/face_shapley.png");
  EXPECT_EQ(overlay.height, 32);
  EXPECT_EQ(overlay.width, 32 + 2 + 16);  // image, gap, legend
  EXPECT_EQ(io::load_image(out + "/face_shapley_map.png").height, 32);
  const std::string csv = read_text(out + "/face_shapley.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);
  EXPECT_EQ(nlohmann::json::parse(read_text(out + "/face_shapley.json"))["phi"], j["phi"]);
}

TEST_F(ExplainCommand, BadInputsExitOneWithAClearMessage) {
  const std::string img = " --image " + *dir_ + "/face.png";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {model_flags() + " --image " + *dir_ + "/wide.png", "is 40x32 but the model takes 32x32"},
      {model_flags() + img + " --grid 33", "does not fit a 32x32 image"},
      {model_flags() + img + " --samples 0", "--samples must be at least 1"},
      {model_flags() + img + " --class 3", "--class 3 is out of range: the model has 3 classes"},
      {model_flags() + img + " --class -1", "out of range"},
      {model_flags() + img + " --mean 1,2", "--mean needs 3 comma-separated numbers"},
      {"--arch resnet18 --num-classes 3 --weights " + *dir_ + "/missing.safetensors --size 32" + img, "missing"},
      {"--arch resnet18 --num-classes 5 --weights " + *dir_ + "/weights.safetensors --size 32" + img, "fc."},
      {"--model " + *dir_ + "/weights.safetensors" + img, "no arch/num_classes"},
  };
  for (const Case& c : cases) {
    const CommandResult r = run_fstm("explain " + c.args, *dir_);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // An unknown flag is a usage error (2), as everywhere in fstm.
  EXPECT_EQ(run_fstm("explain " + model_flags() + img + " --grid-size 3", *dir_).exit_code, 2);
}
