#include "kernels/loss.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void softmax(const Tensor& x, Tensor& probs) { FSTM_DISPATCH(x, softmax, x, probs); }
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  FSTM_DISPATCH(logits, cross_entropy_forward, logits, labels, loss, probs);
}
void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  FSTM_DISPATCH(probs, cross_entropy_backward, dloss, probs, labels, dlogits);
}
void gather_rows(const Tensor& x, const Tensor& index, Tensor& y) { FSTM_DISPATCH(x, gather_rows, x, index, y); }
void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx) {
  FSTM_DISPATCH(dy, gather_rows_backward, dy, index, dx);
}

}  // namespace fstm::kernels
