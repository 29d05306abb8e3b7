// The CUDA inference executor (kernels/cuda/inference_cuda.cpp) against the eager CPU forward:
// ResNet-18 in f32 (1e-4 of the largest logit), bf16 and f16 (a few percent), a network that uses
// every other op kind of an inference graph, and CUDA-graph replay against the same plan run op by
// op. Without a GPU every test here is skipped with the reason.
#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "layers/inference.h"
#include "layers/resnet.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {

Device gpu() { return Device::cuda(0); }

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// |actual - expected| <= rel * max|expected| everywhere.
::testing::AssertionResult close_to(const Tensor& actual, const Tensor& expected, float rel) {
  return test::all_close(actual, expected, rel * std::max(max_abs(expected), 1e-20f), 0.0f);
}

// A ResNet-18 with random BatchNorm statistics on the CPU, and the same weights on the GPU.
struct ResNetPair {
  ResNet cpu{18, 7, 11};
  ResNet cuda{18, 7, 11};
  explicit ResNetPair(Rng& rng) {
    test::randomize_batch_norm(cpu, rng);
    const NamedTensors from = cpu.state_dict();
    NamedTensors to = cuda.state_dict();
    for (size_t i = 0; i < from.size(); ++i) to[i].second.copy_(from[i].second);
    cpu.eval();
    cuda.eval();
    cuda.to(gpu());
  }
  Tensor eager_cpu(const Tensor& x) {
    NoGradGuard no_grad;
    return cpu.forward(x);
  }
  InferencePlan plan(const Shape& input, DType dtype) {
    return InferencePlan([this](const Tensor& in) { return cuda.forward(in); }, input, dtype, gpu());
  }
};

// Exercises the op kinds a ResNet does not: a BatchNorm that cannot be folded (after a ReLU, so it
// becomes a depthwise convolution), a depthwise convolution without bias, sum post-ops followed
// by sigmoid and SiLU, max pooling, affine/sub/mul/add/relu on their own, concatenation, an SE-style channel scale
// (pool -> linear -> sigmoid -> mul_channel), a flatten of a 4-D value and a final linear layer.
struct OpZoo {
  Tensor w1, b1, gamma, beta, mean, var, wd, wse, bse, wo, bo;
  OpZoo() = default;
  explicit OpZoo(Rng& rng) {
    w1 = test::random_tensor(Shape{8, 3, 3, 3}, rng, -0.5f, 0.5f);
    b1 = test::random_tensor(Shape{8}, rng, -0.2f, 0.2f);
    gamma = test::random_tensor(Shape{8}, rng, 0.5f, 1.5f);
    beta = test::random_tensor(Shape{8}, rng, -0.5f, 0.5f);
    mean = test::random_tensor(Shape{8}, rng, -0.5f, 0.5f);
    var = test::random_tensor(Shape{8}, rng, 0.5f, 1.5f);
    wd = test::random_tensor(Shape{8, 1, 3, 3}, rng, -0.5f, 0.5f);
    wse = test::random_tensor(Shape{16, 16}, rng, -0.5f, 0.5f);
    bse = test::random_tensor(Shape{16}, rng, -0.2f, 0.2f);
    wo = test::random_tensor(Shape{5, 6 * 5 * 16}, rng, -0.1f, 0.1f);
    bo = test::random_tensor(Shape{5}, rng, -0.2f, 0.2f);
  }
  OpZoo to(Device d) const {
    OpZoo z;
    z.w1 = w1.to(d), z.b1 = b1.to(d), z.gamma = gamma.to(d), z.beta = beta.to(d), z.mean = mean.to(d);
    z.var = var.to(d), z.wd = wd.to(d), z.wse = wse.to(d), z.bse = bse.to(d), z.wo = wo.to(d), z.bo = bo.to(d);
    return z;
  }
  // x [N, 12, 10, 3] -> [N, 5]
  Tensor forward(const Tensor& x) {
    kernels::Conv2dParams pad1;
    pad1.pad_h = pad1.pad_w = 1;
    kernels::Conv2dParams depthwise = pad1;
    depthwise.groups = 8;
    const Tensor a = ops::relu(ops::conv2d(x, w1, b1, pad1));                                    // [N, 12, 10, 8]
    const Tensor c = ops::silu(ops::batch_norm(a, gamma, beta, mean, var, false, 0.1f, 1e-5f));  // depthwise + silu
    const Tensor e = ops::sigmoid(ops::add(ops::conv2d(c, wd, Tensor(), depthwise), a));         // sum + sigmoid
    const Tensor f = ops::max_pool2d(e, kernels::Pool2dParams{3, 3, 2, 2, 1, 1});                // [N, 6, 5, 8]
    const Tensor g = ops::affine(f, 0.5f, 0.25f);
    const Tensor k = ops::relu(ops::add(ops::mul(ops::sub(g, f), g), f));           // standalone add and relu
    const Tensor m = ops::concat_last({k, f});                                      // [N, 6, 5, 16]
    const Tensor s = ops::sigmoid(ops::linear(ops::global_avg_pool(m), wse, bse));  // [N, 16]
    const Tensor u = ops::flatten(ops::mul_channel(m, s));                          // [N, 480]
    return ops::linear(u, wo, bo);
  }
};

}  // namespace

