// Op tests for the own depthwise convolution (kernels/cpu/depthwise_conv.cpp): every kernel against
// the reference on odd shapes (channel counts that leave 32-, 8- and 1-channel blocks, strides that
// do not divide the extent, dilation, per-axis parameters, padding wider than the kernel), with
// poisoned outputs, accumulating weight gradients and 1 or 2 threads; then finite differences
// through a test-local op built from these kernels alone, and the dispatcher's choice.
#include <sstream>

#include "autograd/autograd.h"
#include "kernels/depthwise_conv.h"
#include "tests/ops_harness.h"

using namespace fstm;
using fstm::kernels::Conv2dParams;

namespace {

struct DwCase {
  int64_t N, H, W, C, kH, kW;
  Conv2dParams p;
  bool bias;
  std::string str() const {
    std::ostringstream s;
    s << "x [" << N << "," << H << "," << W << "," << C << "] k " << kH << "x" << kW << " stride " << p.stride_h
      << "x" << p.stride_w << " pad " << p.pad_h << "x" << p.pad_w << " dil " << p.dilation_h << "x" << p.dilation_w
      << (bias ? " bias" : "");
    return s.str();
  }
  Shape x() const { return Shape{N, H, W, C}; }
  Shape w() const { return Shape{C, 1, kH, kW}; }
};

Conv2dParams dw_params(int64_t C, int stride_h, int stride_w, int pad_h, int pad_w, int dilation = 1) {
  Conv2dParams p;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = int(C);
  return p;
}

std::vector<DwCase> dw_cases() {
  return {
      {2, 9, 11, 45, 3, 3, dw_params(45, 1, 1, 1, 1), true},     // 32 + 8 + 5 channels
      {3, 13, 9, 40, 5, 5, dw_params(40, 2, 2, 2, 2), true},     // EfficientNet's 5x5/2
      {2, 8, 8, 3, 3, 3, dw_params(3, 1, 1, 1, 1), false},       // fewer channels than a vector
      {1, 10, 10, 17, 3, 3, dw_params(17, 3, 3, 0, 0), true},    // stride 3 does not divide 10
      {2, 8, 8, 8, 3, 3, dw_params(8, 1, 1, 2, 2, 2), false},    // dilation 2
      {1, 9, 8, 33, 1, 3, dw_params(33, 2, 1, 0, 1), true},      // 1x3, per-axis stride and pad
      {2, 5, 5, 64, 5, 5, dw_params(64, 1, 1, 2, 2), false},     // kernel as large as the image
      {1, 2, 3, 9, 1, 1, dw_params(9, 1, 1, 2, 2), true},        // border outputs see only padding
      {1, 7, 7, 12, 1, 1, dw_params(12, 2, 2, 0, 0), false},     // 1x1/2: dx has untouched positions
      {1, 1, 1, 16, 3, 3, dw_params(16, 1, 1, 1, 1), true},      // one output row: one thread
  };
}

constexpr float kAtol = 2e-4f, kRtol = 1e-4f;

// Runs body once with one thread and once with two (the weight gradient reduces per-thread sums).
template <typename F>
void with_thread_counts(F body) {
  const int before = kernels::num_threads();
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " thread(s)");
    kernels::set_num_threads(threads);
    body();
  }
  kernels::set_num_threads(before);
}

TEST(OpsDepthwise, ForwardMatchesReferenceAndOverwritesPoison) {
  Rng rng(31);
  for (const DwCase& c : dw_cases()) {
    SCOPED_TRACE(c.str());
    ASSERT_TRUE(kernels::is_depthwise(c.x(), c.w(), c.p));
    Tensor x = test::random_tensor(c.x(), rng), w = test::random_tensor(c.w(), rng, -0.5f, 0.5f);
    Tensor b = c.bias ? test::random_tensor(Shape{c.C}, rng) : Tensor();
    const Shape ys = kernels::conv2d_output_shape(x.shape(), w.shape(), c.p);
    Tensor expected = Tensor::empty(ys);
    kernels::ref::conv2d_forward(x, w, b, c.p, expected);
    with_thread_counts([&] {
      Tensor actual = test::poisoned(ys);
      kernels::cpu::depthwise_conv2d_forward(x, w, b, c.p, actual);
      FSTM_EXPECT_CLOSE(actual, expected, kAtol, kRtol);
    });
  }
}

TEST(OpsDepthwise, BackwardDataMatchesReferenceAndOverwritesPoison) {
  Rng rng(32);
  for (const DwCase& c : dw_cases()) {
    SCOPED_TRACE(c.str());
    Tensor w = test::random_tensor(c.w(), rng, -0.5f, 0.5f);
    Tensor dy = test::random_tensor(kernels::conv2d_output_shape(c.x(), c.w(), c.p), rng);
    Tensor expected = Tensor::empty(c.x());
    kernels::ref::conv2d_backward_data(dy, w, c.p, expected);
    with_thread_counts([&] {
      Tensor actual = test::poisoned(c.x());
      kernels::cpu::depthwise_conv2d_backward_data(dy, w, c.p, actual);
      FSTM_EXPECT_CLOSE(actual, expected, kAtol, kRtol);
    });
  }
}

