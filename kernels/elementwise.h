// Elementwise and shape ops: add, multiply (same shape, per channel, per sample), affine with
// scalars, concatenation along the last axis, dropout masks, reductions to a scalar.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fstm::kernels {

#define FSTM_ELEMENTWISE_KERNELS                                                                 \
  void add(const Tensor& a, const Tensor& b, Tensor& y);           /* y = a + b */               \
  void add_inplace(Tensor& y, const Tensor& x);                    /* y += x   */                \
  void mul(const Tensor& a, const Tensor& b, Tensor& y);           /* y = a * b */               \
  /* y = alpha * x + beta, scalars */                                                            \
  void affine(const Tensor& x, float alpha, float beta, Tensor& y);                              \
  /* x [N, ..., C], s [N, C]: y = x * s broadcast over the middle axes (SE scaling) */          \
  void mul_channel(const Tensor& x, const Tensor& s, Tensor& y);                                 \
  /* gradient of mul_channel w.r.t. s: ds[n,c] = sum over middle axes of dy * x  (assign) */    \
  void mul_channel_backward_scale(const Tensor& dy, const Tensor& x, Tensor& ds);                \
  /* x [N, ...], s [N]: y = x * s[n] (per-sample scaling, stochastic depth) */                  \
  void mul_sample(const Tensor& x, const Tensor& s, Tensor& y);                                  \
  /* inputs [..., C_i] with equal leading axes -> y [..., sum C_i] */                            \
  void concat_last(const std::vector<Tensor>& inputs, Tensor& y);                                \
  /* the inverse: slices of the last axis of y, each assigned */                                 \
  void split_last(const Tensor& y, std::vector<Tensor>& outputs);                                \
  /* sum of all elements into a one-element tensor */                                            \
  void sum_all(const Tensor& x, Tensor& y);

FSTM_ELEMENTWISE_KERNELS
namespace ref { FSTM_ELEMENTWISE_KERNELS }
namespace cpu { FSTM_ELEMENTWISE_KERNELS }
namespace cuda { FSTM_ELEMENTWISE_KERNELS }

}  // namespace fstm::kernels