TEST(CudaInference, PlanF32MatchesEagerCpuResNet18) {
  FSTM_REQUIRE_CUDA();
  Rng rng(21);
  ResNetPair models(rng);
  const Tensor x = test::random_tensor(Shape{3, 40, 36, 3}, rng);
  const Tensor expected = models.eager_cpu(x);
  InferencePlan plan = models.plan(x.shape(), DType::f32);
  EXPECT_NE(plan.backend().find("cuda f32"), std::string::npos) << plan.backend();
  EXPECT_TRUE(close_to(plan.run(x), expected, 1e-4f)) << plan.backend();
  // A second input through the same (replayed) plan.
  const Tensor x2 = test::random_tensor(x.shape(), rng, -2.0f, 2.0f);
  EXPECT_TRUE(close_to(plan.run(x2), models.eager_cpu(x2), 1e-4f)) << plan.backend();
}

TEST(CudaInference, Bf16AndF16PlansAreCloseToF32) {
  FSTM_REQUIRE_CUDA();
  Rng rng(22);
  ResNetPair models(rng);
  const Tensor x = test::random_tensor(Shape{4, 32, 32, 3}, rng);
  const Tensor expected = models.eager_cpu(x);
  // bf16 keeps 8 bits of mantissa, f16 11: a few percent and a few tenths of a percent of the
  // largest logit after 20 layers.
  InferencePlan bf16 = models.plan(x.shape(), DType::bf16);
  EXPECT_NE(bf16.backend().find("cuda bf16"), std::string::npos) << bf16.backend();
  EXPECT_TRUE(close_to(bf16.run(x), expected, 5e-2f)) << bf16.backend();
  InferencePlan f16 = models.plan(x.shape(), DType::f16);
  EXPECT_TRUE(close_to(f16.run(x), expected, 1e-2f)) << f16.backend();
  // The input buffer is in the plan dtype, NHWC.
  EXPECT_EQ(bf16.input_buffer().dtype(), DType::bf16);
  EXPECT_EQ(bf16.input_buffer().shape(), x.shape());
  EXPECT_TRUE(bf16.input_buffer().is_cuda());
}

