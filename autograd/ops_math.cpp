// Differentiable arithmetic, shape ops, regularisation and losses.
#include <numeric>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "autograd/trace.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"

namespace fstm::ops {

namespace {

Tensor empty_on(const Tensor& like, const Shape& shape) { return Tensor::empty(shape, DType::f32, like.device()); }

// Copies dy into an Assign slot (a gradient that passes through unchanged).
void assign(GradSlot& slot, const Tensor& dy) {
  if (slot.needed()) slot.grad.copy_(dy);
}

struct AddNode final : Node {
  float sign_b = 1.0f;  // +1 for add, -1 for sub
  const char* name() const override { return sign_b > 0 ? "add" : "sub"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    assign(g[0], dy);
    if (g[1].needed()) kernels::affine(dy, sign_b, 0.0f, g[1].grad);
  }
  void release_saved() override {}
};

struct MulNode final : Node {
  Tensor a, b;
  const char* name() const override { return "mul"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    if (g[0].needed()) kernels::mul(dy, b, g[0].grad);
    if (g[1].needed()) kernels::mul(dy, a, g[1].grad);
  }
  void release_saved() override { a = b = Tensor(); }
};

struct AffineNode final : Node {
  float alpha = 1.0f;
  const char* name() const override { return "affine"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::affine(dy, alpha, 0.0f, g[0].grad);
  }
  void release_saved() override {}
};

struct MulChannelNode final : Node {
  Tensor x, s;
  const char* name() const override { return "mul_channel"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    if (g[0].needed()) kernels::mul_channel(dy, s, g[0].grad);
    if (g[1].needed()) kernels::mul_channel_backward_scale(dy, x, g[1].grad);
  }
  void release_saved() override { x = s = Tensor(); }
};

// Per-sample scaling by a constant mask (stochastic depth); the mask gets no gradient.
struct MulSampleNode final : Node {
  Tensor s;
  const char* name() const override { return "mul_sample"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override { kernels::mul_sample(dy, s, g[0].grad); }
  void release_saved() override { s = Tensor(); }
};

struct SumNode final : Node {
  const char* name() const override { return "sum"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    g[0].grad.fill_(dy.item());  // d sum(x) / dx = 1 everywhere
  }
  void release_saved() override {}
};

struct ReshapeNode final : Node {
  const char* name() const override { return "reshape"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override { g[0].grad.copy_(dy); }
  void release_saved() override {}
};

struct ConcatNode final : Node {
  const char* name() const override { return "concat"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    std::vector<Tensor> outs;
    for (size_t i = 0; i < g.size(); ++i)
      outs.push_back(g[i].needed() ? g[i].grad : Tensor::empty(edges[i].shape, DType::f32, dy.device()));
    kernels::split_last(dy, outs);
  }
  void release_saved() override {}
};

struct CrossEntropyNode final : Node {
  Tensor probs, labels;
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::cross_entropy_backward(dy, probs, labels, g[0].grad);
  }
  void release_saved() override { probs = labels = Tensor(); }
};

struct GatherRowsNode final : Node {
  Tensor index;
  const char* name() const override { return "gather_rows"; }
  void backward(const Tensor& dy, std::vector<GradSlot>& g) override {
    kernels::gather_rows_backward(dy, index, g[0].grad);
  }
  void release_saved() override { index = Tensor(); }
};

void check_labels(const Tensor& logits, const Tensor& labels, const char* op) {
  FSTM_CHECK(logits.dim() == 2, op, ": expected logits [N, K], got ", logits.describe());
  FSTM_CHECK(labels.dtype() == DType::i64, op, ": labels must be i64, got ", labels.describe());
  check_shape(labels, Shape{logits.size(0)}, op);
  check_same_device(logits, labels, op);
  if (labels.device().is_cpu()) {
    const int64_t K = logits.size(1);
    const int64_t* l = labels.data<int64_t>();
    for (int64_t n = 0; n < labels.numel(); ++n)
      FSTM_CHECK(l[n] >= 0 && l[n] < K, op, ": label ", l[n], " at row ", n, " is outside [0, ", K, ")");
  }
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "add");
  Tensor y = empty_on(a, a.shape());
  kernels::add(a, b, y);
  trace(TracedKind::Add, {&a, &b}, y);
  if (needs_grad({&a, &b})) record(std::make_shared<AddNode>(), {{&a, GradMode::Assign}, {&b, GradMode::Assign}}, y);
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "sub");
  Tensor nb = empty_on(b, b.shape());
  kernels::affine(b, -1.0f, 0.0f, nb);
  Tensor y = empty_on(a, a.shape());
  kernels::add(a, nb, y);
  trace(TracedKind::Sub, {&a, &b}, y);
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<AddNode>();
    node->sign_b = -1.0f;
    record(node, {{&a, GradMode::Assign}, {&b, GradMode::Assign}}, y);
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "mul");
  Tensor y = empty_on(a, a.shape());
  kernels::mul(a, b, y);
  trace(TracedKind::Mul, {&a, &b}, y);
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<MulNode>();
    node->a = a.detach();
    node->b = b.detach();
    record(node, {{&a, GradMode::Assign}, {&b, GradMode::Assign}}, y);
  }
  return y;
}

