// The op-test harness (tests/test_ops*.cpp): shared helpers for checking every fast kernel against
// the reference kernel and every differentiable op against finite differences, in the spirit of
// ggml's test-backend-ops and dlib's test_layer.
#pragma once
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "fstm_build_config.h"
#include "kernels/backend.h"
#include "tests/test_support.h"
#if FSTM_HAVE_ONEDNN
#include "kernels/cpu/onednn_common.h"
#endif

namespace fstm::test {

// Selects the CPU kernel path for one scope and restores the previous one.
class CpuPathScope {
 public:
  explicit CpuPathScope(kernels::CpuPath path) : previous_(kernels::cpu_path()) { kernels::set_cpu_path(path); }
  ~CpuPathScope() { kernels::set_cpu_path(previous_); }
  CpuPathScope(const CpuPathScope&) = delete;
  CpuPathScope& operator=(const CpuPathScope&) = delete;

 private:
  kernels::CpuPath previous_;
};

// Turns on NaN-poisoning of Assign-mode gradient buffers for one scope.
class PoisonScope {
 public:
  PoisonScope() : previous_(poison_gradients()) { set_poison_gradients(true); }
  ~PoisonScope() { set_poison_gradients(previous_); }
  PoisonScope(const PoisonScope&) = delete;
  PoisonScope& operator=(const PoisonScope&) = delete;

 private:
  bool previous_;
};

inline const char* path_name(kernels::CpuPath p) { return p == kernels::CpuPath::Fast ? "fast" : "reference"; }
inline const std::vector<kernels::CpuPath>& both_paths() {
  static const std::vector<kernels::CpuPath> paths{kernels::CpuPath::Reference, kernels::CpuPath::Fast};
  return paths;
}

// Without oneDNN the fast entry points of conv/pool/linear are the reference kernels; comparing
// them would test nothing, so those comparisons skip.
#if FSTM_HAVE_ONEDNN
#define FSTM_REQUIRE_ONEDNN() (void)0
#else
#define FSTM_REQUIRE_ONEDNN() GTEST_SKIP() << "built without oneDNN: the fast path is the reference"
#endif

// Chooses whether the fast convolution may use Winograd kernels, for one scope (no-op without oneDNN).
class WinogradScope {
 public:
#if FSTM_HAVE_ONEDNN
  explicit WinogradScope(bool enabled) : previous_(kernels::onednn::conv2d_winograd()) {
    kernels::onednn::set_conv2d_winograd(enabled);
  }
  ~WinogradScope() { kernels::onednn::set_conv2d_winograd(previous_); }
#else
  explicit WinogradScope(bool) {}
#endif
  WinogradScope(const WinogradScope&) = delete;
  WinogradScope& operator=(const WinogradScope&) = delete;

 private:
  [[maybe_unused]] bool previous_ = false;
};
inline const char* algorithm_name(bool winograd) { return winograd ? "winograd allowed" : "direct only"; }

// A tensor of NaNs: kernels that assign must overwrite every element.
inline Tensor poisoned(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  poison(t);
  return t;
}

// a + b elementwise, computed here (the expected value of an accumulating kernel).
inline Tensor plus(const Tensor& a, const Tensor& b) {
  std::vector<float> va = a.to_vector();
  const std::vector<float> vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i) va[i] += vb[i];
  return Tensor::from_vector(va, a.shape());
}

// Runs gradcheck with poisoned Assign gradients on the current path and reports failures.
inline ::testing::AssertionResult gradcheck_ok(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                               const std::vector<Tensor>& inputs, GradcheckOptions opt = {}) {
  PoisonScope poison_scope;
  const GradcheckResult r = gradcheck(f, inputs, opt);
  if (r.ok && r.checked > 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "gradcheck on the " << path_name(kernels::cpu_path()) << " path: checked "
                                       << r.checked << ", skipped kinks " << r.skipped_kinks << ", max error "
                                       << r.max_abs_error << "\n"
                                       << r.report;
}

// A leaf input for gradcheck: random values, requires_grad as asked.
inline Tensor leaf(const Shape& shape, Rng& rng, bool requires_grad = true, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = random_tensor(shape, rng, lo, hi);
  t.set_requires_grad(requires_grad);
  return t;
}

}  // namespace fstm::test
