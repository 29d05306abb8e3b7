// Op tests: batch norm (kernels/batch_norm.h). The OpenMP fast path against the reference kernels
// in train and eval mode, forward and backward, with the fused ResNet epilogue relu(bn(x) +
// residual), on odd sizes, sizes that run the parallel branches and means far from zero, with
// poisoned outputs and accumulating parameter gradients. The running statistics are also checked
// against PyTorch's formula computed here. CUDA's batch norm is in test_cuda_ops.cpp.
#include <cmath>
#include <vector>

#include "kernels/batch_norm.h"
#include "tests/ops_harness.h"

using namespace fstm;
using fstm::kernels::CpuPath;
using fstm::test::CpuPathScope;

namespace {

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

}  // namespace
