// Op tests, part 1: convolution, max pooling and linear (the oneDNN fast paths) against the
// reference kernels on odd shapes, with poisoned outputs and accumulating parameter gradients,
// plus known-answer cases that pin down group mapping, bias and padding borders on both paths.
// Pointwise ops, batch norm, losses and optimizers: test_ops_pointwise.cpp.
// Finite-difference checks of every differentiable op: test_ops_gradcheck.cpp.
#include <cmath>
#include <sstream>

#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/pool.h"
#include "tests/ops_harness.h"

using namespace fstm;
using fstm::kernels::Conv2dParams;
using fstm::kernels::CpuPath;
using fstm::kernels::Pool2dParams;
using fstm::test::CpuPathScope;

namespace {

// ---- convolution ---------------------------------------------------------------------------------

struct ConvCase {
  int64_t N, H, W, Ci, Co, kH, kW;
  Conv2dParams p;
  bool bias;
  std::string str() const {
    std::ostringstream s;
    s << "x [" << N << "," << H << "," << W << "," << Ci << "] w [" << Co << "," << Ci / p.groups << "," << kH << ","
      << kW << "] stride " << p.stride_h << "x" << p.stride_w << " pad " << p.pad_h << "x" << p.pad_w << " dil "
      << p.dilation_h << "x" << p.dilation_w << " groups " << p.groups << (bias ? " bias" : "");
    return s.str();
  }
};

Conv2dParams conv_params(int stride, int pad, int dilation = 1, int groups = 1) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

std::vector<ConvCase> conv_cases() {
  Conv2dParams asym;  // 1x3 kernel, different strides and pads per axis
  asym.stride_h = 2;
  asym.stride_w = 1;
  asym.pad_h = 0;
  asym.pad_w = 1;
  return {
      {1, 7, 7, 3, 5, 3, 3, conv_params(1, 1), true},                // odd channels
      {3, 9, 9, 4, 6, 3, 3, conv_params(2, 1, 1, 2), false},         // 2 groups, stride 2
      {2, 13, 13, 17, 17, 3, 3, conv_params(1, 1, 1, 17), true},     // depthwise 3x3
      {3, 9, 13, 33, 33, 5, 5, conv_params(2, 2, 1, 33), false},     // depthwise 5x5/2 (EfficientNet)
      {1, 13, 13, 8, 16, 3, 3, conv_params(1, 2, 2), true},          // dilation 2
      {3, 7, 7, 5, 9, 1, 1, conv_params(2, 0), false},               // 1x1/2 downsample: gaps in dx
      {1, 15, 15, 3, 8, 7, 7, conv_params(2, 3), false},             // stem-like 7x7/2
      {2, 10, 10, 6, 4, 3, 3, conv_params(3, 0), true},              // stride does not divide the extent
      {2, 9, 8, 5, 7, 1, 3, asym, true},                             // 1x3, per-axis stride/pad
      {1, 9, 9, 4, 8, 3, 3, conv_params(1, 1, 1, 4), true},          // depthwise with multiplier 2
      {2, 9, 9, 32, 32, 3, 3, conv_params(1, 1), true},              // blocked-layout JIT kernels
      {3, 7, 7, 64, 32, 3, 3, conv_params(2, 1, 1, 2), false},       // 2 groups of 32 channels
      {2, 11, 11, 48, 48, 5, 5, conv_params(2, 2, 1, 48), true},     // depthwise 5x5/2, 16-multiple C
      {2, 14, 14, 64, 64, 3, 3, conv_params(1, 1), false},           // ResNet 3x3/1: Winograd when allowed
      {1, 7, 9, 32, 48, 3, 3, conv_params(1, 0), true},              // 3x3/1 without padding
  };
}

Tensor conv_out(const ConvCase& c, const Tensor& x, const Tensor& w) {
  return Tensor::empty(kernels::conv2d_output_shape(x.shape(), w.shape(), c.p));
}

// Tolerances for f32 kernels against the double-accumulating reference: errors grow with the
// reduction length (Ci/groups * kH * kW forward, N * Ho * Wo for weights). Direct convolution stays
// within 1e-5 on these cases, Winograd within 2e-5 (its transforms add rounding).
constexpr float kConvAtol = 2e-4f, kConvRtol = 1e-4f;

TEST(OpsConv, ForwardMatchesReference) {
  FSTM_REQUIRE_ONEDNN();
  Rng rng(11);
  for (bool winograd : {false, true})
  for (const ConvCase& c : conv_cases()) {
    test::WinogradScope algorithm(winograd);
    SCOPED_TRACE(c.str() + ", " + test::algorithm_name(winograd));
    Tensor x = test::random_tensor(Shape{c.N, c.H, c.W, c.Ci}, rng);
    Tensor w = test::random_tensor(Shape{c.Co, c.Ci / c.p.groups, c.kH, c.kW}, rng, -0.5f, 0.5f);
    Tensor b = c.bias ? test::random_tensor(Shape{c.Co}, rng) : Tensor();
    Tensor expected = conv_out(c, x, w), actual = test::poisoned(expected.shape());
    kernels::ref::conv2d_forward(x, w, b, c.p, expected);
    {
      CpuPathScope fast(CpuPath::Fast);
      kernels::conv2d_forward(x, w, b, c.p, actual);
    }
    FSTM_EXPECT_CLOSE(actual, expected, kConvAtol, kConvRtol);
  }
}

TEST(OpsConv, BackwardDataMatchesReferenceAndOverwritesPoison) {
  FSTM_REQUIRE_ONEDNN();
  Rng rng(12);
  for (bool winograd : {false, true})
  for (const ConvCase& c : conv_cases()) {
    test::WinogradScope algorithm(winograd);
    SCOPED_TRACE(c.str() + ", " + test::algorithm_name(winograd));
    const Shape xs{c.N, c.H, c.W, c.Ci};
    Tensor w = test::random_tensor(Shape{c.Co, c.Ci / c.p.groups, c.kH, c.kW}, rng, -0.5f, 0.5f);
    Tensor dy = test::random_tensor(kernels::conv2d_output_shape(xs, w.shape(), c.p), rng);
    Tensor expected = Tensor::empty(xs), actual = test::poisoned(xs);
    kernels::ref::conv2d_backward_data(dy, w, c.p, expected);
    {
      CpuPathScope fast(CpuPath::Fast);
      kernels::conv2d_backward_data(dy, w, c.p, actual);
    }
    FSTM_EXPECT_CLOSE(actual, expected, kConvAtol, kConvRtol);
  }
}

TEST(OpsConv, BackwardWeightsAccumulatesIntoNonZeroBuffers) {
  FSTM_REQUIRE_ONEDNN();
  Rng rng(13);
  for (bool winograd : {false, true})
  for (const ConvCase& c : conv_cases()) {
    test::WinogradScope algorithm(winograd);
    SCOPED_TRACE(c.str() + ", " + test::algorithm_name(winograd));
    Tensor x = test::random_tensor(Shape{c.N, c.H, c.W, c.Ci}, rng);
    const Shape ws{c.Co, c.Ci / c.p.groups, c.kH, c.kW};
    Tensor dy = test::random_tensor(kernels::conv2d_output_shape(x.shape(), ws, c.p), rng);
    // The gradient alone, from the reference on zeroed buffers.
    Tensor grad_w = Tensor::zeros(ws), grad_b = c.bias ? Tensor::zeros(Shape{c.Co}) : Tensor();
    kernels::ref::conv2d_backward_weights(dy, x, c.p, grad_w, grad_b);
    // The fast path adds into buffers that already hold something: result = start + gradient.
    Tensor start_w = test::random_tensor(ws, rng, 5.0f, 6.0f);
    Tensor start_b = c.bias ? test::random_tensor(Shape{c.Co}, rng, 5.0f, 6.0f) : Tensor();
    Tensor dw = start_w.clone(), db = c.bias ? start_b.clone() : Tensor();
    {
      CpuPathScope fast(CpuPath::Fast);
      kernels::conv2d_backward_weights(dy, x, c.p, dw, db);
    }
    FSTM_EXPECT_CLOSE(dw, test::plus(start_w, grad_w), 5e-4f, 1e-4f);
    if (c.bias) {
      FSTM_EXPECT_CLOSE(db, test::plus(start_b, grad_b), 5e-4f, 1e-4f);
    }
  }
}

TEST(OpsConv, RepeatedCallsWithChangingBatchUseTheRightPrimitive) {
  // The primitive cache is keyed by shape: alternating batch sizes and weights must not mix.
  FSTM_REQUIRE_ONEDNN();
  CpuPathScope fast(CpuPath::Fast);
  Rng rng(14);
  const Conv2dParams p = conv_params(1, 1);
  for (int64_t n : {2, 1, 3, 2}) {
    Tensor x = test::random_tensor(Shape{n, 7, 7, 16}, rng);
    Tensor w = test::random_tensor(Shape{16, 16, 3, 3}, rng, -0.5f, 0.5f);
    Tensor y = Tensor::empty(Shape{n, 7, 7, 16}), expected = Tensor::empty(y.shape());
    kernels::conv2d_forward(x, w, Tensor(), p, y);
    kernels::ref::conv2d_forward(x, w, Tensor(), p, expected);
    FSTM_EXPECT_CLOSE(y, expected, kConvAtol, kConvRtol);
  }
}

// Known answers, computed by hand, on both paths: these pin conventions that a fast kernel and a
// reference could both get wrong in the same way.
TEST(OpsConv, KnownAnswerGroupMappingAndBias) {
  // x: 1x2x2 image with 4 channels, channel c holds c + 1. groups = 2, 1x1 kernel, Co = 2:
  // output 0 belongs to group 0 (input channels 0, 1), output 1 to group 1 (channels 2, 3).
  // w[0] = [1, 0] reads channel 0; w[1] = [0, 1] reads channel 3. Bias [10, 20].
  Tensor x = Tensor::empty(Shape{1, 2, 2, 4});
  for (int64_t i = 0; i < 16; ++i) x.data<float>()[i] = float(i % 4 + 1);
  Tensor w = Tensor::from_vector({1, 0, 0, 1}, Shape{2, 2, 1, 1});
  Tensor b = Tensor::from_vector({10, 20}, Shape{2});
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(test::path_name(path));
    CpuPathScope scope(path);
    Tensor y = Tensor::empty(Shape{1, 2, 2, 2});
    kernels::conv2d_forward(x, w, b, conv_params(1, 0, 1, 2), y);
    EXPECT_EQ(y.to_vector(), (std::vector<float>{11, 24, 11, 24, 11, 24, 11, 24}));
    // Weight gradient with dy = 1 everywhere: dw[co, ci] = sum over pixels of x[group(co) * 2 + ci].
    Tensor dw = Tensor::zeros(w.shape()), db = Tensor::zeros(b.shape());
    kernels::conv2d_backward_weights(Tensor::full(y.shape(), 1.0f), x, conv_params(1, 0, 1, 2), dw, db);
    EXPECT_EQ(dw.to_vector(), (std::vector<float>{4, 8, 12, 16}));
    EXPECT_EQ(db.to_vector(), (std::vector<float>{4, 4}));
  }
}

