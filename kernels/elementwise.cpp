#include "kernels/elementwise.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

void add(const Tensor& a, const Tensor& b, Tensor& y) { FSTM_DISPATCH(y, add, a, b, y); }
void add_inplace(Tensor& y, const Tensor& x) { FSTM_DISPATCH(y, add_inplace, y, x); }
void mul(const Tensor& a, const Tensor& b, Tensor& y) { FSTM_DISPATCH(y, mul, a, b, y); }
void affine(const Tensor& x, float alpha, float beta, Tensor& y) {
  FSTM_DISPATCH(y, affine, x, alpha, beta, y);
}
void mul_channel(const Tensor& x, const Tensor& s, Tensor& y) { FSTM_DISPATCH(y, mul_channel, x, s, y); }
void mul_channel_backward_scale(const Tensor& dy, const Tensor& x, Tensor& ds) {
  FSTM_DISPATCH(ds, mul_channel_backward_scale, dy, x, ds);
}
void mul_sample(const Tensor& x, const Tensor& s, Tensor& y) { FSTM_DISPATCH(y, mul_sample, x, s, y); }
void concat_last(const std::vector<Tensor>& inputs, Tensor& y) { FSTM_DISPATCH(y, concat_last, inputs, y); }
void split_last(const Tensor& y, std::vector<Tensor>& outputs) { FSTM_DISPATCH(y, split_last, y, outputs); }
void sum_all(const Tensor& x, Tensor& y) { FSTM_DISPATCH(x, sum_all, x, y); }

}  // namespace fstm::kernels
