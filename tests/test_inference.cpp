// The inference plan: graph rewrites (BN folding, post-op fusion) and the oneDNN executor must
// give the same logits as the eager eval-mode forward.
#include "autograd/autograd.h"
#include "layers/inference.h"
#include "layers/resnet.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {
Tensor eager_logits(ImageClassifier& model, const Tensor& x) {
  NoGradGuard no_grad;
  return model.forward(x);
}
}  // namespace

TEST(InferenceGraph, FoldsBatchNormAndFusesPostOps) {
  ResNet model(18, 10, 3);
  model.eval();
  Tracer tracer;
  Tensor x = Tensor::zeros(Shape{1, 32, 32, 3});
  Tensor y;
  {
    NoGradGuard ng;
    TraceGuard guard(tracer);
    y = model.forward(x);
  }
  InferenceGraph g = build_inference_graph(tracer, x, y, 4);
  int convs = 0, others = 0, sums = 0;
  for (const GraphOp& op : g.ops) {
    if (op.kind == GraphOpKind::Conv2d) {
      ++convs;
      for (const PostOp& p : op.post_ops) sums += p.kind == PostOp::Kind::Sum;
    } else {
      ++others;
    }
  }
  EXPECT_EQ(convs, 20);  // 1 stem + 16 block convs + 3 downsamples; every BN folded, every ReLU fused
  EXPECT_EQ(sums, 8);    // one residual add per basic block
  EXPECT_EQ(others, 3);  // max pool, global average pool, fc
  EXPECT_EQ(g.values[size_t(g.input)], (Shape{4, 32, 32, 3}));
  EXPECT_EQ(g.values[size_t(g.output)], (Shape{4, 10}));
}

TEST(InferencePlan, MatchesEagerForwardResNet18) {
  Rng rng(5);
  ResNet model(18, 7, 11);
  test::randomize_batch_norm(model, rng);
  model.eval();
  Tensor x = test::random_tensor(Shape{3, 40, 36, 3}, rng);
  Tensor expected = eager_logits(model, x);
  InferencePlan plan([&](const Tensor& in) { return model.forward(in); }, x.shape());
  FSTM_EXPECT_CLOSE(plan.run(x), expected, 1e-4f, 1e-4f);
  // The unfused graph run by the reference executor agrees too (the rewrite is exact).
  FSTM_EXPECT_CLOSE(run_inference_graph_reference(plan.graph(), x), expected, 1e-4f, 1e-4f);
}

TEST(InferencePlan, Bf16IsCloseToF32) {
  Rng rng(6);
  ResNet model(18, 5, 12);
  test::randomize_batch_norm(model, rng);
  model.eval();
  Tensor x = test::random_tensor(Shape{2, 32, 32, 3}, rng);
  Tensor expected = eager_logits(model, x);
  try {
    InferencePlan plan([&](const Tensor& in) { return model.forward(in); }, x.shape(), DType::bf16);
    // bf16 keeps 8 bits of mantissa: logits agree to a few percent of their spread.
    const std::vector<float> e = expected.to_vector();
    float spread = 0;
    for (float v : e) spread = std::max(spread, std::abs(v));
    FSTM_EXPECT_CLOSE(plan.run(x), expected, 0.05f * spread, 0.0f);
  } catch (const Error& err) {
    GTEST_SKIP() << err.what();
  }
}
