// Internal: how the un-prefixed kernel entry points pick a backend. Included by kernels/*.cpp only.
#pragma once
#include "fstm_build_config.h"
#include "kernels/backend.h"
#include "kernels/cuda_table.h"
#include "tensor/error.h"

// CUDA tensors go to kernels::cuda through the table libfstm_cuda.so registers when it is loaded
// (kernels/cuda_table.h); without it, the call fails clearly, saying why there is no CUDA.
#define FSTM_CUDA_CALL(fn, ...) ::fstm::kernels::cuda_kernels(#fn).fn(__VA_ARGS__)

// Ops whose fast CPU path is oneDNN fall back to the reference loops in builds without it.
#if FSTM_HAVE_ONEDNN
#define FSTM_ONEDNN_CALL(fn, ...) cpu::fn(__VA_ARGS__)
#else
#define FSTM_ONEDNN_CALL(fn, ...) ref::fn(__VA_ARGS__)
#endif

// Dispatch on the device of `on`: cuda, the fast CPU path, or the reference path.
#define FSTM_DISPATCH(on, fn, ...)                 \
  do {                                             \
    if ((on).is_cuda()) {                          \
      FSTM_CUDA_CALL(fn, __VA_ARGS__);             \
    } else if (::fstm::kernels::use_reference()) { \
      ref::fn(__VA_ARGS__);                        \
    } else {                                       \
      cpu::fn(__VA_ARGS__);                        \
    }                                              \
  } while (0)

#define FSTM_DISPATCH_ONEDNN(on, fn, ...)          \
  do {                                             \
    if ((on).is_cuda()) {                          \
      FSTM_CUDA_CALL(fn, __VA_ARGS__);             \
    } else if (::fstm::kernels::use_reference()) { \
      ref::fn(__VA_ARGS__);                        \
    } else {                                       \
      FSTM_ONEDNN_CALL(fn, __VA_ARGS__);           \
    }                                              \
  } while (0)
