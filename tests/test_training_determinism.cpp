// A training step is bit-reproducible: the same weights, batch and seed give the same loss, the
// same gradients and the same updated weights, on the CPU and, with the default of
// kernels/cuda_options.h (deterministic cuDNN algorithms only), on the GPU. On the GPU the step
// runs twice in one process (cuDNN's algorithm search is cached after the first run, so the second
// run also checks that the cached choice gives the same bits as the searched one) and is compared
// with the CPU's step within tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "kernels/cuda_options.h"
#include "layers/classifier.h"
#include "layers/optim.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

struct StepResult {
  float loss = 0;
  std::vector<std::string> names;
  std::vector<std::vector<float>> grads, weights;
};

// One AdamW step of ResNet-18 (5 classes, seed 3) on a batch of 8 48x48 images drawn from `batch_seed`.
StepResult train_step(Device device, uint64_t batch_seed = 11) {
  auto net = make_classifier("resnet18", 5, 3);
  net->to(device);
  net->train();
  Rng rng(batch_seed);
  const Tensor x = test::random_tensor(Shape{8, 48, 48, 3}, rng).to(device);
  const Tensor y = test::random_labels(8, 5, rng).to(device);
  AdamW opt(net->named_parameters(), AdamWOptions{});
  opt.zero_grad();
  const Tensor loss = ops::cross_entropy(net->forward(x), y);
  backward(loss);
  StepResult r;
  r.loss = loss.item();
  for (const auto& [name, p] : net->named_parameters()) {
    r.names.push_back(name);
    r.grads.push_back(p.grad().to_vector());
  }
  opt.step();
  for (const auto& [name, p] : net->named_parameters()) r.weights.push_back(p.to_vector());
  return r;
}

// Every float equal bit for bit; the message names the first tensor that differs.
::testing::AssertionResult bit_identical(const StepResult& a, const StepResult& b) {
  if (std::memcmp(&a.loss, &b.loss, sizeof a.loss) != 0)
    return ::testing::AssertionFailure() << "loss " << a.loss << " vs " << b.loss;
  if (a.names != b.names) return ::testing::AssertionFailure() << "different parameters";
  auto same = [](const std::vector<float>& u, const std::vector<float>& v) {
    return u.size() == v.size() && std::memcmp(u.data(), v.data(), u.size() * sizeof(float)) == 0;
  };
  for (size_t i = 0; i < a.names.size(); ++i) {
    if (!same(a.grads[i], b.grads[i]))
      return ::testing::AssertionFailure() << "gradient of " << a.names[i] << " differs between the two runs";
    if (!same(a.weights[i], b.weights[i]))
      return ::testing::AssertionFailure() << "updated " << a.names[i] << " differs between the two runs";
  }
  return ::testing::AssertionSuccess();
}

TEST(TrainingDeterminism, TwoRunsOfAStepAreBitIdenticalOnTheCpu) {
  const StepResult a = train_step(Device::cpu()), b = train_step(Device::cpu());
  EXPECT_TRUE(bit_identical(a, b));
  EXPECT_GT(a.names.size(), 60u);  // every ResNet-18 parameter was compared
  // The comparison sees a change: another batch gives other bits.
  EXPECT_FALSE(bit_identical(a, train_step(Device::cpu(), 12)));
}

TEST(TrainingDeterminism, TwoRunsOfAStepAreBitIdenticalOnTheGpu) {
  FSTM_REQUIRE_CUDA();
  ASSERT_TRUE(kernels::cuda::deterministic_algorithms()) << "the default must be deterministic";
  const StepResult a = train_step(Device::cuda(0)), b = train_step(Device::cuda(0));
  EXPECT_TRUE(bit_identical(a, b));
  // And it is the same step as the CPU's (f32, TF32 off), up to summation order.
  const StepResult c = train_step(Device::cpu());
  EXPECT_NEAR(a.loss, c.loss, 1e-4f * (1 + std::abs(c.loss)));
  for (size_t i = 0; i < a.names.size(); ++i) {
    const std::vector<float>& g = a.grads[i];
    const std::vector<float>& h = c.grads[i];
    float scale = 0, worst = 0;
    for (size_t k = 0; k < g.size(); ++k) scale = std::max(scale, std::abs(h[k]));
    for (size_t k = 0; k < g.size(); ++k) worst = std::max(worst, std::abs(g[k] - h[k]));
    EXPECT_LE(worst, 2e-3f * scale + 1e-6f) << "gradient of " << a.names[i] << " on the GPU vs the CPU";
  }
}

}  // namespace
}  // namespace fstm
