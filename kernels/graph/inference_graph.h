// The inference graph: an eval-mode forward pass as a list of ops on shaped values, rewritten for
// speed. It sits with the kernels because it depends only on them and on tensor:
//
//   layers/inference_graph.h (trace a Module -> graph)  ->  fuse_inference_graph() (below)
//   ->  an executor (kernels/graph/executor.h: reference, oneDNN, CUDA)
//
// The rewrite is the classic one for convolutional networks at inference time:
//   1. BatchNorm after a convolution is folded into the convolution's weights and bias:
//        w' = w * gamma / sqrt(var + eps),  b' = (b - mean) * gamma / sqrt(var + eps) + beta
//   2. An activation after a convolution or linear layer becomes an elementwise post-op.
//   3. A residual add after a convolution becomes a "sum" post-op: the convolution accumulates
//      into the buffer that holds the other operand, then any following activation is applied.
// Every op keeps the engine's shapes (activations [N, H, W, C], features [N, C]).
#pragma once
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/conv2d.h"
#include "kernels/pool.h"
#include "tensor/tensor.h"

namespace fstm {

struct PostOp {
  enum class Kind { Activation, Sum };
  Kind kind = Kind::Activation;
  kernels::Activation activation = kernels::Activation::Identity;
  int sum_value = -1;  // Sum: the value added into the output (its buffer is reused when possible)
};

enum class GraphOpKind {
  Conv2d, Linear, BatchNorm, MaxPool2d, GlobalAvgPool, Activation, Affine, Add, Sub, Mul, MulChannel, Concat, Reshape
};
const char* graph_op_name(GraphOpKind k);

struct GraphOp {
  GraphOpKind kind;
  std::vector<int> inputs;  // value ids (activations only; weights are held below)
  int output = -1;
  kernels::Conv2dParams conv;
  kernels::Pool2dParams pool;
  kernels::Activation activation = kernels::Activation::Identity;
  float alpha = 1.0f, beta = 0.0f;  // Affine
  Tensor weight, bias;              // Conv2d / Linear, f32 on the CPU, BatchNorm folded in
  Tensor bn_gamma, bn_beta, bn_mean, bn_var;  // BatchNorm (only before the rewrite)
  float eps = 0.0f;
  std::vector<PostOp> post_ops;     // Conv2d / Linear
  std::string describe() const;
};

struct InferenceGraph {
  std::vector<Shape> values;  // shape of every value, batch-specialised
  int input = -1;             // the image batch
  int output = -1;            // what the forward returned
  std::vector<GraphOp> ops;   // in execution order
  std::string summary() const;  // one line per op, for logs and docs
};

// Applies the three rewrites above. An op is merged into the op that produced its input only when it
// is that value's sole reader; a BatchNorm left over becomes a depthwise 1x1 convolution.
InferenceGraph fuse_inference_graph(const InferenceGraph& graph);
// Only the last step of the rewrite: every BatchNorm becomes a depthwise 1x1 convolution (for
// checking the rewrite against the unfused graph).
InferenceGraph lower_batch_norms(InferenceGraph graph);

// Runs the graph with the engine's own kernels (kernels::*), one op at a time. It is the oracle
// for faster executors and the fallback when oneDNN is absent.
Tensor run_inference_graph_reference(const InferenceGraph& graph, const Tensor& input);

}  // namespace fstm
