#include "kernels/optim.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p) {
  FSTM_DISPATCH(param, sgd_step, param, grad, momentum_buf, p);
}
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWParams& p) {
  FSTM_DISPATCH(param, adamw_step, param, grad, exp_avg, exp_avg_sq, p);
}

}  // namespace fstm::kernels