Tensor affine(const Tensor& x, float alpha, float beta) {
  check_f32(x, "affine");
  Tensor y = empty_on(x, x.shape());
  kernels::affine(x, alpha, beta, y);
  if (TracedOp* t = trace(TracedKind::Affine, {&x}, y)) {
    t->alpha = alpha;
    t->beta = beta;
  }
  if (needs_grad({&x})) {
    auto node = std::make_shared<AffineNode>();
    node->alpha = alpha;
    record(node, {{&x, GradMode::Assign}}, y);
  }
  return y;
}

Tensor mul_channel(const Tensor& x, const Tensor& s) {
  FSTM_CHECK(x.dim() >= 2 && s.dim() == 2 && s.size(0) == x.size(0) && s.size(1) == x.size(-1),
             "mul_channel: scale ", s.describe(), " does not fit ", x.describe());
  Tensor y = empty_on(x, x.shape());
  kernels::mul_channel(x, s, y);
  trace(TracedKind::MulChannel, {&x, &s}, y);
  if (needs_grad({&x, &s})) {
    auto node = std::make_shared<MulChannelNode>();
    node->x = x.detach();
    node->s = s.detach();
    record(node, {{&x, GradMode::Assign}, {&s, GradMode::Assign}}, y);
  }
  return y;
}

Tensor mul_sample(const Tensor& x, const Tensor& s) {
  forbid_trace("mul_sample");
  FSTM_CHECK(x.dim() >= 1 && s.dim() == 1 && s.size(0) == x.size(0), "mul_sample: scale ", s.describe(),
             " does not fit ", x.describe());
  Tensor y = empty_on(x, x.shape());
  kernels::mul_sample(x, s, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<MulSampleNode>();
    node->s = s.detach();
    record(node, {{&x, GradMode::Assign}}, y);
  }
  return y;
}

Tensor sum(const Tensor& x) {
  forbid_trace("sum");
  check_f32(x, "sum");
  Tensor y = empty_on(x, Shape{});
  kernels::sum_all(x, y);
  if (needs_grad({&x})) record(std::make_shared<SumNode>(), {{&x, GradMode::Assign}}, y);
  return y;
}

Tensor mean(const Tensor& x) {
  FSTM_CHECK(x.numel() > 0, "mean of an empty ", x.describe());
  return scale(sum(x), 1.0f / float(x.numel()));
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.detach().reshape(shape);
  trace(TracedKind::Reshape, {&x}, y);
  if (needs_grad({&x})) record(std::make_shared<ReshapeNode>(), {{&x, GradMode::Assign}}, y);
  return y;
}

Tensor flatten(const Tensor& x) {
  FSTM_CHECK(x.dim() >= 1, "flatten of a 0-d ", x.describe());
  const int64_t n = x.size(0);
  return reshape(x, Shape{n, n ? x.numel() / n : 0});
}

