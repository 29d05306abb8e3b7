// Tracing: records the ops of one forward pass as a graph, so that a model in eval mode can be
// compiled into a fused inference plan without writing its forward twice
// (layers/inference_graph.h turns the trace into kernels/graph/inference_graph.h's graph;
// layers/inference.h runs it). While a TraceGuard is alive, every op in autograd/ops.h appends a
// TracedOp.
#pragma once
#include <memory>
#include <vector>

#include "kernels/activation.h"
#include "kernels/conv2d.h"
#include "kernels/pool.h"
#include "tensor/tensor.h"

namespace fstm {

enum class TracedKind {
  Conv2d,         // in: x, w, b(optional)
  BatchNormEval,  // in: x, gamma, beta, running_mean, running_var
  Linear,         // in: x, w, b(optional)
  MaxPool2d,      // in: x
  GlobalAvgPool,  // in: x
  Activation,     // in: x
  Add,            // in: a, b
  Sub,            // in: a, b
  Mul,            // in: a, b
  Affine,         // in: x        (alpha * x + beta)
  MulChannel,     // in: x, s
  Concat,         // in: xs...
  Reshape,        // in: x
};
const char* traced_kind_name(TracedKind k);

struct TracedOp {
  TracedKind kind;
  std::vector<Tensor> inputs;  // handles keep the traced tensors (and their identity) alive
  Tensor output;
  kernels::Conv2dParams conv;
  kernels::Pool2dParams pool;
  kernels::Activation activation = kernels::Activation::Identity;
  float eps = 0.0f, alpha = 1.0f, beta = 0.0f;
};

class Tracer {
 public:
  std::vector<TracedOp> ops;
  void add(TracedOp op) { ops.push_back(std::move(op)); }
};

Tracer* active_tracer();

class TraceGuard {
 public:
  explicit TraceGuard(Tracer& tracer);
  ~TraceGuard();
  TraceGuard(const TraceGuard&) = delete;
  TraceGuard& operator=(const TraceGuard&) = delete;

 private:
  Tracer* previous_;
};

// Called by the ops: records when tracing is on, costs one branch otherwise.
inline TracedOp* trace(TracedKind kind, std::initializer_list<const Tensor*> inputs, const Tensor& output) {
  Tracer* t = active_tracer();
  if (!t) return nullptr;
  TracedOp op{kind, {}, output, {}, {}, kernels::Activation::Identity, 0.0f, 1.0f, 0.0f};
  for (const Tensor* in : inputs) op.inputs.push_back(in ? *in : Tensor());
  t->add(std::move(op));
  return &t->ops.back();
}

// Ops that have no place in an inference plan (losses, training-mode layers) call this.
inline void forbid_trace(const char* op) {
  if (active_tracer())
    throw Error(detail::concat(op, " cannot be traced into an inference plan (is the model in eval mode?)"));
}

}  // namespace fstm