TEST(OpsConv, KnownAnswerPaddingBorder) {
  // All-ones 4x4 image, all-ones 3x3 kernel, padding 1: each output counts the in-image taps,
  // 4 at corners, 6 on edges, 9 inside. Backward data with dy = 1 counts the same for inputs.
  const std::vector<float> counts{4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4};
  Tensor x = Tensor::full(Shape{1, 4, 4, 1}, 1.0f);
  Tensor w = Tensor::full(Shape{1, 1, 3, 3}, 1.0f);
  // Winograd's transforms round (4 may come out as 3.9999998), so this compares with a tolerance far
  // below the error a wrong border would make (at least 1).
  const Tensor expected = Tensor::from_vector(counts, Shape{1, 4, 4, 1});
  for (bool winograd : {false, true})
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(std::string(test::path_name(path)) + ", " + test::algorithm_name(winograd));
    test::WinogradScope algorithm(winograd);
    CpuPathScope scope(path);
    Tensor y = Tensor::empty(Shape{1, 4, 4, 1});
    kernels::conv2d_forward(x, w, Tensor(), conv_params(1, 1), y);
    FSTM_EXPECT_CLOSE(y, expected, 1e-5f, 0.0f);
    Tensor dx = test::poisoned(x.shape());
    kernels::conv2d_backward_data(Tensor::full(y.shape(), 1.0f), w, conv_params(1, 1), dx);
    FSTM_EXPECT_CLOSE(dx, expected, 1e-5f, 0.0f);
    Tensor dw = Tensor::zeros(w.shape());  // dy = 1: each tap sums the in-image inputs it meets
    Tensor none;
    kernels::conv2d_backward_weights(Tensor::full(y.shape(), 1.0f), x, conv_params(1, 1), dw, none);
    FSTM_EXPECT_CLOSE(dw, Tensor::from_vector({9, 12, 9, 12, 16, 12, 9, 12, 9}, w.shape()), 1e-5f, 0.0f);
    // Stride 2 on 5x5 with padding 1: outputs at rows/cols -1..1, 1..3, 3..5 -> the last window
    // hangs over the bottom/right border by one.
    Tensor x5 = Tensor::full(Shape{1, 5, 5, 1}, 1.0f), y3 = Tensor::empty(Shape{1, 3, 3, 1});
    kernels::conv2d_forward(x5, w, Tensor(), conv_params(2, 1), y3);
    EXPECT_EQ(y3.to_vector(), (std::vector<float>{4, 6, 4, 6, 9, 6, 4, 6, 4}));
  }
}

