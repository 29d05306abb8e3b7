// InferencePlan: a model's eval-mode forward pass, traced once and compiled for a fixed input
// shape, precision and device. It is how fstm runs inference fast (predict, eval, bench and the
// Shapley explainer's tens of thousands of forwards):
//   - on the CPU with oneDNN: BatchNorm folded, activations and residual adds fused as post-ops,
//     activations kept in oneDNN's blocked layouts from layer to layer, f32 or bf16;
//   - on CUDA: cuDNN convolutions in f32, bf16 or f16 (tensor cores), BatchNorm folded, bias,
//     residual adds and activations fused, the whole pass replayed as one CUDA graph;
//   - otherwise: the graph is run op by op with the engine's kernels (f32).
// See kernels/graph/inference_graph.h for the rewrite and kernels/graph/executor.h for the executors.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "kernels/graph/executor.h"
#include "layers/inference_graph.h"

namespace fstm {

class InferencePlan {
 public:
  using Forward = std::function<Tensor(const Tensor&)>;
  // Traces `forward` (the model must be in eval mode) on a batch of one image of
  // input_shape = [N, H, W, C] and compiles it for batch N. dtype f32, bf16 (on the CPU: needs
  // oneDNN) or f16 (CUDA only). On a CUDA device the model must live on that device.
  InferencePlan(const Forward& forward, const Shape& input_shape, DType dtype = DType::f32,
                Device device = Device::cpu());
  ~InferencePlan();

  // input [N, H, W, C] f32 -> output f32 (a fresh tensor).
  Tensor run(const Tensor& input);
  // Zero-copy use: write the input into input_buffer() (plan dtype, NHWC), then run_input_buffer();
  // the result is valid until the next run.
  Tensor input_buffer() { return executor_->input_buffer(); }
  Tensor run_input_buffer() { return executor_->run(); }

  const Shape& input_shape() const { return input_shape_; }
  DType dtype() const { return dtype_; }
  const InferenceGraph& graph() const { return graph_; }
  std::string backend() const { return executor_->name(); }

 private:
  Shape input_shape_;
  DType dtype_;
  InferenceGraph graph_;
  std::unique_ptr<InferenceExecutor> executor_;
};

}  // namespace fstm
