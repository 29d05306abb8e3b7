// The CUDA kernels as libfstm reaches them: a table of function pointers that libfstm_cuda.so
// fills and registers from a static initialiser when it is loaded (tensor/device.h), so that
// libfstm itself links no CUDA library and runs on machines without one.
//
// One entry per kernel that a header in kernels/ declares for cuda:: (the X-macros stamped into
// `namespace cuda`), in header order; tests/check_kernel_table.py checks the list against the
// headers, so a kernel added to a header and forgotten here fails a test. The dispatcher
// (kernels/dispatch.h) calls cuda_kernels().fn(...) for CUDA tensors.
#pragma once
#include <memory>

#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/graph/executor.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/shapley_mask.h"

namespace fstm::kernels {

#define FSTM_CUDA_KERNEL_NAMES(X)                                                                 \
  X(activation_forward) X(activation_backward)                                                    \
  X(batch_norm_forward_train) X(batch_norm_backward_train) X(batch_norm_forward_eval)             \
  X(batch_norm_backward_eval) X(batch_norm_relu_forward_train) X(batch_norm_relu_backward_train)  \
  X(conv2d_forward) X(conv2d_backward_data) X(conv2d_backward_weights)                            \
  X(add) X(add_inplace) X(mul) X(affine) X(mul_channel) X(mul_channel_backward_scale)             \
  X(mul_sample) X(concat_last) X(split_last) X(sum_all)                                           \
  X(linear_forward) X(linear_backward_data) X(linear_backward_weights)                            \
  X(cross_entropy_forward) X(cross_entropy_backward) X(gather_rows) X(gather_rows_backward)       \
  X(softmax)                                                                                      \
  X(adamw_step) X(sgd_step)                                                                       \
  X(global_avg_pool_forward) X(global_avg_pool_backward) X(max_pool2d_forward)                    \
  X(max_pool2d_backward)                                                                          \
  X(shapley_mask)

namespace cuda {
// The CUDA inference executor (kernels/cuda/inference_cuda.cpp); make_cuda_executor() calls it.
std::unique_ptr<InferenceExecutor> make_executor(const InferenceGraph& graph, DType dtype, Device device,
                                                 const CudaExecutorOptions& options);
}  // namespace cuda

struct CudaKernelTable {
#define FSTM_CUDA_TABLE_ENTRY(fn) decltype(&cuda::fn) fn = nullptr;
  FSTM_CUDA_KERNEL_NAMES(FSTM_CUDA_TABLE_ENTRY)
#undef FSTM_CUDA_TABLE_ENTRY
  decltype(&cuda::make_executor) make_executor = nullptr;
};

// Called by libfstm_cuda.so when it is loaded.
void register_cuda_kernels(const CudaKernelTable* table);
// The registered table, opening libfstm_cuda.so on first use. Throws fstm::Error naming `what`
// (the kernel asked for) and why there is no CUDA (tensor/device.h cuda_status()).
const CudaKernelTable& cuda_kernels(const char* what);

}  // namespace fstm::kernels
