// Kernel backends and how an op picks one.
//
// Every op has up to three implementations with the same signature, side by side:
//   kernels::ref::  plain loops with shape comments — the oracle (kernels/cpu/reference/)
//   kernels::cpu::  the fast CPU path: oneDNN for conv/BN/pool/matmul, OpenMP loops elsewhere
//   kernels::cuda:: cuDNN, cuBLAS and own CUDA kernels (kernels/cuda/)
// The entry point without a namespace prefix (kernels::conv2d_forward, ...) dispatches on the
// tensors' device and on the CPU path chosen here.
//
// Conventions for every kernel:
//   - outputs are preallocated by the caller with the right shape and dtype;
//   - backward kernels assign (=) activation gradients and accumulate (+=) parameter gradients;
//   - activations are channels-last, [N, H, W, C]; all training tensors are f32.
#pragma once

namespace fstm::kernels {

enum class CpuPath { Fast, Reference };

// Default Fast; the environment variable FSTM_REFERENCE_KERNELS=1 selects Reference.
void set_cpu_path(CpuPath path);
CpuPath cpu_path();
inline bool use_reference() { return cpu_path() == CpuPath::Reference; }

// Thread count for OpenMP loops and oneDNN (both use the same OpenMP runtime).
void set_num_threads(int n);
int num_threads();

}  // namespace fstm::kernels
