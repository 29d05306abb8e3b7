#include "layers/inference.h"

#include "autograd/autograd.h"
#include "autograd/trace.h"
#include "tensor/environment.h"

namespace fstm {

InferencePlan::InferencePlan(const Forward& forward, const Shape& input_shape, DType dtype, Device device)
    : input_shape_(input_shape), dtype_(dtype) {
  FSTM_CHECK(input_shape.size() == 4 && input_shape[0] >= 1, "inference plan: input shape must be [N, H, W, C], got ",
             input_shape.str());
  FSTM_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16,
             "inference plan: dtype must be f32, bf16 or f16, got ", dtype_name(dtype));
  FSTM_CHECK(dtype != DType::f16 || device.is_cuda(), "inference plan: f16 runs on CUDA only (use bf16 on ",
             device.str(), ")");
  // Trace one image on the plan's device; the graph is specialised to batch N afterwards.
  Shape one = input_shape;
  one[0] = 1;
  Tracer tracer;
  Tensor x = Tensor::zeros(one, DType::f32, device);
  Tensor y;
  {
    NoGradGuard no_grad;
    TraceGuard guard(tracer);
    y = forward(x);
  }
  graph_ = build_inference_graph(tracer, x, y, input_shape[0]);
  // FSTM_INFERENCE_REFERENCE=1 runs every plan op by op with the eager kernels (for debugging).
  const bool force_reference = environment().inference_reference;
  if (!force_reference && device.is_cuda()) executor_ = make_cuda_executor(graph_, dtype, device);
  if (!force_reference && device.is_cpu()) executor_ = make_onednn_executor(graph_, dtype);
  if (!executor_) {
    FSTM_CHECK(dtype == DType::f32, "inference plan: ", dtype_name(dtype), " on ", device.str(),
               " needs the oneDNN (CPU) or CUDA executor; this run has neither");
    executor_ = make_reference_executor(graph_, device);
  }
}

InferencePlan::~InferencePlan() = default;

Tensor InferencePlan::run(const Tensor& input) {
  FSTM_CHECK(input.shape() == input_shape_, "inference plan compiled for ", input_shape_.str(), " got ",
             input.describe());
  Tensor in = executor_->input_buffer();
  if (in.dtype() == input.dtype()) {
    in.copy_(input);
  } else {
    in.copy_(input.to(in.dtype()));
  }
  return executor_->run().clone();
}

}  // namespace fstm
