// Op tests, part 2: the OpenMP fast paths (activations, batch norm, global average pooling,
// softmax/cross-entropy/gathers, optimizers, elementwise) against the reference kernels, on odd
// sizes and on sizes large enough to run the parallel branches, with poisoned outputs and
// accumulating parameter gradients. Batch norm's running statistics are also checked against
// PyTorch's formula computed here.
#include <cmath>
#include <limits>

#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "tests/ops_harness.h"

using namespace fstm;
using fstm::kernels::Activation;
using fstm::kernels::CpuPath;
using fstm::test::CpuPathScope;

namespace {

// ---- activations -----------------------------------------------------------------------------------

// Random values in [-8, 8] with the awkward ones planted at the front: zeros, tiny, large and huge
// magnitudes (sigmoid/SiLU must saturate without inf or NaN).
Tensor activation_input(int64_t n, Rng& rng) {
  Tensor x = test::random_tensor(Shape{n}, rng, -8.0f, 8.0f);
  const float special[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 20.0f, -20.0f, 87.5f, -87.5f, 90.0f, -90.0f, 1e4f, -1e4f, 1e30f, -1e30f};
  for (size_t i = 0; i < sizeof(special) / sizeof(float) && int64_t(i) < n; ++i) x.data<float>()[i] = special[i];
  return x;
}

TEST(OpsActivation, ForwardBackwardMatchReference) {
  Rng rng(41);
  for (Activation a : {Activation::Identity, Activation::Relu, Activation::Sigmoid, Activation::Silu}) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(33 * 13), int64_t(100003)}) {
      SCOPED_TRACE(std::string(kernels::activation_name(a)) + " n " + std::to_string(n));
      Tensor x = activation_input(n, rng);
      Tensor y_ref = Tensor::empty(x.shape()), y = test::poisoned(x.shape());
      kernels::ref::activation_forward(a, x, y_ref);
      kernels::cpu::activation_forward(a, x, y);
      // exp is computed to within a few ulp; relu and identity are exact.
      FSTM_EXPECT_CLOSE(y, y_ref, 1e-7f, 2e-6f);
      Tensor dy = test::random_tensor(x.shape(), rng);
      Tensor dx_ref = Tensor::empty(x.shape()), dx = test::poisoned(x.shape());
      kernels::ref::activation_backward(a, dy, x, y_ref, dx_ref);
      kernels::cpu::activation_backward(a, dy, x, y_ref, dx);
      FSTM_EXPECT_CLOSE(dx, dx_ref, 1e-7f, 2e-6f);
    }
  }
}

// ---- batch norm --------------------------------------------------------------------------------------

struct BnCase {
  Shape shape;
  float offset, spread;  // x = offset + spread * uniform(-1, 1)
};

std::vector<BnCase> bn_cases() {
  return {
      {Shape{3, 7, 9, 5}, 0.0f, 1.0f},
      {Shape{2, 13, 13, 33}, 0.5f, 2.0f},
      {Shape{64, 17}, -1.0f, 1.0f},            // features [N, C]
      {Shape{2, 1, 1, 3}, 0.0f, 1.0f},         // two values per channel
      {Shape{8, 28, 28, 64}, 0.2f, 1.0f},      // many blocks on every thread
      {Shape{4, 9, 9, 16}, 100.0f, 0.05f},     // mean far from zero: E[x^2]-E[x]^2 in float fails
      {Shape{3, 17, 13, 3}, -1000.0f, 0.5f},
  };
}

Tensor bn_input(const BnCase& c, Rng& rng) {
  Tensor x = test::random_tensor(c.shape, rng);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = c.offset + c.spread * x.data<float>()[i];
  return x;
}

// Batch mean and biased variance of each channel, in double, computed here.
void exact_moments(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* p = x.data<float>();
  mean.assign(size_t(C), 0.0);
  var.assign(size_t(C), 0.0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) mean[size_t(c)] += p[m * C + c];
  for (auto& v : mean) v /= double(M);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) var[size_t(c)] += std::pow(p[m * C + c] - mean[size_t(c)], 2);
  for (auto& v : var) v /= double(M);
}

