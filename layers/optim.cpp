#include "layers/optim.h"

#include <cmath>

#include "autograd/autograd.h"
#include "kernels/optim.h"

namespace fstm {

namespace {
const Tensor* find(const NamedTensors& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return &t;
  return nullptr;
}

// Copies the entry `name` of `state` into `dst`, checking that it exists and fits.
void restore(const NamedTensors& state, const std::string& name, Tensor& dst) {
  const Tensor* src = find(state, name);
  FSTM_CHECK(src != nullptr, "optimizer state has no entry '", name, "'");
  FSTM_CHECK(src->shape() == dst.shape(), "optimizer state '", name, "' has shape ", src->shape().str(),
             ", parameter needs ", dst.shape().str());
  dst.copy_(src->to(DType::f32));
}

int64_t restore_step(const NamedTensors& state) {
  const Tensor* s = find(state, "step");
  FSTM_CHECK(s != nullptr && s->numel() == 1, "optimizer state has no 'step'");
  return s->to_vector_i64()[0];
}
}  // namespace

Optimizer::Optimizer(NamedTensors params) : params_(std::move(params)) {
  for (const auto& [name, t] : params_)
    FSTM_CHECK(t.requires_grad(), "optimizer given parameter '", name, "' that does not require grad");
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.grad().zero_();
}

SGD::SGD(NamedTensors params, const SgdOptions& o) : Optimizer(std::move(params)), options_(o) {
  lr_ = o.lr;
  if (o.momentum != 0.0f)
    for (const auto& [name, p] : params_) momentum_.push_back(Tensor::zeros(p.shape(), DType::f32, p.device()));
}

void SGD::step() {
  NoGradGuard no_grad;
  kernels::SgdParams k;
  k.lr = lr_;
  k.momentum = options_.momentum;
  k.dampening = options_.dampening;
  k.weight_decay = options_.weight_decay;
  k.nesterov = options_.nesterov;
  k.first_step = step_ == 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    Tensor buf = momentum_.empty() ? Tensor() : momentum_[i];
    kernels::sgd_step(p, p.grad(), buf, k);
  }
  ++step_;
}

NamedTensors SGD::state() const {
  NamedTensors s;
  for (size_t i = 0; i < momentum_.size(); ++i) s.emplace_back(params_[i].first + ".momentum_buffer", momentum_[i]);
  s.emplace_back("step", Tensor::from_vector_i64({step_}, Shape{}));
  return s;
}

void SGD::load_state(const NamedTensors& state) {
  for (size_t i = 0; i < momentum_.size(); ++i) restore(state, params_[i].first + ".momentum_buffer", momentum_[i]);
  step_ = restore_step(state);
}

AdamW::AdamW(NamedTensors params, const AdamWOptions& o) : Optimizer(std::move(params)), options_(o) {
  lr_ = o.lr;
  for (const auto& [name, p] : params_) {
    exp_avg_.push_back(Tensor::zeros(p.shape(), DType::f32, p.device()));
    exp_avg_sq_.push_back(Tensor::zeros(p.shape(), DType::f32, p.device()));
  }
}

void AdamW::step() {
  NoGradGuard no_grad;
  ++step_;
  kernels::AdamWParams k;
  k.lr = lr_;
  k.beta1 = options_.beta1;
  k.beta2 = options_.beta2;
  k.eps = options_.eps;
  k.weight_decay = options_.weight_decay;
  k.step = step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    kernels::adamw_step(p, p.grad(), exp_avg_[i], exp_avg_sq_[i], k);
  }
}

NamedTensors AdamW::state() const {
  NamedTensors s;
  for (size_t i = 0; i < params_.size(); ++i) {
    s.emplace_back(params_[i].first + ".exp_avg", exp_avg_[i]);
    s.emplace_back(params_[i].first + ".exp_avg_sq", exp_avg_sq_[i]);
  }
  s.emplace_back("step", Tensor::from_vector_i64({step_}, Shape{}));
  return s;
}

void AdamW::load_state(const NamedTensors& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    restore(state, params_[i].first + ".exp_avg", exp_avg_[i]);
    restore(state, params_[i].first + ".exp_avg_sq", exp_avg_sq_[i]);
  }
  step_ = restore_step(state);
}

float LrSchedule::lr_at(int64_t step) const {
  switch (kind) {
    case Kind::Constant: return base_lr;
    case Kind::Step: return base_lr * std::pow(gamma, float(step / std::max<int64_t>(1, step_size)));
    case Kind::Cosine: {
      if (step < warmup_steps) return base_lr * float(step + 1) / float(warmup_steps);
      const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
      const double t = std::min(1.0, double(step - warmup_steps) / double(span));
      return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * t)));
    }
  }
  return base_lr;
}

LrSchedule::Kind LrSchedule::parse_kind(const std::string& name) {
  if (name == "constant") return Kind::Constant;
  if (name == "step") return Kind::Step;
  if (name == "cosine") return Kind::Cosine;
  throw Error(detail::concat("unknown learning-rate schedule '", name, "' (constant, step or cosine)"));
}

const char* LrSchedule::kind_name(Kind kind) {
  switch (kind) {
    case Kind::Constant: return "constant";
    case Kind::Step: return "step";
    case Kind::Cosine: return "cosine";
  }
  return "?";
}

}  // namespace fstm
