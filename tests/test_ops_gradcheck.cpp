// Op tests, part 3: every differentiable op (fstm::ops) against finite differences, on the reference
// path and on the fast path, with NaN-poisoned Assign gradients (a backward that leaves an element
// unwritten fails). ReLU and max-pool kinks are skipped by gradcheck itself.
#include <cmath>

#include "autograd/ops.h"
#include "tests/ops_harness.h"

using namespace fstm;
using fstm::kernels::CpuPath;
using fstm::test::CpuPathScope;
using fstm::test::leaf;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks f on both CPU paths; also checks that every gradient is finite everywhere (gradcheck
// samples at most 64 elements per input, poisoning catches the rest).
void check_both_paths(const Fn& f, const std::vector<Tensor>& inputs, GradcheckOptions opt = {}) {
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(test::path_name(path));
    CpuPathScope scope(path);
    EXPECT_TRUE(test::gradcheck_ok(f, inputs, opt));
    for (size_t k = 0; k < inputs.size(); ++k) {
      if (!inputs[k].requires_grad()) continue;
      ASSERT_TRUE(inputs[k].grad().defined()) << "input " << k;
      for (float g : inputs[k].grad().to_vector()) {
        ASSERT_TRUE(std::isfinite(g)) << "input " << k << " has a non-finite gradient";
      }
    }
  }
}

kernels::Conv2dParams conv_params(int stride, int pad, int dilation = 1, int groups = 1) {
  kernels::Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dilation_h = p.dilation_w = dilation;
  p.groups = groups;
  return p;
}

TEST(OpsGradcheck, Conv2d) {
  Rng rng(101);
  struct Case {
    Shape x, w;
    kernels::Conv2dParams p;
    bool bias;
  };
  const Case cases[] = {
      {Shape{2, 5, 5, 3}, Shape{4, 3, 3, 3}, conv_params(1, 1), true},
      {Shape{1, 7, 7, 4}, Shape{4, 2, 3, 3}, conv_params(2, 1, 1, 2), false},  // groups 2
      {Shape{1, 6, 6, 3}, Shape{3, 1, 3, 3}, conv_params(1, 1, 1, 3), true},   // depthwise
      {Shape{1, 9, 9, 5}, Shape{5, 1, 5, 5}, conv_params(2, 2, 1, 5), false},  // depthwise 5x5/2
      {Shape{1, 7, 7, 2}, Shape{2, 2, 3, 3}, conv_params(1, 2, 2), true},      // dilation 2
      {Shape{2, 5, 5, 3}, Shape{4, 3, 1, 1}, conv_params(2, 0), false},        // 1x1/2
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("x " + c.x.str() + " w " + c.w.str() + " groups " + std::to_string(c.p.groups));
    std::vector<Tensor> in{leaf(c.x, rng), leaf(c.w, rng, true, -0.5f, 0.5f)};
    if (c.bias) in.push_back(leaf(Shape{c.w[0]}, rng));
    const kernels::Conv2dParams p = c.p;
    check_both_paths([p](const std::vector<Tensor>& v) { return ops::conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), p); },
                     in);
  }
}

TEST(OpsGradcheck, BatchNormTrainAndEval) {
  Rng rng(102);
  for (const Shape& s : {Shape{2, 3, 3, 4}, Shape{6, 5}}) {
    SCOPED_TRACE(s.str());
    const int64_t C = s.back();
    std::vector<Tensor> in{leaf(s, rng), leaf(Shape{C}, rng, true, 0.5f, 1.5f), leaf(Shape{C}, rng)};
    Tensor rm = Tensor::zeros(Shape{C}), rv = Tensor::full(Shape{C}, 1.0f);
    // Training: the output depends on x through the batch statistics too.
    check_both_paths([&](const std::vector<Tensor>& v) { return ops::batch_norm(v[0], v[1], v[2], rm, rv, true, 0.1f, 1e-5f); },
                     in);
    Tensor erm = test::random_tensor(Shape{C}, rng), erv = test::random_tensor(Shape{C}, rng, 0.5f, 2.0f);
    check_both_paths(
        [&](const std::vector<Tensor>& v) { return ops::batch_norm(v[0], v[1], v[2], erm, erv, false, 0.1f, 1e-5f); }, in);
  }
}

TEST(OpsGradcheck, BatchNormReluTrain) {
  Rng rng(109);
  const Shape s{2, 3, 3, 4};
  Tensor rm = Tensor::zeros(Shape{4}), rv = Tensor::full(Shape{4}, 1.0f);
  // With a residual (the block's second batch norm) and without (its first).
  check_both_paths(
      [&](const std::vector<Tensor>& v) { return ops::batch_norm_relu(v[0], v[1], v[2], rm, rv, true, 0.1f, 1e-5f, v[3]); },
      {leaf(s, rng), leaf(Shape{4}, rng, true, 0.5f, 1.5f), leaf(Shape{4}, rng), leaf(s, rng)});
  check_both_paths(
      [&](const std::vector<Tensor>& v) { return ops::batch_norm_relu(v[0], v[1], v[2], rm, rv, true, 0.1f, 1e-5f); },
      {leaf(s, rng), leaf(Shape{4}, rng, true, 0.5f, 1.5f), leaf(Shape{4}, rng)});
}