TEST(OpsBatchNorm, TrainForwardMatchesReferenceAndPytorchRunningStats) {
  Rng rng(51);
  const float momentum = 0.1f, eps = 1e-5f;
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(c.shape.str() + " offset " + std::to_string(c.offset));
    const int64_t C = c.shape.back(), M = c.shape.numel() / C;
    Tensor x = bn_input(c, rng);
    Tensor gamma = test::random_tensor(Shape{C}, rng, 0.5f, 1.5f), beta = test::random_tensor(Shape{C}, rng);
    Tensor rm0 = test::random_tensor(Shape{C}, rng), rv0 = test::random_tensor(Shape{C}, rng, 0.5f, 2.0f);
    std::vector<double> mean, var;
    exact_moments(x, mean, var);
    for (CpuPath path : test::both_paths()) {
      SCOPED_TRACE(test::path_name(path));
      CpuPathScope scope(path);
      Tensor rm = rm0.clone(), rv = rv0.clone();
      Tensor y = test::poisoned(c.shape), save_mean = test::poisoned(Shape{C}), save_invstd = test::poisoned(Shape{C});
      kernels::batch_norm_forward_train(x, gamma, beta, rm, rv, momentum, eps, y, save_mean, save_invstd);
      // PyTorch: running = (1 - momentum) * running + momentum * batch, unbiased variance.
      std::vector<float> rm_expected(static_cast<size_t>(C)), rv_expected(rm_expected), mean_f(rm_expected), invstd_f(rm_expected);
      for (int64_t ch = 0; ch < C; ++ch) {
        const size_t i = size_t(ch);
        rm_expected[i] = float(0.9 * rm0.data<float>()[ch] + 0.1 * mean[i]);
        rv_expected[i] = float(0.9 * rv0.data<float>()[ch] + 0.1 * var[i] * double(M) / double(M - 1));
        mean_f[i] = float(mean[i]);
        invstd_f[i] = float(1.0 / std::sqrt(var[i] + eps));
      }
      FSTM_EXPECT_CLOSE(rm, Tensor::from_vector(rm_expected, Shape{C}), 1e-6f, 1e-6f);
      FSTM_EXPECT_CLOSE(rv, Tensor::from_vector(rv_expected, Shape{C}), 1e-6f, 1e-5f);
      FSTM_EXPECT_CLOSE(save_mean, Tensor::from_vector(mean_f, Shape{C}), 1e-6f, 1e-6f);
      FSTM_EXPECT_CLOSE(save_invstd, Tensor::from_vector(invstd_f, Shape{C}), 0.0f, 1e-5f);
      // y against the reference (whose statistics were just checked above).
      Tensor y_ref = Tensor::empty(c.shape), m_ref = Tensor::empty(Shape{C}), s_ref = Tensor::empty(Shape{C});
      Tensor rm_ref = rm0.clone(), rv_ref = rv0.clone();
      kernels::ref::batch_norm_forward_train(x, gamma, beta, rm_ref, rv_ref, momentum, eps, y_ref, m_ref, s_ref);
      FSTM_EXPECT_CLOSE(y, y_ref, 2e-4f, 1e-4f);
    }
  }
}

TEST(OpsBatchNorm, TrainForwardWithoutRunningStats) {
  Rng rng(52);
  Tensor x = test::random_tensor(Shape{2, 5, 5, 7}, rng);
  Tensor gamma = test::random_tensor(Shape{7}, rng), beta = test::random_tensor(Shape{7}, rng);
  Tensor none_mean, none_var;
  Tensor y = test::poisoned(x.shape()), m = Tensor::empty(Shape{7}), s = Tensor::empty(Shape{7});
  Tensor y_ref = Tensor::empty(x.shape()), m_ref = Tensor::empty(Shape{7}), s_ref = Tensor::empty(Shape{7});
  kernels::cpu::batch_norm_forward_train(x, gamma, beta, none_mean, none_var, 0.1f, 1e-5f, y, m, s);
  kernels::ref::batch_norm_forward_train(x, gamma, beta, none_mean, none_var, 0.1f, 1e-5f, y_ref, m_ref, s_ref);
  FSTM_EXPECT_CLOSE(y, y_ref, 1e-5f, 1e-5f);
}

