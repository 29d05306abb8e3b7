// EfficientNet-b3/b4 (layers/efficientnet.h): the architecture against torchvision 0.14's numbers
// (channel rounding, block counts, parameter counts and names), stochastic depth, and the inference
// plan against the eager forward. Numerical parity with torchvision (logits, gradients) is in
// tests/py_test_efficientnet_parity.py.
#include <algorithm>
#include <cmath>
#include <functional>

#include "autograd/autograd.h"
#include "layers/efficientnet.h"
#include "layers/inference.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {

Tensor parameter(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.state_dict())
    if (n == name) return t;
  return Tensor();
}

void for_each_module(Module& m, const std::function<void(Module&)>& f) {
  f(m);
  for (auto& [name, child] : m.children()) for_each_module(*child, f);
}

int count_modules(Module& model, const std::function<bool(Module&)>& pred) {
  int n = 0;
  for_each_module(model, [&](Module& m) { n += pred(m) ? 1 : 0; });
  return n;
}

}  // namespace

TEST(EfficientNet, MakeDivisibleRoundsAsTorchvision) {
  // torchvision.models._utils._make_divisible(v, 8) for the b3/b4 widths and two edge cases.
  const std::pair<double, int64_t> cases[] = {{38.4, 40},   {19.2, 24},   {28.8, 32},  {134.4, 136}, {230.4, 232},
                                              {44.8, 48},   {22.4, 24},   {33.6, 32},  {156.8, 160}, {268.8, 272},
                                              {448.0, 448}, {13.0, 16},   {3.9, 8}};
  for (const auto& [v, expected] : cases) EXPECT_EQ(make_divisible(v), expected) << v;
}

TEST(EfficientNet, ArchitectureAsTorchvision) {
  struct Expected {
    int variant;
    int64_t stem, feature_dim, parameters;
    std::vector<int> layers;
    std::vector<int64_t> out_channels;
  };
  // torchvision 0.14: efficientnet_b3/b4 with 1000 classes (parameter counts as in its weight docs).
  const Expected expected[] = {
      {3, 40, 1536, 12233232, {2, 3, 3, 5, 5, 6, 2}, {24, 32, 48, 96, 136, 232, 384}},
      {4, 48, 1792, 19341616, {2, 4, 4, 6, 6, 8, 2}, {24, 32, 56, 112, 160, 272, 448}},
  };
  for (const Expected& e : expected) {
    SCOPED_TRACE("b" + std::to_string(e.variant));
    EfficientNet model(e.variant, 1000);
    EXPECT_EQ(model.parameter_count(), e.parameters);
    EXPECT_EQ(model.feature_dim(), e.feature_dim);
    EXPECT_EQ(model.arch(), "efficientnet_b" + std::to_string(e.variant));
    EXPECT_EQ(model.head_prefix(), "classifier.");
    EXPECT_EQ(model.native_size(), e.variant == 3 ? 300 : 380);
    ASSERT_EQ(model.stages().size(), 7u);
    for (size_t s = 0; s < 7; ++s) {
      EXPECT_EQ(model.stages()[s].layers, e.layers[s]) << "stage " << s + 1;
      EXPECT_EQ(model.stages()[s].out_channels, e.out_channels[s]) << "stage " << s + 1;
    }
    EXPECT_EQ(parameter(model, "features.0.0.weight").shape(), (Shape{e.stem, 3, 3, 3}));
    EXPECT_EQ(parameter(model, "features.1.0.block.0.0.weight").shape(), (Shape{e.stem, 1, 3, 3}));  // no expand
    EXPECT_EQ(parameter(model, "features.1.0.block.1.fc1.weight").shape(), (Shape{e.stem / 4, e.stem, 1, 1}));
    EXPECT_EQ(parameter(model, "features.2.0.block.0.0.weight").shape(), (Shape{144, 24, 1, 1}));
    EXPECT_EQ(parameter(model, "features.2.0.block.2.fc1.weight").shape(), (Shape{6, 144, 1, 1}));
    EXPECT_EQ(parameter(model, "features.8.0.weight").shape(), (Shape{e.feature_dim, e.out_channels[6], 1, 1}));
    EXPECT_EQ(parameter(model, "classifier.1.weight").shape(), (Shape{1000, e.feature_dim}));
    EXPECT_TRUE(parameter(model, "features.3.0.block.1.1.num_batches_tracked").defined());
  }
}

