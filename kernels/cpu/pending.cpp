// TEMPORARY: fast CPU paths not written yet forward to the reference kernels. Each function here
// is removed when its fast version lands in kernels/cpu/<op>.cpp.
#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/loss.h"
#include "kernels/optim.h"
#include "kernels/pool.h"

namespace fstm::kernels::cpu {

void activation_forward(Activation a, const Tensor& x, Tensor& y) { ref::activation_forward(a, x, y); }
void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx) {
  ref::activation_backward(a, dy, x, y, dx);
}
void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& save_mean,
                              Tensor& save_invstd) {
  ref::batch_norm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd);
}
void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, float eps, Tensor& y) {
  ref::batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps, y);
}
void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                               const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  ref::batch_norm_backward_train(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}
void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& running_mean,
                              const Tensor& running_var, float eps, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  ref::batch_norm_backward_eval(dy, x, gamma, running_mean, running_var, eps, dx, dgamma, dbeta);
}
void global_avg_pool_forward(const Tensor& x, Tensor& y) { ref::global_avg_pool_forward(x, y); }
void global_avg_pool_backward(const Tensor& dy, Tensor& dx) { ref::global_avg_pool_backward(dy, dx); }
void softmax(const Tensor& x, Tensor& probs) { ref::softmax(x, probs); }
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  ref::cross_entropy_forward(logits, labels, loss, probs);
}
void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  ref::cross_entropy_backward(dloss, probs, labels, dlogits);
}
void gather_rows(const Tensor& x, const Tensor& index, Tensor& y) { ref::gather_rows(x, index, y); }
void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx) { ref::gather_rows_backward(dy, index, dx); }
void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p) {
  ref::sgd_step(param, grad, momentum_buf, p);
}
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWParams& p) {
  ref::adamw_step(param, grad, exp_avg, exp_avg_sq, p);
}

}  // namespace fstm::kernels::cpu
