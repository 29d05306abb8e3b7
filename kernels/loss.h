// Softmax cross-entropy (torch.nn.functional.cross_entropy, mean reduction) and row gathers.
//   logits [N, K] f32, labels [N] i64 in [0, K)
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

#define FSTM_LOSS_KERNELS                                                                        \
  /* probs = softmax(x) along the last axis */                                                   \
  void softmax(const Tensor& x, Tensor& probs);                                                  \
  /* loss [] = mean_n -log softmax(logits)[n, labels[n]]; also writes probs [N, K] */           \
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,           \
                             Tensor& probs);                                                     \
  /* dlogits = (probs - onehot(labels)) * dloss / N  (assign); dloss is a one-element tensor */  \
  void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels,     \
                              Tensor& dlogits);                                                  \
  /* y[n] = x[n, index[n]] */                                                                    \
  void gather_rows(const Tensor& x, const Tensor& index, Tensor& y);                             \
  /* dx[n, k] = (k == index[n]) ? dy[n] : 0  (assign) */                                         \
  void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx);

FSTM_LOSS_KERNELS
namespace ref { FSTM_LOSS_KERNELS }
namespace cpu { FSTM_LOSS_KERNELS }
namespace cuda { FSTM_LOSS_KERNELS }

}  // namespace fstm::kernels
