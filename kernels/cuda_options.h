// Numeric options of the CUDA kernels, callable in every build (no CUDA headers needed).
//
// TF32: Ampere and newer GPUs can run f32 convolutions and matrix products on tensor cores with
// inputs rounded to 10-bit mantissas (TF32), several times faster but accurate to only ~1e-3.
// fstm keeps f32 exact by default: cuDNN convolutions use CUDNN_FMA_MATH (CUDNN_DEFAULT_MATH would
// allow TF32 on these GPUs) and cuBLAS uses CUBLAS_DEFAULT_MATH (no TF32 for f32). After
// set_allow_tf32(true), convolutions use CUDNN_DEFAULT_MATH and matrix products
// CUBLAS_TF32_TENSOR_OP_MATH. The environment variable NVIDIA_TF32_OVERRIDE=0 still wins.
//
// Determinism: cuDNN offers convolution algorithms that accumulate with atomics (most backward
// filter and some backward data ones), whose results vary from run to run in the last bits. fstm
// takes only algorithms that cuDNN reports as CUDNN_DETERMINISTIC, so that two runs of a training
// step give the same bits, unless set_deterministic_algorithms(false) (fstm train
// --nondeterministic-algorithms) lets the search take the fastest of all.
#pragma once

namespace fstm::kernels::cuda {

void set_allow_tf32(bool allow);
bool allow_tf32();

void set_deterministic_algorithms(bool deterministic);
bool deterministic_algorithms();  // true unless set otherwise

}  // namespace fstm::kernels::cuda
