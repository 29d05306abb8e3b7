// Liveness-based buffer assignment for the inference executors (kernels/cpu/inference_onednn.cpp,
// kernels/cuda/inference_cuda.cpp): a value occupies a buffer from the step that first touches it
// to the step that last does, and a buffer is handed to a later value once every value in it is
// dead. A ResNet then needs a handful of activation buffers instead of one per layer.
#pragma once
#include <cstddef>
#include <vector>

namespace fstm {

struct BufferRequest {
  size_t bytes = 0;
  int first = -1;  // first step that touches the value; < 0 = never touched (gets no buffer)
  int last = -1;   // last step that touches it
};

struct BufferPlan {
  std::vector<int> buffer_of;        // per request: index into buffer_bytes, -1 when untouched
  std::vector<size_t> buffer_bytes;  // size of each buffer (the largest value it holds)
};

// Values are placed in order of first use; each takes the smallest dead buffer that is large
// enough (a buffer is dead for a value when all its values' last step < the value's first step),
// or a new one. Values live in one step at the same time never share a buffer.
BufferPlan plan_buffers(const std::vector<BufferRequest>& requests);

}  // namespace fstm