TEST(OpsBatchNorm, TrainBackwardMatchesReferenceAndAccumulates) {
  Rng rng(53);
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(c.shape.str() + " offset " + std::to_string(c.offset));
    const int64_t C = c.shape.back();
    Tensor x = bn_input(c, rng), dy = test::random_tensor(c.shape, rng);
    Tensor gamma = test::random_tensor(Shape{C}, rng, 0.5f, 1.5f), beta = test::random_tensor(Shape{C}, rng);
    Tensor rm, rv, y = Tensor::empty(c.shape), mean = Tensor::empty(Shape{C}), invstd = Tensor::empty(Shape{C});
    kernels::ref::batch_norm_forward_train(x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invstd);

    Tensor dx_ref = Tensor::empty(c.shape), dg_ref = Tensor::zeros(Shape{C}), db_ref = Tensor::zeros(Shape{C});
    kernels::ref::batch_norm_backward_train(dy, x, gamma, mean, invstd, dx_ref, dg_ref, db_ref);
    Tensor start_g = test::random_tensor(Shape{C}, rng, 1.0f, 2.0f), start_b = test::random_tensor(Shape{C}, rng);
    Tensor dx = test::poisoned(c.shape), dg = start_g.clone(), db = start_b.clone();
    kernels::cpu::batch_norm_backward_train(dy, x, gamma, mean, invstd, dx, dg, db);
    // dx is a small difference of large terms when invstd is large (spread 0.05 -> invstd 35).
    FSTM_EXPECT_CLOSE(dx, dx_ref, 2e-4f * std::max(1.0f, 1.0f / c.spread), 1e-3f);
    FSTM_EXPECT_CLOSE(dg, test::plus(start_g, dg_ref), 1e-3f, 1e-4f);
    FSTM_EXPECT_CLOSE(db, test::plus(start_b, db_ref), 1e-3f, 1e-4f);
  }
}

TEST(OpsBatchNorm, EvalForwardBackwardMatchReference) {
  Rng rng(54);
  for (const BnCase& c : bn_cases()) {
    SCOPED_TRACE(c.shape.str());
    const int64_t C = c.shape.back();
    Tensor x = bn_input(c, rng), dy = test::random_tensor(c.shape, rng);
    Tensor gamma = test::random_tensor(Shape{C}, rng, 0.5f, 1.5f), beta = test::random_tensor(Shape{C}, rng);
    Tensor rm = test::random_tensor(Shape{C}, rng, c.offset - c.spread, c.offset + c.spread);
    Tensor rv = test::random_tensor(Shape{C}, rng, 0.5f * c.spread * c.spread, 2.0f * c.spread * c.spread);
    Tensor y_ref = Tensor::empty(c.shape), y = test::poisoned(c.shape);
    kernels::ref::batch_norm_forward_eval(x, gamma, beta, rm, rv, 1e-5f, y_ref);
    kernels::cpu::batch_norm_forward_eval(x, gamma, beta, rm, rv, 1e-5f, y);
    FSTM_EXPECT_CLOSE(y, y_ref, 2e-4f, 1e-4f);

    Tensor dx_ref = Tensor::empty(c.shape), dg_ref = Tensor::zeros(Shape{C}), db_ref = Tensor::zeros(Shape{C});
    kernels::ref::batch_norm_backward_eval(dy, x, gamma, rm, rv, 1e-5f, dx_ref, dg_ref, db_ref);
    Tensor start_g = test::random_tensor(Shape{C}, rng), start_b = test::random_tensor(Shape{C}, rng);
    Tensor dx = test::poisoned(c.shape), dg = start_g.clone(), db = start_b.clone();
    kernels::cpu::batch_norm_backward_eval(dy, x, gamma, rm, rv, 1e-5f, dx, dg, db);
    FSTM_EXPECT_CLOSE(dx, dx_ref, 1e-5f, 1e-5f);
    FSTM_EXPECT_CLOSE(dg, test::plus(start_g, dg_ref), 1e-3f, 1e-4f);
    FSTM_EXPECT_CLOSE(db, test::plus(start_b, db_ref), 1e-3f, 1e-4f);
    // Frozen parameters: no parameter gradients asked for.
    Tensor none_g, none_b, dx2 = test::poisoned(c.shape);
    kernels::cpu::batch_norm_backward_eval(dy, x, gamma, rm, rv, 1e-5f, dx2, none_g, none_b);
    FSTM_EXPECT_CLOSE(dx2, dx_ref, 1e-5f, 1e-5f);
  }
}

