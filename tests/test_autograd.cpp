// The autograd tape: fan-out, the no-grad guard, release of saved tensors, accumulation across
// backward calls, and error messages that name the tensor.
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {
using ::fstm::test::error_of;

Tensor leaf(const std::vector<float>& v, const Shape& s) {
  Tensor t = Tensor::from_vector(v, s);
  t.set_requires_grad(true);
  return t;
}

TEST(Autograd, FanOutGradientsAddUp) {
  // y = sum(x * x + 3 x): x feeds three uses; dy/dx = 2x + 3.
  Tensor x = leaf({1, -2, 0.5f}, Shape{3});
  Tensor y = ops::sum(ops::add(ops::mul(x, x), ops::scale(x, 3.0f)));
  backward(y);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, -1, 4}));
}

TEST(Autograd, FanOutThroughAnIntermediate) {
  // h = 2x is used twice: z = sum(h * h) = 4 x^2 -> dz/dx = 8x, via two paths into one node.
  Tensor x = leaf({1, 2}, Shape{2});
  Tensor h = ops::scale(x, 2.0f);
  backward(ops::sum(ops::mul(h, h)));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{8, 16}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1, 2, 3}, Shape{3});
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Tensor y = ops::relu(ops::mul(x, x));
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_THROW(backward(ops::sum(y)), Error);  // nothing to differentiate
  }
  EXPECT_TRUE(grad_enabled());
  Tensor y = ops::mul(x, x);
  EXPECT_NE(y.grad_fn(), nullptr);
}

TEST(Autograd, SavedTensorsAreReleasedAfterBackward) {
  // relu saves its output, conv saves its input and weight; once backward has run, only the
  // caller's handles keep their storage alive.
  Rng rng(3);
  Tensor x = test::random_tensor(Shape{1, 4, 4, 2}, rng);
  x.set_requires_grad(true);
  Tensor w = test::random_tensor(Shape{2, 2, 3, 3}, rng);
  w.set_requires_grad(true);
  kernels::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  Tensor a = ops::relu(x);
  Tensor y = ops::conv2d(a, w, Tensor(), p);
  Tensor loss = ops::sum(y);
  const auto& a_storage = a.impl().storage;
  EXPECT_GT(a_storage.use_count(), 1);  // the relu and conv nodes hold it
  backward(loss);
  EXPECT_EQ(a_storage.use_count(), 1);
  EXPECT_EQ(w.impl().storage.use_count(), 1);
}

TEST(Autograd, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor w = leaf({1, 2}, Shape{1, 2});
  Tensor x = Tensor::from_vector({3, 4}, Shape{1, 2});
  backward(ops::sum(ops::linear(x, w, Tensor())));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{3, 4}));
  backward(ops::sum(ops::linear(x, w, Tensor())));
  EXPECT_EQ(w.grad().to_vector(), (std::vector<float>{6, 8}));
}

TEST(Autograd, PoisonedAssignBuffersAreOverwritten) {
  // With poisoning on, a backward that left part of an Assign buffer unwritten would leave NaN.
  set_poison_gradients(true);
  Rng rng(4);
  Tensor x = test::random_tensor(Shape{2, 5, 5, 3}, rng);
  x.set_requires_grad(true);
  Tensor y = ops::global_avg_pool(ops::max_pool2d(ops::silu(x), kernels::Pool2dParams{}));
  backward(ops::sum(y));
  set_poison_gradients(false);
  for (float g : x.grad().to_vector()) ASSERT_FALSE(std::isnan(g));
}

TEST(Autograd, HandoverGradientsMatchTheUnfusedOpsAndLeaveTheCallersGradientAlone) {
  // batch_norm_relu hands dy itself (overwritten) to its input: the fused block must give the
  // same gradients as batch_norm, add, relu apart, and backward(y, g) must not write into g.
  Rng rng(5);
  const Shape s{2, 4, 4, 3};
  Tensor g = test::random_tensor(s, rng);
  const std::vector<float> g_before = g.to_vector();
  for (bool with_residual : {false, true}) {
    SCOPED_TRACE(with_residual ? "with residual" : "without residual");
    std::vector<std::vector<float>> grads[2];
    for (int fused = 0; fused < 2; ++fused) {
      Rng init(6);
      Tensor x = test::random_tensor(s, init), r = test::random_tensor(s, init);
      Tensor gamma = test::random_tensor(Shape{3}, init, 0.5f, 1.5f), beta = test::random_tensor(Shape{3}, init);
      for (Tensor* t : {&x, &r, &gamma, &beta}) t->set_requires_grad(true);
      Tensor rm = Tensor::zeros(Shape{3}), rv = Tensor::full(Shape{3}, 1.0f);
      Tensor residual = with_residual ? r : Tensor();
      Tensor h = ops::scale(x, 1.0f);  // a non-leaf input, so x's gradient flows through a node
      Tensor y;
      if (fused) {
        y = ops::batch_norm_relu(h, gamma, beta, rm, rv, true, 0.1f, 1e-5f, residual);
      } else {
        Tensor z = ops::batch_norm(h, gamma, beta, rm, rv, true, 0.1f, 1e-5f);
        y = ops::relu(with_residual ? ops::add(z, residual) : z);
      }
      backward(y, g);
      for (Tensor* t : {&x, &gamma, &beta}) grads[fused].push_back(t->grad().to_vector());
      if (with_residual) grads[fused].push_back(r.grad().to_vector());
    }
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i) {
      SCOPED_TRACE("gradient " + std::to_string(i));
      ASSERT_EQ(grads[0][i].size(), grads[1][i].size());
      for (size_t k = 0; k < grads[0][i].size(); ++k) EXPECT_NEAR(grads[1][i][k], grads[0][i][k], 1e-5f);
    }
    EXPECT_EQ(g.to_vector(), g_before);
  }
}

TEST(Autograd, ErrorsNameTheTensors) {
  Tensor x = Tensor::zeros(Shape{1, 5, 5, 3});
  Tensor w = Tensor::zeros(Shape{8, 4, 3, 3});
  w.set_name("layer1.0.conv1.weight");
  const std::string conv = error_of([&] { ops::conv2d(x, w, Tensor(), kernels::Conv2dParams{}); });
  EXPECT_NE(conv.find("layer1.0.conv1.weight"), std::string::npos) << conv;

  Tensor y = Tensor::zeros(Shape{3});
  y.set_name("logits");
  const std::string bw = error_of([&] { backward(y); });
  EXPECT_NE(bw.find("logits"), std::string::npos) << bw;

  Tensor gamma = Tensor::zeros(Shape{4});
  gamma.set_name("bn1.weight");
  Tensor rm = Tensor::zeros(Shape{3}), rv = Tensor::zeros(Shape{3});
  const std::string bn = error_of([&] { ops::batch_norm(x, gamma, Tensor::zeros(Shape{3}), rm, rv, true, 0.1f, 1e-5f); });
  EXPECT_NE(bn.find("bn1.weight"), std::string::npos) << bn;
}

}  // namespace