Tensor concat_last(const std::vector<Tensor>& xs) {
  FSTM_CHECK(!xs.empty(), "concat_last of no tensors");
  Shape out = xs[0].shape();
  int64_t channels = 0;
  for (const Tensor& t : xs) {
    check_f32(t, "concat_last");
    check_same_device(t, xs[0], "concat_last");
    FSTM_CHECK(t.dim() == out.size(), "concat_last: ", t.describe(), " and ", xs[0].describe(), " differ in rank");
    for (int d = 0; d + 1 < out.size(); ++d)
      FSTM_CHECK(t.size(d) == out[d], "concat_last: leading axes differ: ", t.describe(), " vs ", xs[0].describe());
    channels += t.size(-1);
  }
  out[out.size() - 1] = channels;
  Tensor y = empty_on(xs[0], out);
  kernels::concat_last(xs, y);
  if (Tracer* t = active_tracer()) t->add(TracedOp{TracedKind::Concat, xs, y, {}, {}, Activation::Identity, 0, 1, 0});
  bool any = false;
  for (const Tensor& t : xs) any = any || needs_grad({&t});
  if (any) {
    std::vector<RecordedInput> inputs;
    for (const Tensor& t : xs) inputs.push_back({&t, GradMode::Assign});
    record(std::make_shared<ConcatNode>(), inputs, y);
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, bool training, Rng& rng) {
  FSTM_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " is outside [0, 1)");
  if (!training || p == 0.0f) return x;
  forbid_trace("dropout in training mode");
  // The mask holds 0 or 1/(1-p); drawn on the host so the same seed gives the same mask anywhere.
  std::vector<float> mask(size_t(x.numel()));
  const float keep_scale = 1.0f / (1.0f - p);
  for (float& m : mask) m = rng.uniform() < p ? 0.0f : keep_scale;
  Tensor m = Tensor::from_vector(mask, x.shape(), x.device());
  return mul(x, m);
}

Tensor drop_path(const Tensor& x, float p, bool training, Rng& rng) {
  FSTM_CHECK(p >= 0.0f && p < 1.0f, "stochastic depth probability ", p, " is outside [0, 1)");
  if (!training || p == 0.0f) return x;
  forbid_trace("stochastic depth in training mode");
  std::vector<float> mask(size_t(x.size(0)));
  const float keep_scale = 1.0f / (1.0f - p);
  for (float& m : mask) m = rng.uniform() < p ? 0.0f : keep_scale;
  return mul_sample(x, Tensor::from_vector(mask, Shape{x.size(0)}, x.device()));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  forbid_trace("cross_entropy");
  check_f32(logits, "cross_entropy");
  check_labels(logits, labels, "cross_entropy");
  FSTM_CHECK(logits.size(0) > 0, "cross_entropy of an empty batch");
  Tensor loss = empty_on(logits, Shape{});
  Tensor probs = empty_on(logits, logits.shape());
  kernels::cross_entropy_forward(logits, labels, loss, probs);
  if (needs_grad({&logits})) {
    auto node = std::make_shared<CrossEntropyNode>();
    node->probs = probs;
    node->labels = labels.detach();
    record(node, {{&logits, GradMode::Assign}}, loss);
  }
  return loss;
}

Tensor gather_rows(const Tensor& x, const Tensor& index) {
  forbid_trace("gather_rows");
  check_f32(x, "gather_rows");
  check_labels(x, index, "gather_rows");
  Tensor y = empty_on(x, Shape{x.size(0)});
  kernels::gather_rows(x, index, y);
  if (needs_grad({&x})) {
    auto node = std::make_shared<GatherRowsNode>();
    node->index = index.detach();
    record(node, {{&x, GradMode::Assign}}, y);
  }
  return y;
}

Tensor softmax(const Tensor& x) {
  check_f32(x, "softmax");
  FSTM_CHECK(x.dim() == 2, "softmax: expected [N, K], got ", x.describe());
  Tensor y = empty_on(x, x.shape());
  kernels::softmax(x, y);
  return y;
}

}  // namespace fstm::ops
