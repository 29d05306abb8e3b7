#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/autograd.h"
#include "tensor/random.h"

namespace fstm {

namespace {
double weighted_sum(const Tensor& y, const std::vector<float>& r) {
  const std::vector<float> v = y.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += double(v[i]) * r[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          const GradcheckOptions& opt) {
  GradcheckResult result;
  for (Tensor& t : inputs) t.set_grad(Tensor());

  // Analytic gradients of L = sum(f(x) * r).
  Tensor y = f(inputs);
  Rng rng(opt.seed);
  std::vector<float> r(size_t(y.numel()));
  for (float& v : r) v = rng.uniform(-1.0f, 1.0f);
  backward(y, Tensor::from_vector(r, y.shape(), y.device()));

  std::ostringstream report;
  int failures = 0;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    FSTM_CHECK(x.grad().defined(), "gradcheck: input ", k, " requires grad but received none");
    const std::vector<float> analytic = x.grad().to_vector();
    float* px = x.data<float>();
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / opt.max_elements);
    for (int64_t i = 0; i < n; i += stride) {
      const float saved = px[i];
      px[i] = saved + opt.step;
      const double up = weighted_sum(f(inputs), r);
      px[i] = saved - opt.step;
      const double down = weighted_sum(f(inputs), r);
      px[i] = saved;
      const double mid = weighted_sum(f(inputs), r);
      const double numeric = (up - down) / (2.0 * opt.step);
      const double forward = (up - mid) / opt.step, backward_diff = (mid - down) / opt.step;
      const double kink_tol = opt.atol + opt.rtol * std::max(std::abs(forward), std::abs(backward_diff));
      if (std::abs(forward - backward_diff) > 4 * kink_tol) {  // not differentiable here
        ++result.skipped_kinks;
        continue;
      }
      ++result.checked;
      const double err = std::abs(numeric - analytic[i]);
      result.max_abs_error = std::max(result.max_abs_error, float(err));
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        result.ok = false;
        if (failures++ < 8)
          report << "input " << k << " " << x.shape().str() << " element " << i << ": analytic " << analytic[i]
                 << ", numeric " << numeric << "\n";
      }
    }
  }
  if (failures > 8) report << "... " << failures - 8 << " more\n";
  result.report = report.str();
  return result;
}

}  // namespace fstm
