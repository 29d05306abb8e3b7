// Op tests, part 2: the OpenMP fast paths (activations, global average pooling,
// softmax/cross-entropy/gathers, optimizers, elementwise) against the reference kernels, on odd
// sizes and on sizes large enough to run the parallel branches, with poisoned outputs and
// accumulating parameter gradients. Batch norm has its own file (test_ops_batch_norm.cpp).
#include <cmath>
#include <limits>

#include "kernels/activation.h"
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

TEST(OpsLoss, SoftmaxCrossEntropyAndGatherMatchReference) {
  Rng rng(71);
  struct Case {
    int64_t N, K;
    float scale;  // logits in [-scale, scale]: 1e3 tests the max-subtraction
  };
  for (const Case& c : {Case{1, 1, 1.0f}, Case{3, 5, 1.0f}, Case{33, 1000, 4.0f}, Case{7, 2, 1e3f}, Case{128, 720, 10.0f}}) {
    SCOPED_TRACE("N " + std::to_string(c.N) + " K " + std::to_string(c.K));
    Tensor x = test::random_tensor(Shape{c.N, c.K}, rng, -c.scale, c.scale);
    Tensor labels = test::random_labels(c.N, c.K, rng);
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
