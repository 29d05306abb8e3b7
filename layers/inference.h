// InferencePlan: a model's eval-mode forward pass, traced once and compiled for a fixed input
// shape, precision and device. It is how fstm runs inference fast (predict, eval, bench and the
// Shapley explainer's tens of thousands of forwards):
//   - on the CPU with oneDNN: BatchNorm folded, activations and residual adds fused as post-ops,
//     activations kept in oneDNN's blocked layouts from layer to layer, f32 or bf16;
//   - on CUDA: cuDNN convolutions in f32, bf16 or f16 (tensor cores), BatchNorm folded, bias,
//     residual adds and activations fused, the whole pass replayed as one CUDA graph;
//   - otherwise: the graph is run op by op with the engine's kernels (f32).
// See layers/inference_graph.h for the rewrite.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "layers/inference_graph.h"

namespace fstm {

// What runs a compiled graph. Implementations: kernels/cpu/inference_onednn.cpp,
// kernels/cuda/inference_cuda.cpp and the reference executor in layers/inference.cpp.
class InferenceExecutor {
 public:
  virtual ~InferenceExecutor() = default;
  // The buffer the plan reads its input from: [N, H, W, C] in the plan's dtype, on its device.
  virtual Tensor input_buffer() = 0;
  // Runs on whatever input_buffer() holds; returns the output (f32), valid until the next run.
  virtual Tensor run() = 0;
  virtual std::string name() const = 0;
};

std::unique_ptr<InferenceExecutor> make_reference_executor(const InferenceGraph& graph, Device device);
// nullptr when fstm was built without oneDNN.
std::unique_ptr<InferenceExecutor> make_onednn_executor(const InferenceGraph& graph, DType dtype);

// The CUDA executor (kernels/cuda/inference_cuda.cpp): f32, bf16 or f16 activations (NHWC),
// cuDNN convolutions with fused epilogues, and the whole pass replayed as one CUDA graph.
struct CudaExecutorOptions {
  bool graphs = true;      // capture run() into a CUDA graph (also off with FSTM_CUDA_GRAPHS=0)
  bool fused_conv = true;  // try cudnnConvolutionBiasActivationForward (also off with FSTM_CUDNN_FUSED=0)
};
// Throws fstm::Error in builds without CUDA.
std::unique_ptr<InferenceExecutor> make_cuda_executor(const InferenceGraph& graph, DType dtype, Device device,
                                                      const CudaExecutorOptions& options = {});

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