TEST(CudaInference, EveryOpKindMatchesEagerCpu) {
  FSTM_REQUIRE_CUDA();
  Rng rng(23);
  OpZoo cpu(rng);
  OpZoo cuda = cpu.to(gpu());
  const Tensor x = test::random_tensor(Shape{3, 12, 10, 3}, rng);
  Tensor expected;
  {
    NoGradGuard no_grad;
    expected = cpu.forward(x);
  }
  auto forward = [&](const Tensor& in) { return cuda.forward(in); };
  InferencePlan f32(forward, x.shape(), DType::f32, gpu());
  EXPECT_TRUE(close_to(f32.run(x), expected, 1e-4f)) << f32.backend() << "\n" << f32.graph().summary();
  InferencePlan bf16(forward, x.shape(), DType::bf16, gpu());
  EXPECT_TRUE(close_to(bf16.run(x), expected, 5e-2f)) << bf16.backend();
  InferencePlan f16(forward, x.shape(), DType::f16, gpu());
  EXPECT_TRUE(close_to(f16.run(x), expected, 1e-2f)) << f16.backend();
}

TEST(CudaInference, GraphReplayEqualsOpByOpRun) {
  FSTM_REQUIRE_CUDA();
  Rng rng(24);
  ResNetPair models(rng);
  const Shape shape{2, 32, 32, 3};
  InferencePlan plan = models.plan(shape, DType::f32);
  CudaExecutorOptions eager_options;
  eager_options.graphs = false;
  CudaExecutorOptions graph_options;
  graph_options.graphs = true;
  auto eager = make_cuda_executor(plan.graph(), DType::f32, gpu(), eager_options);
  auto graphed = make_cuda_executor(plan.graph(), DType::f32, gpu(), graph_options);
  EXPECT_NE(graphed->name().find(", CUDA graph"), std::string::npos) << graphed->name();
  EXPECT_NE(eager->name().find("no CUDA graph"), std::string::npos) << eager->name();

  // Two inputs one after the other: the replay must read the input buffer's current contents.
  std::vector<Tensor> by_graph, by_ops;
  for (int i = 0; i < 2; ++i) {
    const Tensor x = test::random_tensor(shape, rng);
    graphed->input_buffer().copy_(x);
    by_graph.push_back(graphed->run().to(Device::cpu()));
    eager->input_buffer().copy_(x);
    by_ops.push_back(eager->run().to(Device::cpu()));
    // The executors may have picked different algorithms: f32 rounding apart, no more (a replay
    // of stale input would be off by the logits' whole spread).
    EXPECT_TRUE(close_to(by_graph.back(), by_ops.back(), 1e-4f)) << "input " << i;
    EXPECT_TRUE(close_to(by_graph.back(), models.eager_cpu(x), 1e-4f)) << "input " << i;
  }
  EXPECT_FALSE(close_to(by_graph[0], by_graph[1], 1e-3f)) << "two different inputs gave the same logits";
  // Replaying again on the same input gives the same bits.
  const Tensor again = graphed->run().to(Device::cpu());
  EXPECT_TRUE(test::all_close(again, by_graph[1], 0.0f, 0.0f));
  // The output buffer keeps its address from run to run (the graph wrote into it).
  EXPECT_EQ(graphed->run().raw_data(), graphed->run().raw_data());
}

TEST(CudaInference, UnfusedConvolutionsGiveTheSameLogits) {
  FSTM_REQUIRE_CUDA();
  Rng rng(25);
  ResNetPair models(rng);
  const Tensor x = test::random_tensor(Shape{2, 32, 32, 3}, rng);
  const Tensor expected = models.eager_cpu(x);
  InferencePlan plan = models.plan(x.shape(), DType::f32);
  for (DType dtype : {DType::f32, DType::bf16}) {
    CudaExecutorOptions options;
    options.fused_conv = false;
    auto unfused = make_cuda_executor(plan.graph(), dtype, gpu(), options);
    EXPECT_NE(unfused->name().find("(0 fused by cuDNN)"), std::string::npos) << unfused->name();
    unfused->input_buffer().copy_(x.to(dtype));
    EXPECT_TRUE(close_to(unfused->run().to(Device::cpu()), expected, dtype == DType::f32 ? 1e-4f : 5e-2f))
        << unfused->name();
  }
}
