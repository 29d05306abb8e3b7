// Differentiable functions: each runs its kernel and, when gradients are wanted, records a Node
// whose backward calls the backward kernels. Models are written with these (layers/).
//
// Shapes follow the engine's convention: activations [N, H, W, C], features [N, C].
#pragma once
#include <vector>

#include "kernels/activation.h"
#include "kernels/conv2d.h"
#include "kernels/pool.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fstm::ops {

using kernels::Activation;
using kernels::Conv2dParams;
using kernels::Pool2dParams;

// ---- layers --------------------------------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
// In training mode, uses batch statistics and updates running_mean/running_var in place.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps);
// ResNet's epilogue: relu(batch_norm(x) + residual), residual optional. In training mode one fused
// op (four memory passes fewer per block); in eval mode exactly those ops, so inference plans see
// (and fold) a plain batch norm.
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, bool training, float momentum, float eps,
                       const Tensor& residual = Tensor());
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor global_avg_pool(const Tensor& x);  // [N, H, W, C] -> [N, C]

// ---- activations ---------------------------------------------------------------------------
Tensor activation(Activation a, const Tensor& x);
inline Tensor relu(const Tensor& x) { return activation(Activation::Relu, x); }
inline Tensor sigmoid(const Tensor& x) { return activation(Activation::Sigmoid, x); }
inline Tensor silu(const Tensor& x) { return activation(Activation::Silu, x); }

// ---- arithmetic ----------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor affine(const Tensor& x, float alpha, float beta);  // alpha * x + beta
inline Tensor scale(const Tensor& x, float alpha) { return affine(x, alpha, 0.0f); }
inline Tensor one_minus(const Tensor& x) { return affine(x, -1.0f, 1.0f); }
Tensor mul_channel(const Tensor& x, const Tensor& s);  // x [N, ..., C] * s [N, C]
Tensor mul_sample(const Tensor& x, const Tensor& s);   // x [N, ...] * s [N]
Tensor sum(const Tensor& x);                            // -> one-element tensor, shape []
Tensor mean(const Tensor& x);

// ---- shape ---------------------------------------------------------------------------------
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x);                     // [N, ...] -> [N, rest]
Tensor concat_last(const std::vector<Tensor>& xs);   // along the last axis (channels)

// ---- regularisation --------------------------------------------------------------------------
// Zeroes elements with probability p and scales the rest by 1/(1-p) in training; identity otherwise.
Tensor dropout(const Tensor& x, float p, bool training, Rng& rng);
// Stochastic depth (torchvision StochasticDepth, mode "row"): drops whole samples.
Tensor drop_path(const Tensor& x, float p, bool training, Rng& rng);

// ---- losses --------------------------------------------------------------------------------
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);  // mean over the batch
Tensor gather_rows(const Tensor& x, const Tensor& index);          // y[n] = x[n, index[n]]
Tensor softmax(const Tensor& x);                                   // not differentiable

}  // namespace fstm::ops
