// Differentiable layers: convolution, batch norm, linear, pooling, activations.
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "autograd/trace.h"
#include "kernels/batch_norm.h"
#include "kernels/linear.h"

namespace fstm::ops {

namespace {

Tensor empty_like(const Tensor& t, const Shape& shape) { return Tensor::empty(shape, DType::f32, t.device()); }

// ---- conv2d ------------------------------------------------------------------------------------
struct Conv2dNode final : Node {
  Tensor x, w;
  bool has_bias = false;
  Conv2dParams p;
  const char* name() const override { return "conv2d"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    if (g[0].needed()) kernels::conv2d_backward_data(dy, w, p, g[0].grad);
    if (g[1].needed() || (has_bias && g[2].needed())) {
      Tensor dw = g[1].needed() ? g[1].grad : Tensor::zeros(w.shape(), DType::f32, w.device());
      Tensor db = has_bias ? g[2].grad : Tensor();
      kernels::conv2d_backward_weights(dy, x, p, dw, db);
    }
  }
  void release_saved() override { x = w = Tensor(); }
};

// ---- batch norm --------------------------------------------------------------------------------
struct BatchNormNode final : Node {
  Tensor x, gamma, save_mean, save_invstd;   // train mode
  Tensor running_mean, running_var;          // eval mode
  bool training = true;
  float eps = 1e-5f;
  const char* name() const override { return "batch_norm"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    Tensor dx = g[0].needed() ? g[0].grad : Tensor::empty(x.shape(), DType::f32, x.device());
    Tensor dgamma = g[1].needed() ? g[1].grad : Tensor::zeros(gamma.shape(), DType::f32, x.device());
    Tensor dbeta = g[2].needed() ? g[2].grad : Tensor::zeros(gamma.shape(), DType::f32, x.device());
    if (training)
      kernels::batch_norm_backward_train(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
    else
      kernels::batch_norm_backward_eval(dy, x, gamma, running_mean, running_var, eps, dx, dgamma, dbeta);
  }
  void release_saved() override { x = gamma = save_mean = save_invstd = running_mean = running_var = Tensor(); }
};

// Train-mode batch norm + residual + ReLU (batch_norm_relu). Keeps x for the statistics' gradient
// and the output y for ReLU's mask. The gradients reuse dy's buffer (GradMode::Handover): with a
// residual, dy masked in place is the residual's gradient; without, dx overwrites dy. So the op
// needs no more gradient buffers than the ReLU alone would.
struct BatchNormReluNode final : Node {
  Tensor x, y, gamma, save_mean, save_invstd;
  bool has_residual = false;
  const char* name() const override { return "batch_norm_relu"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    Tensor dres = has_residual && g[3].needed() ? dy : Tensor();
    Tensor dx = has_residual ? g[0].grad : dy;  // with a residual, x's slot is an ordinary Assign
    if (!dx.defined()) dx = Tensor::empty(x.shape(), DType::f32, x.device());  // only dgamma/dbeta wanted
    Tensor dgamma = g[1].needed() ? g[1].grad : Tensor::zeros(gamma.shape(), DType::f32, x.device());
    Tensor dbeta = g[2].needed() ? g[2].grad : Tensor::zeros(gamma.shape(), DType::f32, x.device());
    kernels::batch_norm_relu_backward_train(dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta, dres);
    if (!has_residual && g[0].needed()) g[0].grad = dx;
    if (dres.defined()) g[3].grad = dres;
  }
  void release_saved() override { x = y = gamma = save_mean = save_invstd = Tensor(); }
};

// ---- linear ------------------------------------------------------------------------------------
struct LinearNode final : Node {
  Tensor x, w;
  bool has_bias = false;
  const char* name() const override { return "linear"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    if (g[0].needed()) kernels::linear_backward_data(dy, w, g[0].grad);
    if (g[1].needed() || (has_bias && g[2].needed())) {
      Tensor dw = g[1].needed() ? g[1].grad : Tensor::zeros(w.shape(), DType::f32, w.device());
      Tensor db = has_bias ? g[2].grad : Tensor();
      kernels::linear_backward_weights(dy, x, dw, db);
    }
  }
  void release_saved() override { x = w = Tensor(); }
};

// ---- pooling -----------------------------------------------------------------------------------
struct MaxPoolNode final : Node {
  Tensor x;
  Pool2dParams p;
  const char* name() const override { return "max_pool2d"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::max_pool2d_backward(dy, x, p, g[0].grad);
  }
  void release_saved() override { x = Tensor(); }
};

struct GlobalAvgPoolNode final : Node {
  const char* name() const override { return "global_avg_pool"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::global_avg_pool_backward(dy, g[0].grad);
  }
  void release_saved() override {}
};

// ---- activations -------------------------------------------------------------------------------
struct ActivationNode final : Node {
  Activation a = Activation::Relu;
  Tensor x, y;  // only what the derivative needs is kept
  const char* name() const override { return kernels::activation_name(a); }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::activation_backward(a, dy, x, y, g[0].grad);
  }
  void release_saved() override { x = y = Tensor(); }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  kernels::conv2d_check(x, w, b, p);
  Tensor y = empty_like(x, kernels::conv2d_output_shape(x.shape(), w.shape(), p));
  kernels::conv2d_forward(x, w, b, p, y);
  if (TracedOp* t = trace(TracedKind::Conv2d, {&x, &w, &b}, y)) t->conv = p;
  if (needs_grad({&x, &w, &b})) {
    auto node = std::make_shared<Conv2dNode>();
    node->x = x.detach();
    node->w = w.detach();
    node->has_bias = b.defined();
    node->p = p;
    record(node, {{&x, GradMode::Assign}, {&w, GradMode::Accumulate}, {&b, GradMode::Accumulate}}, y);
  }
  return y;
}

namespace {
// The checks batch_norm and batch_norm_relu share; returns the channel count C.
int64_t check_batch_norm_inputs(const Tensor& x, const Tensor& gamma, const Tensor& beta, bool training) {
  FSTM_CHECK(x.dim() >= 2, "batch_norm: expected [N, ..., C], got ", x.describe());
  const int64_t C = x.size(-1);
  check_shape(gamma, Shape{C}, "batch_norm weight");
  check_shape(beta, Shape{C}, "batch_norm bias");
  check_f32(x, "batch_norm");
  if (training) {
    forbid_trace("batch_norm in training mode");
    FSTM_CHECK(x.numel() / C > 1, "batch_norm: training needs more than one value per channel, got ",
               x.describe());
  }
  return C;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  const int64_t C = check_batch_norm_inputs(x, gamma, beta, training);
  Tensor y = empty_like(x, x.shape());
  auto node = needs_grad({&x, &gamma, &beta}) ? std::make_shared<BatchNormNode>() : nullptr;
  if (training) {
    Tensor save_mean = Tensor::empty(Shape{C}, DType::f32, x.device());
    Tensor save_invstd = Tensor::empty(Shape{C}, DType::f32, x.device());
    kernels::batch_norm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean,
                                      save_invstd);
    if (node) {
      node->save_mean = save_mean;
      node->save_invstd = save_invstd;
    }
  } else {
    check_shape(running_mean, Shape{C}, "batch_norm running_mean");
    check_shape(running_var, Shape{C}, "batch_norm running_var");
    kernels::batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps, y);
    if (TracedOp* t = trace(TracedKind::BatchNormEval, {&x, &gamma, &beta, &running_mean, &running_var}, y)) t->eps = eps;
    if (node) {
      node->running_mean = running_mean.detach();
      node->running_var = running_var.detach();
    }
  }
  if (node) {
    node->x = x.detach();
    node->gamma = gamma.detach();
    node->training = training;
    node->eps = eps;
    record(node, {{&x, GradMode::Assign}, {&gamma, GradMode::Accumulate}, {&beta, GradMode::Accumulate}}, y);
  }
  return y;
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, bool training, float momentum, float eps, const Tensor& residual) {
  if (!training) {
    Tensor z = batch_norm(x, gamma, beta, running_mean, running_var, false, momentum, eps);
    return relu(residual.defined() ? add(z, residual) : z);
  }
  const int64_t C = check_batch_norm_inputs(x, gamma, beta, true);
  if (residual.defined()) {
    check_same_shape(x, residual, "batch_norm_relu residual");
    check_f32(residual, "batch_norm_relu residual");
  }
  Tensor y = empty_like(x, x.shape());
  Tensor save_mean = Tensor::empty(Shape{C}, DType::f32, x.device());
  Tensor save_invstd = Tensor::empty(Shape{C}, DType::f32, x.device());
  kernels::batch_norm_relu_forward_train(x, gamma, beta, residual, running_mean, running_var, momentum, eps, y,
                                         save_mean, save_invstd);
  if (needs_grad({&x, &gamma, &beta, &residual})) {
    auto node = std::make_shared<BatchNormReluNode>();
    node->x = x.detach();
    node->y = y.detach();
    node->gamma = gamma.detach();
    node->save_mean = save_mean;
    node->save_invstd = save_invstd;
    node->has_residual = residual.defined();
    const GradMode x_mode = node->has_residual ? GradMode::Assign : GradMode::Handover;
    record(node,
           {{&x, x_mode}, {&gamma, GradMode::Accumulate}, {&beta, GradMode::Accumulate},
            {&residual, GradMode::Handover}},
           y);
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  FSTM_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "linear: input ", x.describe(),
             " does not fit weight ", w.describe());
  if (b.defined()) check_shape(b, Shape{w.size(0)}, "linear bias");
  check_f32(x, "linear");
  Tensor y = empty_like(x, Shape{x.size(0), w.size(0)});
  kernels::linear_forward(x, w, b, y);
  trace(TracedKind::Linear, {&x, &w, &b}, y);
  if (needs_grad({&x, &w, &b})) {
    auto node = std::make_shared<LinearNode>();
    node->x = x.detach();
    node->w = w.detach();
    node->has_bias = b.defined();
    record(node, {{&x, GradMode::Assign}, {&w, GradMode::Accumulate}, {&b, GradMode::Accumulate}}, y);
  }
  return y;
}

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  FSTM_CHECK(x.dim() == 4, "max_pool2d: expected [N, H, W, C], got ", x.describe());
  check_f32(x, "max_pool2d");
  Tensor y = empty_like(x, kernels::max_pool2d_output_shape(x.shape(), p));
  kernels::max_pool2d_forward(x, p, y);
  if (TracedOp* t = trace(TracedKind::MaxPool2d, {&x}, y)) t->pool = p;
  if (needs_grad({&x})) {
    auto node = std::make_shared<MaxPoolNode>();
    node->x = x.detach();
    node->p = p;
    record(node, {{&x, GradMode::Assign}}, y);
  }
  return y;
}

Tensor global_avg_pool(const Tensor& x) {
  FSTM_CHECK(x.dim() == 4, "global_avg_pool: expected [N, H, W, C], got ", x.describe());
  check_f32(x, "global_avg_pool");
  Tensor y = empty_like(x, Shape{x.size(0), x.size(3)});
  kernels::global_avg_pool_forward(x, y);
  trace(TracedKind::GlobalAvgPool, {&x}, y);
  if (needs_grad({&x})) record(std::make_shared<GlobalAvgPoolNode>(), {{&x, GradMode::Assign}}, y);
  return y;
}

Tensor activation(Activation a, const Tensor& x) {
  check_f32(x, kernels::activation_name(a));
  if (a == Activation::Identity) return x;
  Tensor y = empty_like(x, x.shape());
  kernels::activation_forward(a, x, y);
  if (TracedOp* t = trace(TracedKind::Activation, {&x}, y)) t->activation = a;
  if (needs_grad({&x})) {
    auto node = std::make_shared<ActivationNode>();
    node->a = a;
    if (a == Activation::Silu) node->x = x.detach();
    else node->y = y.detach();
    record(node, {{&x, GradMode::Assign}}, y);
  }
  return y;
}

}  // namespace fstm::ops