TEST(EfficientNet, ClassifierFactoryAndBackboneOnly) {
  const auto known = known_architectures();
  EXPECT_NE(std::find(known.begin(), known.end(), "efficientnet_b3"), known.end());
  EXPECT_NE(std::find(known.begin(), known.end(), "efficientnet_b4"), known.end());
  EXPECT_EQ(make_classifier("efficientnet_b4", 2)->arch(), "efficientnet_b4");
  try {
    make_classifier("efficientnet_b9", 2);
    FAIL() << "no error for an unknown architecture";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("efficientnet_b3"), std::string::npos) << e.what();
  }

  EfficientNet backbone(3, 0);
  for (const auto& [name, t] : backbone.named_parameters()) EXPECT_EQ(name.rfind("classifier.", 0), std::string::npos);
  backbone.eval();
  NoGradGuard no_grad;
  Rng rng(3);
  EXPECT_EQ(backbone.features(test::random_tensor(Shape{2, 40, 40, 3}, rng)).shape(), (Shape{2, 1536}));
  EXPECT_THROW(backbone.head(Tensor::zeros(Shape{2, 1536})), Error);
  EXPECT_THROW(backbone.features(Tensor::zeros(Shape{2, 40, 40, 1})), Error);
}

TEST(EfficientNet, RegularisationScheduleAsTorchvision) {
  EfficientNet b4(4, 10);
  EXPECT_FLOAT_EQ(b4.dropout(), 0.4f);
  EXPECT_FLOAT_EQ(EfficientNet(3, 10).dropout(), 0.3f);
  const std::vector<MBConv*> blocks = b4.blocks();
  ASSERT_EQ(blocks.size(), 32u);
  for (size_t i = 0; i < blocks.size(); ++i)
    EXPECT_FLOAT_EQ(blocks[i]->stochastic_depth_prob(), 0.2f * float(i) / 32.0f) << "block " << i;
  b4.set_stochastic_depth(0.0f);
  b4.set_dropout(0.0f);
  for (const MBConv* b : b4.blocks()) EXPECT_EQ(b->stochastic_depth_prob(), 0.0f);
  EXPECT_THROW(b4.set_dropout(1.0f), Error);
}

TEST(EfficientNet, DropPathDropsWholeSamplesAndScalesSurvivors) {
  Rng rng(4), drop_rng(5);
  const float p = 0.3f;
  Tensor x = test::random_tensor(Shape{200, 2, 3, 4}, rng, 0.5f, 1.5f);  // no zeros in x
  x.set_requires_grad(true);
  Tensor y = ops::drop_path(x, p, true, drop_rng);
  backward(ops::sum(y));
  const std::vector<float> vx = x.to_vector(), vy = y.to_vector(), dx = x.grad().to_vector();
  const int64_t per = 24;
  int dropped = 0;
  for (int64_t n = 0; n < 200; ++n) {
    const bool zero = vy[size_t(n * per)] == 0.0f;
    dropped += zero ? 1 : 0;
    for (int64_t i = n * per; i < (n + 1) * per; ++i) {
      const float scale = zero ? 0.0f : 1.0f / (1.0f - p);
      ASSERT_NEAR(vy[size_t(i)], vx[size_t(i)] * scale, 1e-6f) << "sample " << n << " is partly dropped";
      ASSERT_NEAR(dx[size_t(i)], scale, 1e-6f) << "gradient of sample " << n;
    }
  }
  // Binomial(200, 0.3): mean 60, standard deviation 6.5.
  EXPECT_GT(dropped, 30);
  EXPECT_LT(dropped, 90);
  // Identity in eval mode and at p = 0.
  EXPECT_TRUE(ops::drop_path(x, p, false, drop_rng).shares_storage(x));
  EXPECT_TRUE(ops::drop_path(x, 0.0f, true, drop_rng).shares_storage(x));
}

