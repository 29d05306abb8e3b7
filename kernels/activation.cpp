#include "kernels/activation.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Silu: return "silu";
  }
  return "?";
}

void activation_forward(Activation a, const Tensor& x, Tensor& y) { FSTM_DISPATCH(x, activation_forward, a, x, y); }
void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx) {
  FSTM_DISPATCH(dy, activation_backward, a, dy, x, y, dx);
}

}  // namespace fstm::kernels