// ---- max pooling ---------------------------------------------------------------------------------

struct PoolCase {
  int64_t N, H, W, C;
  Pool2dParams p;
};

Pool2dParams pool_params(int k, int s, int pad) {
  Pool2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  return p;
}

std::vector<PoolCase> pool_cases() {
  Pool2dParams asym = pool_params(3, 2, 1);
  asym.kernel_w = 2;
  asym.stride_w = 1;
  asym.pad_w = 0;
  return {{1, 7, 7, 3, pool_params(3, 2, 1)},  {3, 9, 13, 17, pool_params(3, 2, 1)},
          {2, 13, 13, 33, pool_params(2, 2, 0)}, {1, 8, 8, 64, pool_params(3, 1, 1)},
          {2, 10, 9, 5, pool_params(3, 3, 0)},   {3, 7, 9, 16, asym}};
}

std::string pool_str(const PoolCase& c) {
  std::ostringstream s;
  s << "x [" << c.N << "," << c.H << "," << c.W << "," << c.C << "] k " << c.p.kernel_h << "x" << c.p.kernel_w
    << " s " << c.p.stride_h << "x" << c.p.stride_w << " pad " << c.p.pad_h << "x" << c.p.pad_w;
  return s.str();
}

// Values from {lo, lo+1, ..., lo+levels-1}: many ties in every window.
Tensor tied_tensor(const Shape& shape, Rng& rng, int levels, float lo) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = lo + float(rng.below(uint64_t(levels)));
  return t;
}