TEST(EfficientNet, StochasticDepthSkipsTheResidualBranchPerSample) {
  Rng rng(6);
  MBConv block(MBConvConfig{6, 3, 1, 16, 16, 1}, 0.5f, rng, 7);
  ASSERT_TRUE(block.use_residual());
  Tensor x = test::random_tensor(Shape{24, 5, 5, 16}, rng);
  block.train();
  NoGradGuard no_grad;
  const std::vector<float> y = block.forward(x).to_vector();
  // Train-mode BatchNorm normalises with this batch's statistics, so the branch is the same again.
  const std::vector<float> branch = block.block->forward(x).to_vector();
  const std::vector<float> vx = x.to_vector();
  const int64_t per = 5 * 5 * 16;
  int dropped = 0, kept = 0;
  for (int64_t n = 0; n < 24; ++n) {
    bool is_identity = true;
    for (int64_t i = n * per; i < (n + 1) * per; ++i) is_identity = is_identity && y[size_t(i)] == vx[size_t(i)];
    (is_identity ? dropped : kept) += 1;
    for (int64_t i = n * per; i < (n + 1) * per && !is_identity; ++i)
      ASSERT_NEAR(y[size_t(i)], 2.0f * branch[size_t(i)] + vx[size_t(i)], 1e-4f) << "sample " << n;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
  // Eval mode: the branch is always added, unscaled.
  block.eval();
  const std::vector<float> ye = block.forward(x).to_vector(), be = block.block->forward(x).to_vector();
  for (size_t i = 0; i < ye.size(); ++i) ASSERT_NEAR(ye[i], be[i] + vx[i], 1e-5f);
}

TEST(EfficientNet, InferencePlanMatchesEagerB3) {
  Rng rng(8);
  EfficientNet model(3, 10, 9);
  test::randomize_batch_norm(model, rng);
  model.eval();
  Tensor x = test::random_tensor(Shape{2, 96, 96, 3}, rng);
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = model.forward(x);
  }
  InferencePlan plan([&](const Tensor& in) { return model.forward(in); }, x.shape());
  // Every BatchNorm folded into its convolution, every SiLU/sigmoid fused, every residual add a sum
  // post-op: what is left besides convolutions is pooling, the SE scaling, reshapes and the head.
  int convs = 0, sums = 0, activations = 0, batch_norms = 0;
  for (const GraphOp& op : plan.graph().ops) {
    convs += op.kind == GraphOpKind::Conv2d;
    activations += op.kind == GraphOpKind::Activation;
    batch_norms += op.kind == GraphOpKind::BatchNorm;
    for (const PostOp& p : op.post_ops) sums += p.kind == PostOp::Kind::Sum;
  }
  int residual_blocks = 0;
  for (const MBConv* b : model.blocks()) residual_blocks += b->use_residual();
  EXPECT_EQ(convs, count_modules(model, [](Module& m) { return dynamic_cast<Conv2d*>(&m) != nullptr; }));
  EXPECT_EQ(sums, residual_blocks);
  EXPECT_EQ(activations, 0);
  EXPECT_EQ(batch_norms, 0);

  const std::vector<float> e = expected.to_vector();
  float spread = 0;
  for (float v : e) spread = std::max(spread, std::abs(v));
  FSTM_EXPECT_CLOSE(plan.run(x), expected, 1e-4f * spread, 1e-4f);
  try {
    InferencePlan bf16([&](const Tensor& in) { return model.forward(in); }, x.shape(), DType::bf16);
    // bf16 keeps 8 bits of mantissa through 26 blocks: logits agree to a few percent of their spread.
    FSTM_EXPECT_CLOSE(bf16.run(x), expected, 0.05f * spread, 0.0f);
  } catch (const Error& err) {
    GTEST_SKIP() << "bf16 plan: " << err.what();
  }
}
