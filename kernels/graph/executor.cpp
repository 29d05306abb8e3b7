#include "kernels/graph/executor.h"

#include "fstm_build_config.h"
#include "kernels/cuda_table.h"

namespace fstm {

namespace {

class ReferenceExecutor final : public InferenceExecutor {
 public:
  ReferenceExecutor(const InferenceGraph& graph, Device device)
      : graph_(graph), input_(Tensor::empty(graph.values[size_t(graph.input)], DType::f32, device)) {}
  Tensor input_buffer() override { return input_; }
  Tensor run() override { return run_inference_graph_reference(graph_, input_); }
  std::string name() const override { return std::string("reference ") + (input_.is_cuda() ? "cuda" : "cpu") + " f32"; }

 private:
  const InferenceGraph& graph_;
  Tensor input_;
};

}  // namespace

#if !FSTM_HAVE_ONEDNN
std::unique_ptr<InferenceExecutor> make_onednn_executor(const InferenceGraph&, DType) { return nullptr; }
#endif
std::unique_ptr<InferenceExecutor> make_cuda_executor(const InferenceGraph& graph, DType dtype, Device device,
                                                      const CudaExecutorOptions& options) {
  return kernels::cuda_kernels("CUDA inference plan").make_executor(graph, dtype, device, options);
}

std::unique_ptr<InferenceExecutor> make_reference_executor(const InferenceGraph& graph, Device device) {
  return std::make_unique<ReferenceExecutor>(graph, device);
}

}  // namespace fstm