// The fused ResNet epilogue relu(bn(x) + residual) against the reference (batch norm, then the sum
// and ReLU spelled out), with and without a residual; gradients with and without the residual's.
TEST(OpsBatchNorm, ReluFusedTrainMatchesReference) {
  Rng rng(55);
  for (const BnCase& c : bn_cases()) {
    for (bool with_residual : {false, true}) {
      SCOPED_TRACE(c.shape.str() + (with_residual ? " with residual" : " without residual"));
      const int64_t C = c.shape.back();
      Tensor x = bn_input(c, rng), dy = test::random_tensor(c.shape, rng);
      Tensor gamma = test::random_tensor(Shape{C}, rng, 0.5f, 1.5f), beta = test::random_tensor(Shape{C}, rng);
      Tensor residual = with_residual ? test::random_tensor(c.shape, rng) : Tensor();
      Tensor rm0 = test::random_tensor(Shape{C}, rng), rv0 = test::random_tensor(Shape{C}, rng, 0.5f, 2.0f);

      Tensor rm_ref = rm0.clone(), rv_ref = rv0.clone(), y_ref = Tensor::empty(c.shape);
      Tensor mean_ref = Tensor::empty(Shape{C}), invstd_ref = Tensor::empty(Shape{C});
      kernels::ref::batch_norm_relu_forward_train(x, gamma, beta, residual, rm_ref, rv_ref, 0.1f, 1e-5f, y_ref,
                                                  mean_ref, invstd_ref);
      Tensor rm = rm0.clone(), rv = rv0.clone(), y = test::poisoned(c.shape);
      Tensor mean = test::poisoned(Shape{C}), invstd = test::poisoned(Shape{C});
      kernels::cpu::batch_norm_relu_forward_train(x, gamma, beta, residual, rm, rv, 0.1f, 1e-5f, y, mean, invstd);
      FSTM_EXPECT_CLOSE(y, y_ref, 2e-4f, 1e-4f);
      FSTM_EXPECT_CLOSE(mean, mean_ref, 1e-6f, 1e-6f);
      FSTM_EXPECT_CLOSE(invstd, invstd_ref, 0.0f, 1e-5f);
      FSTM_EXPECT_CLOSE(rm, rm_ref, 1e-6f, 1e-6f);
      FSTM_EXPECT_CLOSE(rv, rv_ref, 1e-6f, 1e-5f);
      int64_t zeros = 0;  // the ReLU must have cut something, or the mask goes untested
      for (float v : y_ref.to_vector()) zeros += v == 0.0f;
      EXPECT_GT(zeros, 0);

      // Backward from the reference output (so both see the same ReLU mask).
      Tensor dx_ref = Tensor::empty(c.shape), dg_ref = Tensor::zeros(Shape{C}), db_ref = Tensor::zeros(Shape{C});
      Tensor dres_ref = with_residual ? Tensor::empty(c.shape) : Tensor();
      kernels::ref::batch_norm_relu_backward_train(dy, x, y_ref, gamma, mean_ref, invstd_ref, dx_ref, dg_ref, db_ref,
                                                   dres_ref);
      Tensor start_g = test::random_tensor(Shape{C}, rng, 1.0f, 2.0f), start_b = test::random_tensor(Shape{C}, rng);
      Tensor dx = test::poisoned(c.shape), dg = start_g.clone(), db = start_b.clone();
      Tensor dres = with_residual ? test::poisoned(c.shape) : Tensor();
      kernels::cpu::batch_norm_relu_backward_train(dy, x, y_ref, gamma, mean_ref, invstd_ref, dx, dg, db, dres);
      FSTM_EXPECT_CLOSE(dx, dx_ref, 2e-4f * std::max(1.0f, 1.0f / c.spread), 1e-3f);
      FSTM_EXPECT_CLOSE(dg, test::plus(start_g, dg_ref), 1e-3f, 1e-4f);
      FSTM_EXPECT_CLOSE(db, test::plus(start_b, db_ref), 1e-3f, 1e-4f);
      if (with_residual) {
        EXPECT_EQ(dres.to_vector(), dres_ref.to_vector());  // dy or 0: exact (and no poison left)
      }

      // In place, as the autograd node calls it: the residual's gradient, or else dx, written over dy.
      Tensor dy_inplace = dy.clone(), dg2 = start_g.clone(), db2 = start_b.clone();
      Tensor dx2 = with_residual ? test::poisoned(c.shape) : dy_inplace;
      Tensor dres2 = with_residual ? dy_inplace : Tensor();
      kernels::cpu::batch_norm_relu_backward_train(dy_inplace, x, y_ref, gamma, mean_ref, invstd_ref, dx2, dg2, db2,
                                                   dres2);
      FSTM_EXPECT_CLOSE(dx2, dx_ref, 2e-4f * std::max(1.0f, 1.0f / c.spread), 1e-3f);
      FSTM_EXPECT_CLOSE(dg2, test::plus(start_g, dg_ref), 1e-3f, 1e-4f);
      if (with_residual) {
        EXPECT_EQ(dres2.to_vector(), dres_ref.to_vector());
      }
    }
  }
}

