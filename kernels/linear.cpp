#include "kernels/linear.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  FSTM_DISPATCH_ONEDNN(x, linear_forward, x, w, b, y);
}
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  FSTM_DISPATCH_ONEDNN(dy, linear_backward_data, dy, w, dx);
}
void linear_backward_weights(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db) {
  FSTM_DISPATCH_ONEDNN(dy, linear_backward_weights, dy, x, dw, db);
}

}  // namespace fstm::kernels