TEST(OpsGradcheck, Linear) {
  Rng rng(103);
  check_both_paths([](const std::vector<Tensor>& v) { return ops::linear(v[0], v[1], v[2]); },
                   {leaf(Shape{3, 5}, rng), leaf(Shape{4, 5}, rng), leaf(Shape{4}, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::linear(v[0], v[1], Tensor()); },
                   {leaf(Shape{1, 7}, rng), leaf(Shape{2, 7}, rng)});
}

TEST(OpsGradcheck, Pooling) {
  Rng rng(104);
  kernels::Pool2dParams p;  // 3x3, stride 2, padding 1 (ResNet)
  check_both_paths([p](const std::vector<Tensor>& v) { return ops::max_pool2d(v[0], p); }, {leaf(Shape{2, 5, 5, 3}, rng)});
  kernels::Pool2dParams q;
  q.kernel_h = q.kernel_w = 2;
  q.stride_h = q.stride_w = 2;
  q.pad_h = q.pad_w = 0;
  check_both_paths([q](const std::vector<Tensor>& v) { return ops::max_pool2d(v[0], q); }, {leaf(Shape{1, 6, 7, 2}, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::global_avg_pool(v[0]); }, {leaf(Shape{3, 3, 5, 4}, rng)});
}

TEST(OpsGradcheck, Activations) {
  Rng rng(105);
  for (kernels::Activation a : {kernels::Activation::Relu, kernels::Activation::Sigmoid, kernels::Activation::Silu}) {
    SCOPED_TRACE(kernels::activation_name(a));
    check_both_paths([a](const std::vector<Tensor>& v) { return ops::activation(a, v[0]); },
                     {leaf(Shape{3, 4, 5}, rng, true, -3.0f, 3.0f)});
  }
}

TEST(OpsGradcheck, LossesAndGathers) {
  Rng rng(106);
  Tensor labels = Tensor::from_vector_i64({0, 4, 2, 2}, Shape{4});
  check_both_paths([labels](const std::vector<Tensor>& v) { return ops::cross_entropy(v[0], labels); },
                   {leaf(Shape{4, 5}, rng, true, -2.0f, 2.0f)});
  check_both_paths([labels](const std::vector<Tensor>& v) { return ops::gather_rows(v[0], labels); },
                   {leaf(Shape{4, 5}, rng)});
}

TEST(OpsGradcheck, ArithmeticAndShape) {
  Rng rng(107);
  const Shape s{2, 3, 3, 4};
  auto two = [&] { return std::vector<Tensor>{leaf(s, rng), leaf(s, rng)}; };
  check_both_paths([](const std::vector<Tensor>& v) { return ops::add(v[0], v[1]); }, two());
  check_both_paths([](const std::vector<Tensor>& v) { return ops::sub(v[0], v[1]); }, two());
  check_both_paths([](const std::vector<Tensor>& v) { return ops::mul(v[0], v[1]); }, two());
  check_both_paths([](const std::vector<Tensor>& v) { return ops::affine(v[0], -1.5f, 0.25f); }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::mul_channel(v[0], v[1]); },
                   {leaf(s, rng), leaf(Shape{2, 4}, rng)});
  Tensor mask = Tensor::from_vector({0.0f, 2.0f}, Shape{2});
  check_both_paths([mask](const std::vector<Tensor>& v) { return ops::mul_sample(v[0], mask); }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::sum(v[0]); }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::mean(v[0]); }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::flatten(v[0]); }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) { return ops::concat_last({v[0], v[1]}); },
                   {leaf(s, rng), leaf(Shape{2, 3, 3, 2}, rng)});
  // Random masks: a fresh generator with a fixed seed inside f, so every evaluation draws the same.
  check_both_paths([](const std::vector<Tensor>& v) {
    Rng r(7);
    return ops::dropout(v[0], 0.3f, true, r);
  }, {leaf(s, rng)});
  check_both_paths([](const std::vector<Tensor>& v) {
    Rng r(8);
    return ops::drop_path(v[0], 0.5f, true, r);
  }, {leaf(s, rng)});
}

TEST(OpsGradcheck, ResidualBlockEndToEnd) {
  // conv -> BN -> ReLU -> conv -> BN, + identity shortcut (fan-out of x), ReLU, max pool, global
  // pool, linear, cross-entropy: the ops of a ResNet basic block and head, composed.
  Rng rng(108);
  Tensor rm1 = Tensor::zeros(Shape{4}), rv1 = Tensor::full(Shape{4}, 1.0f);
  Tensor rm2 = Tensor::zeros(Shape{4}), rv2 = Tensor::full(Shape{4}, 1.0f);
  Tensor labels = Tensor::from_vector_i64({1, 0}, Shape{2});
  const kernels::Conv2dParams p = conv_params(1, 1);
  auto f = [&](const std::vector<Tensor>& v) {
    Tensor h = ops::relu(ops::batch_norm(ops::conv2d(v[0], v[1], Tensor(), p), v[2], v[3], rm1, rv1, true, 0.1f, 1e-5f));
    h = ops::batch_norm(ops::conv2d(h, v[4], Tensor(), p), v[2], v[3], rm2, rv2, true, 0.1f, 1e-5f);
    h = ops::relu(ops::add(h, v[0]));
    h = ops::global_avg_pool(ops::max_pool2d(h, kernels::Pool2dParams{}));
    return ops::cross_entropy(ops::linear(h, v[5], v[6]), labels);
  };
  std::vector<Tensor> in{leaf(Shape{2, 6, 6, 4}, rng),         leaf(Shape{4, 4, 3, 3}, rng, true, -0.3f, 0.3f),
                         leaf(Shape{4}, rng, true, 0.5f, 1.5f), leaf(Shape{4}, rng),
                         leaf(Shape{4, 4, 3, 3}, rng, true, -0.3f, 0.3f), leaf(Shape{2, 4}, rng),
                         leaf(Shape{2}, rng)};
  GradcheckOptions opt;
  opt.step = 3e-3f;  // the composition bends faster than one op; ReLU/max-pool kinks are skipped
  check_both_paths(f, in, opt);
}

}  // namespace
