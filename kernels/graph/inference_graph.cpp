#include "kernels/graph/inference_graph.h"

#include <cmath>
#include <map>
#include <sstream>

#include "kernels/elementwise.h"
#include "kernels/linear.h"

namespace fstm {

const char* graph_op_name(GraphOpKind k) {
  switch (k) {
    case GraphOpKind::Conv2d: return "conv2d";
    case GraphOpKind::Linear: return "linear";
    case GraphOpKind::BatchNorm: return "batch_norm";
    case GraphOpKind::MaxPool2d: return "max_pool2d";
    case GraphOpKind::GlobalAvgPool: return "global_avg_pool";
    case GraphOpKind::Activation: return "activation";
    case GraphOpKind::Affine: return "affine";
    case GraphOpKind::Add: return "add";
    case GraphOpKind::Sub: return "sub";
    case GraphOpKind::Mul: return "mul";
    case GraphOpKind::MulChannel: return "mul_channel";
    case GraphOpKind::Concat: return "concat";
    case GraphOpKind::Reshape: return "reshape";
  }
  return "?";
}

std::string GraphOp::describe() const {
  std::ostringstream s;
  s << graph_op_name(kind);
  if (kind == GraphOpKind::Activation) s << "(" << kernels::activation_name(activation) << ")";
  if (kind == GraphOpKind::Conv2d)
    s << " " << weight.size(3) << "x" << weight.size(2) << "/" << conv.stride_h << " " << weight.size(1) * conv.groups
      << "->" << weight.size(0) << (conv.groups > 1 ? " groups " + std::to_string(conv.groups) : "");
  s << " (";
  for (size_t i = 0; i < inputs.size(); ++i) s << (i ? ", " : "") << "v" << inputs[i];
  s << ") -> v" << output;
  for (const PostOp& p : post_ops) {
    if (p.kind == PostOp::Kind::Sum) s << " +sum(v" << p.sum_value << ")";
    else s << " +" << kernels::activation_name(p.activation);
  }
  return s.str();
}

std::string InferenceGraph::summary() const {
  std::ostringstream s;
  s << "input v" << input << " " << values[input].str() << "\n";
  for (const GraphOp& op : ops) s << "  " << op.describe() << "  " << values[op.output].str() << "\n";
  s << "output v" << output << "\n";
  return s.str();
}

namespace {

// Folds an eval-mode BatchNorm into the preceding convolution (see the header comment).
void fold_batch_norm(GraphOp& conv, const GraphOp& bn) {
  const int64_t C = conv.weight.size(0);
  const std::vector<float> gamma = bn.bn_gamma.to_vector(), beta = bn.bn_beta.to_vector();
  const std::vector<float> mean = bn.bn_mean.to_vector(), var = bn.bn_var.to_vector();
  std::vector<float> w = conv.weight.to_vector();
  std::vector<float> b = conv.bias.defined() ? conv.bias.to_vector() : std::vector<float>(size_t(C), 0.0f);
  const int64_t per_channel = conv.weight.numel() / C;
  for (int64_t c = 0; c < C; ++c) {
    const double scale = double(gamma[size_t(c)]) / std::sqrt(double(var[size_t(c)]) + double(bn.eps));
    for (int64_t i = 0; i < per_channel; ++i) {
      float& wi = w[size_t(c * per_channel + i)];
      wi = float(wi * scale);
    }
    b[size_t(c)] = float((double(b[size_t(c)]) - mean[size_t(c)]) * scale + beta[size_t(c)]);
  }
  conv.weight = Tensor::from_vector(w, conv.weight.shape());
  conv.bias = Tensor::from_vector(b, Shape{C});
}

// A BatchNorm with no convolution to fold into becomes a depthwise 1x1 convolution.
GraphOp batch_norm_as_depthwise(const GraphOp& bn) {
  const int64_t C = bn.bn_gamma.numel();
  GraphOp op{};
  op.kind = GraphOpKind::Conv2d;
  op.inputs = bn.inputs;
  op.output = bn.output;
  op.conv.groups = int(C);
  op.weight = Tensor::full(Shape{C, 1, 1, 1}, 1.0f);
  op.bias = Tensor::zeros(Shape{C});
  fold_batch_norm(op, bn);
  return op;
}

bool has_sum(const GraphOp& op) {
  for (const PostOp& p : op.post_ops)
    if (p.kind == PostOp::Kind::Sum) return true;
  return false;
}

}  // namespace

// The three rewrites in one pass over the ops in execution order. An op is merged into the op that
// produced its input only when it is that value's sole reader, so no other op can observe the value
// disappearing.
InferenceGraph fuse_inference_graph(const InferenceGraph& in) {
  std::vector<int> uses(in.values.size(), 0);
  for (const GraphOp& op : in.ops)
    for (int v : op.inputs) ++uses[size_t(v)];
  ++uses[size_t(in.output)];

  InferenceGraph g;
  g.values = in.values;
  g.input = in.input;
  g.output = in.output;
  std::vector<int> producer(in.values.size(), -1);  // index into g.ops
  auto sole_reader_of_conv = [&](int v, bool allow_linear) {
    const int p = producer[size_t(v)];
    if (p < 0 || uses[size_t(v)] != 1) return -1;
    const GraphOpKind k = g.ops[size_t(p)].kind;
    return (k == GraphOpKind::Conv2d || (allow_linear && k == GraphOpKind::Linear)) ? p : -1;
  };
  for (const GraphOp& op : in.ops) {
    int merged_into = -1;
    if (op.kind == GraphOpKind::BatchNorm) {
      const int p = sole_reader_of_conv(op.inputs[0], false);
      if (p >= 0 && g.ops[size_t(p)].post_ops.empty()) {
        fold_batch_norm(g.ops[size_t(p)], op);
        merged_into = p;
      }
    } else if (op.kind == GraphOpKind::Activation) {
      const int p = sole_reader_of_conv(op.inputs[0], true);
      if (p >= 0) {
        PostOp post;
        post.activation = op.activation;
        g.ops[size_t(p)].post_ops.push_back(post);
        merged_into = p;
      }
    } else if (op.kind == GraphOpKind::Add) {
      for (int side = 0; side < 2 && merged_into < 0; ++side) {
        const int a = op.inputs[size_t(side)], b = op.inputs[size_t(1 - side)];
        const int p = sole_reader_of_conv(a, false);
        // The other operand is accumulated into, so it must exist before the convolution runs.
        if (p >= 0 && a != b && !has_sum(g.ops[size_t(p)]) && producer[size_t(b)] < p) {
          PostOp post;
          post.kind = PostOp::Kind::Sum;
          post.sum_value = b;
          g.ops[size_t(p)].post_ops.push_back(post);
          merged_into = p;
        }
      }
    }
    if (merged_into >= 0) {
      g.ops[size_t(merged_into)].output = op.output;
      producer[size_t(op.output)] = merged_into;
      continue;
    }
    g.ops.push_back(op.kind == GraphOpKind::BatchNorm ? batch_norm_as_depthwise(op) : op);
    producer[size_t(op.output)] = int(g.ops.size()) - 1;
  }
  return g;
}

InferenceGraph lower_batch_norms(InferenceGraph g) {
  for (GraphOp& op : g.ops)
    if (op.kind == GraphOpKind::BatchNorm) op = batch_norm_as_depthwise(op);
  return g;
}

Tensor run_inference_graph_reference(const InferenceGraph& g, const Tensor& input) {
  FSTM_CHECK(input.shape() == g.values[size_t(g.input)], "inference plan expects input ",
             g.values[size_t(g.input)].str(), ", got ", input.describe());
  std::vector<Tensor> v(g.values.size());
  v[size_t(g.input)] = input;
  for (const GraphOp& op : g.ops) {
    Tensor y = Tensor::empty(g.values[size_t(op.output)], DType::f32, input.device());
    const Tensor& x = v[size_t(op.inputs[0])];
    switch (op.kind) {
      case GraphOpKind::Conv2d: {
        const Tensor w = op.weight.to(input.device()), b = op.bias.defined() ? op.bias.to(input.device()) : Tensor();
        kernels::conv2d_forward(x, w, b, op.conv, y);
        break;
      }
      case GraphOpKind::Linear: {
        const Tensor w = op.weight.to(input.device()), b = op.bias.defined() ? op.bias.to(input.device()) : Tensor();
        kernels::linear_forward(x.reshape(Shape{x.size(0), x.numel() / x.size(0)}), w, b, y);
        break;
      }
      case GraphOpKind::MaxPool2d: kernels::max_pool2d_forward(x, op.pool, y); break;
      case GraphOpKind::GlobalAvgPool: kernels::global_avg_pool_forward(x, y); break;
      case GraphOpKind::Activation: kernels::activation_forward(op.activation, x, y); break;
      case GraphOpKind::Affine: kernels::affine(x, op.alpha, op.beta, y); break;
      case GraphOpKind::Add: kernels::add(x, v[size_t(op.inputs[1])], y); break;
      case GraphOpKind::Sub: {
        Tensor nb = Tensor::empty(x.shape(), DType::f32, x.device());
        kernels::affine(v[size_t(op.inputs[1])], -1.0f, 0.0f, nb);
        kernels::add(x, nb, y);
        break;
      }
      case GraphOpKind::Mul: kernels::mul(x, v[size_t(op.inputs[1])], y); break;
      case GraphOpKind::MulChannel: kernels::mul_channel(x, v[size_t(op.inputs[1])], y); break;
      case GraphOpKind::Concat: {
        std::vector<Tensor> xs;
        for (int in : op.inputs) xs.push_back(v[size_t(in)]);
        kernels::concat_last(xs, y);
        break;
      }
      case GraphOpKind::Reshape: y = x.reshape(y.shape()); break;
      case GraphOpKind::BatchNorm: throw Error("inference plan: unlowered batch_norm");
    }
    for (const PostOp& p : op.post_ops) {
      if (p.kind == PostOp::Kind::Sum) kernels::add_inplace(y, v[size_t(p.sum_value)]);
      else kernels::activation_forward(p.activation, y, y);
    }
    v[size_t(op.output)] = y;
  }
  return v[size_t(g.output)];
}

}  // namespace fstm
