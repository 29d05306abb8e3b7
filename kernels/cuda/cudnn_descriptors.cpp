#include "kernels/cuda/cudnn_descriptors.h"

#include <climits>

#include "tensor/cuda/cuda_internal.h"

namespace fstm::kernels::cuda {

template <typename Handle, cudnnStatus_t (*Create)(Handle*), cudnnStatus_t (*Destroy)(Handle)>
CudnnDescriptor<Handle, Create, Destroy> CudnnDescriptor<Handle, Create, Destroy>::create() {
  CudnnDescriptor d;
  FSTM_CUDNN_CHECK(Create(&d.h_));
  return d;
}
template class CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
template class CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
template class CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                               cudnnDestroyConvolutionDescriptor>;
template class CudnnDescriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
                               cudnnDestroyActivationDescriptor>;

int cudnn_int(int64_t v, const std::string& op, const char* what) {
  FSTM_CHECK(v >= 0 && v <= INT_MAX, op, ": ", what, " ", v, " is too large for cuDNN");
  return int(v);
}

ConvDescriptors make_conv_descriptors(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p,
                                      cudnnDataType_t data, cudnnMathType_t math, const std::string& op) {
  auto i = [&](int64_t v, const char* what) { return cudnn_int(v, op, what); };
  ConvDescriptors d{TensorDescriptor::create(), TensorDescriptor::create(), FilterDescriptor::create(),
                    ConvolutionDescriptor::create()};
  FSTM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, data, i(x[0], "batch"), i(x[3], "channels"),
                                              i(x[1], "height"), i(x[2], "width")));
  FSTM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, data, i(y[0], "batch"), i(y[3], "channels"),
                                              i(y[1], "height"), i(y[2], "width")));
  FSTM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d.w, data, CUDNN_TENSOR_NHWC, i(w[0], "channels"), i(w[1], "channels"),
                                              i(w[2], "kernel"), i(w[3], "kernel")));
  // f32 accumulation for every data type (PSEUDO_HALF / PSEUDO_BFLOAT16 for f16 / bf16)
  FSTM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dilation_h,
                                                   p.dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  FSTM_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d.conv, p.groups));
  FSTM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, math));
  int n = 0, c = 0, h = 0, wd = 0;
  FSTM_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &h, &wd));
  FSTM_CHECK(n == y[0] && c == y[3] && h == y[1] && wd == y[2], op, ": cuDNN computes output [", n, ", ", h, ", ", wd,
             ", ", c, "] for input ", x.str(), " and weight ", w.str(), ", but the output is ", y.str());
  return d;
}

}  // namespace fstm::kernels::cuda
