#include "kernels/batch_norm.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& save_mean,
                              Tensor& save_invstd) {
  FSTM_DISPATCH(x, batch_norm_forward_train, x, gamma, beta, running_mean, running_var, momentum, eps, y,
                save_mean, save_invstd);
}
void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, float eps, Tensor& y) {
  FSTM_DISPATCH(x, batch_norm_forward_eval, x, gamma, beta, running_mean, running_var, eps, y);
}
void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                               const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  FSTM_DISPATCH(x, batch_norm_backward_train, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}
void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& running_mean,
                              const Tensor& running_var, float eps, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  FSTM_DISPATCH(x, batch_norm_backward_eval, dy, x, gamma, running_mean, running_var, eps, dx, dgamma, dbeta);
}

void batch_norm_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual,
                                   Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd) {
  FSTM_DISPATCH(x, batch_norm_relu_forward_train, x, gamma, beta, residual, running_mean, running_var, momentum, eps,
                y, save_mean, save_invstd);
}
void batch_norm_relu_backward_train(const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx, Tensor& dgamma,
                                    Tensor& dbeta, Tensor& dresidual) {
  FSTM_DISPATCH(x, batch_norm_relu_backward_train, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                dresidual);
}

}  // namespace fstm::kernels
