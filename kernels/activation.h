// Pointwise activations. Backward gets both the input x and the output y; each uses what its
// derivative needs (relu: y > 0, sigmoid: y (1 - y), silu: s (1 + x (1 - s)) with s = sigmoid(x)).
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

enum class Activation { Identity, Relu, Sigmoid, Silu };
const char* activation_name(Activation a);

#define FSTM_ACTIVATION_KERNELS                                                                  \
  void activation_forward(Activation a, const Tensor& x, Tensor& y);                             \
  /* dx = dy * f'(x)  (assign) */                                                                \
  void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y,     \
                           Tensor& dx);

FSTM_ACTIVATION_KERNELS
namespace ref { FSTM_ACTIVATION_KERNELS }
namespace cpu { FSTM_ACTIVATION_KERNELS }
namespace cuda { FSTM_ACTIVATION_KERNELS }

}  // namespace fstm::kernels
