#include "layers/inference_graph.h"

#include <map>

namespace fstm {

namespace {

GraphOp graph_op(GraphOpKind kind, std::vector<int> inputs) {
  GraphOp op{};
  op.kind = kind;
  op.inputs = std::move(inputs);
  return op;
}

Shape rebatch(const Shape& s, int64_t traced_batch, int64_t batch, const char* what) {
  FSTM_CHECK(s.size() >= 1 && s[0] == traced_batch, "inference plan: ", what, " has shape ", s.str(),
             " whose first axis is not the batch (", traced_batch, ")");
  Shape out = s;
  out[0] = batch;
  return out;
}

Tensor host_copy(const Tensor& t) { return t.defined() ? t.to(Device::cpu()).clone() : Tensor(); }

// The traced ops, one graph op each, before any rewrite.
InferenceGraph translate(const Tracer& tracer, const Tensor& input, const Tensor& output, int64_t batch) {
  InferenceGraph g;
  std::map<const TensorImpl*, int> value_of;
  const int64_t traced_batch = input.size(0);
  auto new_value = [&](const Tensor& t, const char* what) {
    g.values.push_back(rebatch(t.shape(), traced_batch, batch, what));
    value_of[t.impl_ptr().get()] = int(g.values.size()) - 1;
    return int(g.values.size()) - 1;
  };
  auto value = [&](const Tensor& t, const TracedOp& op) {
    auto it = value_of.find(t.impl_ptr().get());
    FSTM_CHECK(it != value_of.end(), "inference plan: ", traced_kind_name(op.kind), " reads ", t.describe(),
               " which is neither the input nor the result of a traced op");
    return it->second;
  };
  g.input = new_value(input, "the input");
  for (const TracedOp& t : tracer.ops) {
    GraphOp op{};
    switch (t.kind) {
      case TracedKind::Conv2d:
        op = graph_op(GraphOpKind::Conv2d, {value(t.inputs[0], t)});
        op.conv = t.conv;
        op.weight = host_copy(t.inputs[1]);
        op.bias = host_copy(t.inputs[2]);
        break;
      case TracedKind::Linear:
        op = graph_op(GraphOpKind::Linear, {value(t.inputs[0], t)});
        op.weight = host_copy(t.inputs[1]);
        op.bias = host_copy(t.inputs[2]);
        break;
      case TracedKind::BatchNormEval:
        FSTM_CHECK(t.inputs[0].dim() == 4, "inference plan: BatchNorm on ", t.inputs[0].describe(),
                   " is not supported (only [N, H, W, C])");
        op = graph_op(GraphOpKind::BatchNorm, {value(t.inputs[0], t)});
        op.bn_gamma = host_copy(t.inputs[1]);
        op.bn_beta = host_copy(t.inputs[2]);
        op.bn_mean = host_copy(t.inputs[3]);
        op.bn_var = host_copy(t.inputs[4]);
        op.eps = t.eps;
        break;
      case TracedKind::MaxPool2d:
        op = graph_op(GraphOpKind::MaxPool2d, {value(t.inputs[0], t)});
        op.pool = t.pool;
        break;
      case TracedKind::GlobalAvgPool: op = graph_op(GraphOpKind::GlobalAvgPool, {value(t.inputs[0], t)}); break;
      case TracedKind::Activation:
        op = graph_op(GraphOpKind::Activation, {value(t.inputs[0], t)});
        op.activation = t.activation;
        break;
      case TracedKind::Affine:
        op = graph_op(GraphOpKind::Affine, {value(t.inputs[0], t)});
        op.alpha = t.alpha;
        op.beta = t.beta;
        break;
      case TracedKind::Add: op = graph_op(GraphOpKind::Add, {value(t.inputs[0], t), value(t.inputs[1], t)}); break;
      case TracedKind::Sub: op = graph_op(GraphOpKind::Sub, {value(t.inputs[0], t), value(t.inputs[1], t)}); break;
      case TracedKind::Mul: op = graph_op(GraphOpKind::Mul, {value(t.inputs[0], t), value(t.inputs[1], t)}); break;
      case TracedKind::MulChannel:
        op = graph_op(GraphOpKind::MulChannel, {value(t.inputs[0], t), value(t.inputs[1], t)});
        break;
      case TracedKind::Concat:
        op = graph_op(GraphOpKind::Concat, {});
        for (const Tensor& in : t.inputs) op.inputs.push_back(value(in, t));
        break;
      case TracedKind::Reshape: op = graph_op(GraphOpKind::Reshape, {value(t.inputs[0], t)}); break;
    }
    op.output = new_value(t.output, traced_kind_name(t.kind));
    g.ops.push_back(std::move(op));
  }
  auto it = value_of.find(output.impl_ptr().get());
  FSTM_CHECK(it != value_of.end(), "inference plan: the forward's result was not produced by a traced op");
  g.output = it->second;
  return g;
}

}  // namespace

InferenceGraph build_inference_graph(const Tracer& tracer, const Tensor& input, const Tensor& output, int64_t batch,
                                     bool fuse_ops) {
  InferenceGraph g = translate(tracer, input, output, batch);
  return fuse_ops ? fuse_inference_graph(g) : lower_batch_norms(std::move(g));
}

}  // namespace fstm