TEST(OpsMaxPool, ForwardAndBackwardMatchReferenceWithTiesAndNegatives) {
  FSTM_REQUIRE_ONEDNN();
  Rng rng(21);
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(pool_str(c));
    const Shape xs{c.N, c.H, c.W, c.C};
    // Random values; values with ties (first max must win); all-negative values (padding is -inf,
    // not 0).
    for (int variant = 0; variant < 3; ++variant) {
      SCOPED_TRACE(variant == 0 ? "random" : variant == 1 ? "ties" : "negative");
      Tensor x = variant == 0   ? test::random_tensor(xs, rng)
                 : variant == 1 ? tied_tensor(xs, rng, 3, 0.0f)
                                : test::random_tensor(xs, rng, -3.0f, -1.0f);
      const Shape ys = kernels::max_pool2d_output_shape(xs, c.p);
      Tensor expected = Tensor::empty(ys), actual = test::poisoned(ys);
      kernels::ref::max_pool2d_forward(x, c.p, expected);
      Tensor dy = test::random_tensor(ys, rng);
      Tensor expected_dx = Tensor::empty(xs), actual_dx = test::poisoned(xs);
      kernels::ref::max_pool2d_backward(dy, x, c.p, expected_dx);
      {
        CpuPathScope fast(CpuPath::Fast);
        kernels::max_pool2d_forward(x, c.p, actual);
        kernels::max_pool2d_backward(dy, x, c.p, actual_dx);
      }
      EXPECT_EQ(actual.to_vector(), expected.to_vector());
      FSTM_EXPECT_CLOSE(actual_dx, expected_dx, 1e-6f, 1e-6f);
    }
  }
}

