// cuDNN descriptors as RAII handles (movable, not copyable), and the one convolution set-up that
// the eager conv2d (conv2d_cudnn.cpp) and the inference executor (inference_cuda.cpp) share:
// NHWC activations, OHWI filters, cross-correlation with f32 accumulation. Internal to
// kernels/cuda; needs cuDNN's header.
#pragma once
#include <cudnn.h>

#include <string>
#include <utility>

#include "kernels/conv2d.h"
#include "tensor/shape.h"

namespace fstm::kernels::cuda {

// Owns one descriptor: empty by default, create() makes one (FSTM_CUDNN_CHECK), the destructor
// destroys it. Converts to the raw handle, so it goes straight into cuDNN calls.
template <typename Handle, cudnnStatus_t (*Create)(Handle*), cudnnStatus_t (*Destroy)(Handle)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() = default;
  static CudnnDescriptor create();
  CudnnDescriptor(CudnnDescriptor&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CudnnDescriptor& operator=(CudnnDescriptor&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  ~CudnnDescriptor() { reset(); }
  operator Handle() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

 private:
  void reset() {
    if (h_) Destroy(h_);
    h_ = nullptr;
  }
  Handle h_ = nullptr;
};

using TensorDescriptor = CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;
using ActivationDescriptor =
    CudnnDescriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor>;

// A size as cuDNN's int, or fstm::Error naming `op` and `what` when it does not fit.
int cudnn_int(int64_t v, const std::string& op, const char* what);

// The descriptors of one convolution: x [N, H, W, Ci] and y [N, Ho, Wo, Co] NHWC, w [Co, Ci/groups,
// kH, kW] as OHWI, all of `data` type, accumulating in f32, with `math`.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
};
// Checks that cuDNN computes y's shape; errors name `op` (e.g. "conv2d", "inference plan on CUDA").
ConvDescriptors make_conv_descriptors(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p,
                                      cudnnDataType_t data, cudnnMathType_t math, const std::string& op);

// Whether one result of a cuDNN algorithm search (cudnnConvolution*AlgoPerf_t) may be used: it ran,
// it needs no tensor-op math unless `tensor_ops` allows it, and it is deterministic when
// `deterministic` asks for that (kernels/cuda_options.h).
template <typename Perf>
bool usable_algorithm(const Perf& perf, bool tensor_ops, bool deterministic) {
  if (perf.status != CUDNN_STATUS_SUCCESS) return false;
  if (!tensor_ops && (perf.mathType == CUDNN_TENSOR_OP_MATH || perf.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
    return false;
  return !deterministic || perf.determinism == CUDNN_DETERMINISTIC;
}

}  // namespace fstm::kernels::cuda
