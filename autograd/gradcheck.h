// Finite-difference gradient check, used by the op tests.
//
// The function's output is reduced to a scalar L = sum(f(x) * r) with a fixed random r, so every
// output element matters. For each checked input element, the analytic dL/dx from backward() is
// compared with the central difference (L(x + h) - L(x - h)) / 2h, computed in double from f32
// evaluations. Points where the one-sided differences disagree (ReLU kinks, max-pool ties) are
// skipped and counted rather than failed.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fstm {

struct GradcheckOptions {
  float step = 1e-2f;        // h
  float atol = 2e-3f;
  float rtol = 2e-2f;
  int max_elements = 64;     // per input; elements are sampled evenly when there are more
  uint64_t seed = 1;
};

struct GradcheckResult {
  bool ok = true;
  int checked = 0;
  int skipped_kinks = 0;
  float max_abs_error = 0.0f;
  std::string report;        // the first failures, naming input, index, analytic and numeric
};

// f maps the inputs to one output tensor. Inputs must be f32 CPU leaf tensors; the ones whose
// requires_grad is set are checked.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          std::vector<Tensor> inputs, const GradcheckOptions& options = {});

}  // namespace fstm
