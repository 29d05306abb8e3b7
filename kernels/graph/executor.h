// What runs a compiled inference graph (kernels/graph/inference_graph.h): the reference executor
// (the engine's kernels, op by op), the oneDNN one (kernels/cpu/inference_onednn.cpp) and the CUDA
// one (kernels/cuda/inference_cuda.cpp). layers/inference.h's InferencePlan picks one.
#pragma once
#include <memory>
#include <string>

#include "kernels/graph/inference_graph.h"

namespace fstm {

// What runs a compiled graph. Implementations: kernels/cpu/inference_onednn.cpp,
// kernels/cuda/inference_cuda.cpp and the reference executor (kernels/graph/executor.cpp).
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

}  // namespace fstm
