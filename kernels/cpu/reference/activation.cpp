// Reference activations.
#include <cmath>

#include "kernels/activation.h"

namespace fstm::kernels::ref {

namespace {
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double v = px[i];
    switch (a) {
      case Activation::Identity: py[i] = float(v); break;
      case Activation::Relu: py[i] = v > 0 ? float(v) : 0.0f; break;
      case Activation::Sigmoid: py[i] = float(sigmoid(v)); break;
      case Activation::Silu: py[i] = float(v * sigmoid(v)); break;
    }
  }
}

void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx) {
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t i = 0; i < dy.numel(); ++i) {
    switch (a) {
      case Activation::Identity: pdx[i] = pdy[i]; break;
      case Activation::Relu: pdx[i] = y.data<float>()[i] > 0 ? pdy[i] : 0.0f; break;
      case Activation::Sigmoid: {
        const double s = y.data<float>()[i];
        pdx[i] = float(pdy[i] * s * (1.0 - s));
        break;
      }
      case Activation::Silu: {
        const double v = x.data<float>()[i], s = sigmoid(v);
        pdx[i] = float(pdy[i] * s * (1.0 + v * (1.0 - s)));
        break;
      }
    }
  }
}

}  // namespace fstm::kernels::ref