// ---- global average pooling ----------------------------------------------------------------------------

TEST(OpsGlobalAvgPool, ForwardBackwardMatchReference) {
  Rng rng(61);
  for (const Shape& s : {Shape{1, 7, 7, 3}, Shape{3, 9, 13, 65}, Shape{2, 56, 56, 64}, Shape{1, 1, 1, 130}}) {
    SCOPED_TRACE(s.str());
    Tensor x = test::random_tensor(s, rng);
    const Shape ys{s[0], s[3]};
    Tensor y_ref = Tensor::empty(ys), y = test::poisoned(ys);
    kernels::ref::global_avg_pool_forward(x, y_ref);
    kernels::cpu::global_avg_pool_forward(x, y);
    FSTM_EXPECT_CLOSE(y, y_ref, 1e-6f, 1e-5f);
    Tensor dy = test::random_tensor(ys, rng), dx_ref = Tensor::empty(s), dx = test::poisoned(s);
    kernels::ref::global_avg_pool_backward(dy, dx_ref);
    kernels::cpu::global_avg_pool_backward(dy, dx);
    FSTM_EXPECT_CLOSE(dx, dx_ref, 1e-7f, 1e-6f);
  }
}

// ---- losses ------------------------------------------------------------------------------------------------

Tensor random_labels(int64_t N, int64_t K, Rng& rng) {
  std::vector<int64_t> v(static_cast<size_t>(N));
  for (auto& l : v) l = int64_t(rng.below(uint64_t(K)));
  return Tensor::from_vector_i64(v, Shape{N});
}

TEST(OpsLoss, SoftmaxCrossEntropyAndGatherMatchReference) {
  Rng rng(71);
  struct Case {
    int64_t N, K;
    float scale;  // logits in [-scale, scale]: 1e3 tests the max-subtraction
  };
  for (const Case& c : {Case{1, 1, 1.0f}, Case{3, 5, 1.0f}, Case{33, 1000, 4.0f}, Case{7, 2, 1e3f}, Case{128, 720, 10.0f}}) {
    SCOPED_TRACE("N " + std::to_string(c.N) + " K " + std::to_string(c.K));
    Tensor x = test::random_tensor(Shape{c.N, c.K}, rng, -c.scale, c.scale);
    Tensor labels = random_labels(c.N, c.K, rng);
    Tensor p_ref = Tensor::empty(x.shape()), p = test::poisoned(x.shape());
    kernels::ref::softmax(x, p_ref);
    kernels::cpu::softmax(x, p);
    FSTM_EXPECT_CLOSE(p, p_ref, 1e-7f, 1e-5f);

    Tensor loss_ref = Tensor::empty(Shape{}), loss = test::poisoned(Shape{});
    Tensor probs_ref = Tensor::empty(x.shape()), probs = test::poisoned(x.shape());
    kernels::ref::cross_entropy_forward(x, labels, loss_ref, probs_ref);
    kernels::cpu::cross_entropy_forward(x, labels, loss, probs);
    FSTM_EXPECT_CLOSE(loss, loss_ref, 1e-5f, 1e-5f);
    FSTM_EXPECT_CLOSE(probs, probs_ref, 1e-7f, 1e-5f);

    Tensor dloss = Tensor::scalar(0.75f);
    Tensor dl_ref = Tensor::empty(x.shape()), dl = test::poisoned(x.shape());
    kernels::ref::cross_entropy_backward(dloss, probs_ref, labels, dl_ref);
    kernels::cpu::cross_entropy_backward(dloss, probs_ref, labels, dl);
    FSTM_EXPECT_CLOSE(dl, dl_ref, 1e-8f, 1e-6f);

    Tensor g_ref = Tensor::empty(Shape{c.N}), g = test::poisoned(Shape{c.N});
    kernels::ref::gather_rows(x, labels, g_ref);
    kernels::cpu::gather_rows(x, labels, g);
    EXPECT_EQ(g.to_vector(), g_ref.to_vector());
    Tensor dy = test::random_tensor(Shape{c.N}, rng);
    Tensor dx_ref = Tensor::empty(x.shape()), dx = test::poisoned(x.shape());
    kernels::ref::gather_rows_backward(dy, labels, dx_ref);
    kernels::cpu::gather_rows_backward(dy, labels, dx);
    EXPECT_EQ(dx.to_vector(), dx_ref.to_vector());
  }
}