TEST(OpsMaxPool, KnownAnswerTiesGoToTheFirstMaximum) {
  // A constant 5x5 image, 3x3 windows, stride 2, padding 1: every window is one big tie, and the
  // first in-image element of window (oh, ow) is (max(2 oh - 1, 0), max(2 ow - 1, 0)).
  Tensor x = Tensor::full(Shape{1, 5, 5, 1}, 2.0f);
  Tensor dy = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 3, 3, 1});
  std::vector<float> expected(25, 0.0f);
  for (int oh = 0; oh < 3; ++oh)
    for (int ow = 0; ow < 3; ++ow) expected[size_t(std::max(2 * oh - 1, 0) * 5 + std::max(2 * ow - 1, 0))] += float(oh * 3 + ow + 1);
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(test::path_name(path));
    CpuPathScope scope(path);
    Tensor dx = test::poisoned(x.shape());
    kernels::max_pool2d_backward(dy, x, pool_params(3, 2, 1), dx);
    EXPECT_EQ(dx.to_vector(), expected);
  }
}

// ---- linear ----------------------------------------------------------------------------------------

struct LinearCase {
  int64_t N, I, O;
  bool bias;
};

std::vector<LinearCase> linear_cases() {
  return {{1, 3, 5, true}, {3, 17, 33, false}, {32, 512, 2, true}, {7, 129, 65, true}, {5, 1, 1, true}};
}

TEST(OpsLinear, ForwardBackwardMatchReferenceAndAccumulate) {
  FSTM_REQUIRE_ONEDNN();
  Rng rng(31);
  for (const LinearCase& c : linear_cases()) {
    SCOPED_TRACE("N " + std::to_string(c.N) + " in " + std::to_string(c.I) + " out " + std::to_string(c.O));
    Tensor x = test::random_tensor(Shape{c.N, c.I}, rng);
    Tensor w = test::random_tensor(Shape{c.O, c.I}, rng, -0.5f, 0.5f);
    Tensor b = c.bias ? test::random_tensor(Shape{c.O}, rng) : Tensor();
    Tensor dy = test::random_tensor(Shape{c.N, c.O}, rng);
    Tensor y_ref = Tensor::empty(Shape{c.N, c.O}), dx_ref = Tensor::empty(x.shape());
    Tensor dw_ref = Tensor::zeros(w.shape()), db_ref = c.bias ? Tensor::zeros(Shape{c.O}) : Tensor();
    kernels::ref::linear_forward(x, w, b, y_ref);
    kernels::ref::linear_backward_data(dy, w, dx_ref);
    kernels::ref::linear_backward_weights(dy, x, dw_ref, db_ref);

    Tensor start_w = test::random_tensor(w.shape(), rng, 2.0f, 3.0f);
    Tensor start_b = c.bias ? test::random_tensor(Shape{c.O}, rng, 2.0f, 3.0f) : Tensor();
    Tensor y = test::poisoned(y_ref.shape()), dx = test::poisoned(x.shape());
    Tensor dw = start_w.clone(), db = c.bias ? start_b.clone() : Tensor();
    {
      CpuPathScope fast(CpuPath::Fast);
      kernels::linear_forward(x, w, b, y);
      kernels::linear_backward_data(dy, w, dx);
      kernels::linear_backward_weights(dy, x, dw, db);
    }
    FSTM_EXPECT_CLOSE(y, y_ref, 1e-4f, 1e-4f);
    FSTM_EXPECT_CLOSE(dx, dx_ref, 1e-4f, 1e-4f);
    FSTM_EXPECT_CLOSE(dw, test::plus(start_w, dw_ref), 1e-4f, 1e-4f);
    if (c.bias) {
      FSTM_EXPECT_CLOSE(db, test::plus(start_b, db_ref), 1e-4f, 1e-4f);
    }
  }
}

TEST(OpsLinear, KnownAnswer) {
  // y = x W^T + b with x [1, 2] = [1, 2], W [[1, 0], [3, 4]], b [0.5, -1] -> [1.5, 10].
  Tensor x = Tensor::from_vector({1, 2}, Shape{1, 2});
  Tensor w = Tensor::from_vector({1, 0, 3, 4}, Shape{2, 2});
  Tensor b = Tensor::from_vector({0.5f, -1}, Shape{2});
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(test::path_name(path));
    CpuPathScope scope(path);
    Tensor y = Tensor::empty(Shape{1, 2});
    kernels::linear_forward(x, w, b, y);
    EXPECT_EQ(y.to_vector(), (std::vector<float>{1.5f, 10.0f}));
    Tensor dx = test::poisoned(x.shape());  // dy [1, 1] -> dx = dy W = [4, 4]
    kernels::linear_backward_data(Tensor::full(Shape{1, 2}, 1.0f), w, dx);
    EXPECT_EQ(dx.to_vector(), (std::vector<float>{4, 4}));
  }
}

}  // namespace