TEST(OpsDepthwise, BackwardWeightsAccumulatesIntoNonZeroBuffers) {
  Rng rng(33);
  for (const DwCase& c : dw_cases()) {
    SCOPED_TRACE(c.str());
    Tensor x = test::random_tensor(c.x(), rng);
    Tensor dy = test::random_tensor(kernels::conv2d_output_shape(c.x(), c.w(), c.p), rng);
    Tensor grad_w = Tensor::zeros(c.w()), grad_b = c.bias ? Tensor::zeros(Shape{c.C}) : Tensor();
    kernels::ref::conv2d_backward_weights(dy, x, c.p, grad_w, grad_b);
    Tensor start_w = test::random_tensor(c.w(), rng, 5.0f, 6.0f);
    Tensor start_b = c.bias ? test::random_tensor(Shape{c.C}, rng, 5.0f, 6.0f) : Tensor();
    with_thread_counts([&] {
      Tensor dw = start_w.clone(), db = c.bias ? start_b.clone() : Tensor();
      kernels::cpu::depthwise_conv2d_backward_weights(dy, x, c.p, dw, db);
      FSTM_EXPECT_CLOSE(dw, test::plus(start_w, grad_w), 5e-4f, 1e-4f);
      if (c.bias) {
        FSTM_EXPECT_CLOSE(db, test::plus(start_b, grad_b), 5e-4f, 1e-4f);
      }
    });
  }
}

// A differentiable depthwise convolution built from the own kernels only, whatever the dispatcher
// would pick, so finite differences check exactly these kernels.
struct OwnDepthwiseNode final : Node {
  Tensor x, w;
  bool has_bias = false;
  Conv2dParams p;
  const char* name() const override { return "own_depthwise"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    if (g[0].needed()) kernels::cpu::depthwise_conv2d_backward_data(dy, w, p, g[0].grad);
    Tensor dw = g[1].needed() ? g[1].grad : Tensor::zeros(w.shape());
    Tensor db = has_bias ? (g[2].needed() ? g[2].grad : Tensor::zeros(Shape{w.size(0)})) : Tensor();
    kernels::cpu::depthwise_conv2d_backward_weights(dy, x, p, dw, db);
  }
  void release_saved() override { x = w = Tensor(); }
};

Tensor own_depthwise(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  Tensor y = Tensor::empty(kernels::conv2d_output_shape(x.shape(), w.shape(), p));
  kernels::cpu::depthwise_conv2d_forward(x, w, b, p, y);
  auto node = std::make_shared<OwnDepthwiseNode>();
  node->x = x.detach();
  node->w = w.detach();
  node->has_bias = b.defined();
  node->p = p;
  record(node, {{&x, GradMode::Assign}, {&w, GradMode::Accumulate}, {&b, GradMode::Accumulate}}, y);
  return y;
}

TEST(OpsDepthwise, GradcheckOfTheOwnKernels) {
  Rng rng(34);
  const DwCase cases[] = {
      {2, 6, 7, 11, 3, 3, dw_params(11, 1, 1, 1, 1), true},
      {1, 9, 9, 5, 5, 5, dw_params(5, 2, 2, 2, 2), true},
      {1, 7, 6, 4, 3, 3, dw_params(4, 2, 1, 2, 0, 2), false},
  };
  for (const DwCase& c : cases) {
    SCOPED_TRACE(c.str());
    std::vector<Tensor> in{test::leaf(c.x(), rng), test::leaf(c.w(), rng, true, -0.5f, 0.5f)};
    if (c.bias) in.push_back(test::leaf(Shape{c.C}, rng));
    const Conv2dParams p = c.p;
    EXPECT_TRUE(test::gradcheck_ok(
        [p](const std::vector<Tensor>& v) { return own_depthwise(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), p); },
        in));
  }
}

TEST(OpsDepthwise, OnlyTrueDepthwiseConvolutionsQualify) {
  EXPECT_TRUE(kernels::is_depthwise(Shape{1, 5, 5, 8}, Shape{8, 1, 3, 3}, dw_params(8, 1, 1, 1, 1)));
  // channel multiplier 2, grouped, dense
  EXPECT_FALSE(kernels::is_depthwise(Shape{1, 5, 5, 8}, Shape{16, 1, 3, 3}, dw_params(8, 1, 1, 1, 1)));
  EXPECT_FALSE(kernels::is_depthwise(Shape{1, 5, 5, 8}, Shape{8, 2, 3, 3}, dw_params(4, 1, 1, 1, 1)));
  EXPECT_FALSE(kernels::is_depthwise(Shape{1, 5, 5, 1}, Shape{1, 1, 3, 3}, dw_params(1, 1, 1, 1, 1)));
}

}  // namespace