TEST(OpsLoss, CrossEntropyKnownAnswer) {
  // Two classes with logits [0, log 3]: p = [1/4, 3/4]; label 0 -> loss log 4.
  Tensor x = Tensor::from_vector({0.0f, std::log(3.0f)}, Shape{1, 2});
  Tensor labels = Tensor::from_vector_i64({0}, Shape{1});
  Tensor loss = Tensor::empty(Shape{}), probs = Tensor::empty(x.shape());
  kernels::cpu::cross_entropy_forward(x, labels, loss, probs);
  EXPECT_NEAR(loss.item(), std::log(4.0f), 1e-6f);
  EXPECT_NEAR(probs.to_vector()[1], 0.75f, 1e-6f);
}

// ---- optimizers ----------------------------------------------------------------------------------------------

TEST(OpsOptim, SgdMatchesReferenceOverSteps) {
  Rng rng(81);
  struct Case {
    float momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (int64_t n : {int64_t(7), int64_t(100003)}) {
    for (const Case& c : {Case{0, 0, 0, false}, Case{0, 0, 1e-2f, false}, Case{0.9f, 0.1f, 1e-4f, false},
                          Case{0.9f, 0, 5e-4f, true}}) {
      SCOPED_TRACE("n " + std::to_string(n) + " momentum " + std::to_string(c.momentum) +
                   (c.nesterov ? " nesterov" : ""));
      Tensor w = test::random_tensor(Shape{n}, rng), w_ref = w.clone();
      Tensor buf = test::poisoned(Shape{n}), buf_ref = Tensor::zeros(Shape{n});
      if (c.momentum == 0.0f) buf = buf_ref = Tensor();  // no buffer without momentum
      for (int step = 0; step < 3; ++step) {
        Tensor g = test::random_tensor(Shape{n}, rng);
        kernels::SgdParams p;
        p.lr = 0.05f;
        p.momentum = c.momentum;
        p.dampening = c.dampening;
        p.weight_decay = c.weight_decay;
        p.nesterov = c.nesterov;
        p.first_step = step == 0;  // the poisoned buffer must be initialised, not read
        kernels::ref::sgd_step(w_ref, g, buf_ref, p);
        kernels::cpu::sgd_step(w, g, buf, p);
      }
      FSTM_EXPECT_CLOSE(w, w_ref, 1e-6f, 1e-6f);
      if (c.momentum != 0.0f) {
        FSTM_EXPECT_CLOSE(buf, buf_ref, 1e-6f, 1e-6f);
      }
    }
  }
}

TEST(OpsOptim, AdamWMatchesReferenceOverSteps) {
  Rng rng(82);
  for (int64_t n : {int64_t(7), int64_t(100003)}) {
    SCOPED_TRACE("n " + std::to_string(n));
    Tensor w = test::random_tensor(Shape{n}, rng), w_ref = w.clone();
    Tensor m = Tensor::zeros(Shape{n}), v = Tensor::zeros(Shape{n}), m_ref = m.clone(), v_ref = v.clone();
    for (int64_t step = 1; step <= 4; ++step) {
      Tensor g = test::random_tensor(Shape{n}, rng, -0.1f, 0.1f);
      kernels::AdamWParams p;
      p.lr = 1e-3f;
      p.weight_decay = 4e-3f;
      p.step = step;
      kernels::ref::adamw_step(w_ref, g, m_ref, v_ref, p);
      kernels::cpu::adamw_step(w, g, m, v, p);
    }
    FSTM_EXPECT_CLOSE(w, w_ref, 1e-6f, 1e-6f);
    FSTM_EXPECT_CLOSE(m, m_ref, 1e-8f, 1e-6f);
    FSTM_EXPECT_CLOSE(v, v_ref, 1e-10f, 1e-6f);
  }
}

TEST(OpsOptim, AdamWFirstStepKnownAnswer) {
  // Step 1: bias correction makes m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps)
  // after the decoupled decay w *= 1 - lr * wd:  1 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / 0.5 = 0.899.
  for (CpuPath path : test::both_paths()) {
    SCOPED_TRACE(test::path_name(path));
    CpuPathScope scope(path);
    Tensor w = Tensor::from_vector({1.0f}, Shape{1}), g = Tensor::from_vector({0.5f}, Shape{1});
    Tensor m = Tensor::zeros(Shape{1}), v = Tensor::zeros(Shape{1});
    kernels::AdamWParams p;
    p.lr = 0.1f;
    p.weight_decay = 0.01f;
    p.step = 1;
    kernels::adamw_step(w, g, m, v, p);
    EXPECT_NEAR(w.item(), 0.899f, 1e-6f);
    EXPECT_NEAR(m.item(), 0.05f, 1e-7f);
    EXPECT_NEAR(v.item(), 0.00025f, 0.00025f * 2e-5f);  // (1 - beta2) is rounded to float
  }
}

// ---- elementwise -----------------------------------------------------------------------------------------------

TEST(OpsElementwise, FastMatchesReference) {
  Rng rng(91);
  for (const Shape& s : {Shape{1, 3, 3, 5}, Shape{3, 13, 9, 33}, Shape{2, 56, 56, 64}}) {
    SCOPED_TRACE(s.str());
    Tensor a = test::random_tensor(s, rng), b = test::random_tensor(s, rng);
    Tensor sc = test::random_tensor(Shape{s[0], s[3]}, rng), ss = test::random_tensor(Shape{s[0]}, rng);
    auto check = [&](const char* what, auto ref_fn, auto cpu_fn, const Shape& out, float atol) {
      SCOPED_TRACE(what);
      Tensor expected = Tensor::empty(out), actual = test::poisoned(out);
      ref_fn(expected);
      cpu_fn(actual);
      FSTM_EXPECT_CLOSE(actual, expected, atol, 1e-5f);
    };
    check("add", [&](Tensor& y) { kernels::ref::add(a, b, y); }, [&](Tensor& y) { kernels::cpu::add(a, b, y); }, s, 0);
    check("mul", [&](Tensor& y) { kernels::ref::mul(a, b, y); }, [&](Tensor& y) { kernels::cpu::mul(a, b, y); }, s, 0);
    check("affine", [&](Tensor& y) { kernels::ref::affine(a, -2.5f, 0.5f, y); },
          [&](Tensor& y) { kernels::cpu::affine(a, -2.5f, 0.5f, y); }, s, 1e-7f);
    check("mul_channel", [&](Tensor& y) { kernels::ref::mul_channel(a, sc, y); },
          [&](Tensor& y) { kernels::cpu::mul_channel(a, sc, y); }, s, 0);
    check("mul_channel_backward_scale", [&](Tensor& y) { kernels::ref::mul_channel_backward_scale(a, b, y); },
          [&](Tensor& y) { kernels::cpu::mul_channel_backward_scale(a, b, y); }, sc.shape(), 1e-4f);
    check("mul_sample", [&](Tensor& y) { kernels::ref::mul_sample(a, ss, y); },
          [&](Tensor& y) { kernels::cpu::mul_sample(a, ss, y); }, s, 0);
    check("sum_all", [&](Tensor& y) { kernels::ref::sum_all(a, y); }, [&](Tensor& y) { kernels::cpu::sum_all(a, y); },
          Shape{}, 1e-3f);
    check("add_inplace", [&](Tensor& y) { y.copy_(a); kernels::ref::add_inplace(y, b); },
          [&](Tensor& y) { y.copy_(a); kernels::cpu::add_inplace(y, b); }, s, 0);
    Shape s2 = s, s3 = s;
    s2[3] = 2;
    s3[3] = s[3] + 2;
    Tensor c = test::random_tensor(s2, rng);
    check("concat_last", [&](Tensor& y) { kernels::ref::concat_last({a, c}, y); },
          [&](Tensor& y) { kernels::cpu::concat_last({a, c}, y); }, s3, 0);
    Tensor cat = Tensor::empty(s3);
    kernels::ref::concat_last({a, c}, cat);
    std::vector<Tensor> parts{test::poisoned(s), test::poisoned(s2)};
    kernels::cpu::split_last(cat, parts);
    EXPECT_EQ(parts[0].to_vector(), a.to_vector());
    EXPECT_EQ(parts[1].to_vector(), c.to_vector());
  }
}

}  // namespace
