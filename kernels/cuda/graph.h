// CUDA graphs: capture the kernels a function queues on a device's compute stream once, then
// replay them with one launch. For the inference hot loop (Shapley sampling runs the same
// forward pass tens of thousands of times) where per-kernel launch overhead dominates.
//
// Rules (as for every CUDA graph):
//   - Run the function once eagerly before capturing it, so cuDNN picks its algorithms and the
//     workspaces exist (during a capture the heuristics are used instead of a timed search).
//   - The function may only queue device work: no copies to or from the host (to_vector, item,
//     from_vector), no synchronisation. Doing so ends the capture with an fstm::Error.
//   - Replay reads and writes the same memory as the capture: inputs are tensors created before
//     the capture and refilled (copy_) before each replay; outputs are tensors the function
//     stored outside itself. The graph keeps the memory it used reserved (a private pool of the
//     caching allocator) until it is destroyed.
//   - One capture at a time per device; nothing else may use the device while capturing.
//
// This header compiles without CUDA; in builds without it the constructor throws fstm::Error.
#pragma once
#include <functional>
#include <memory>

#include "tensor/device.h"

namespace fstm::kernels::cuda {

class CudaGraph {
 public:
  explicit CudaGraph(Device device = Device::cuda(0));
  ~CudaGraph();
  CudaGraph(CudaGraph&&) noexcept;
  CudaGraph& operator=(CudaGraph&&) noexcept;

  // Captures what fn queues on the compute stream and instantiates the graph. fn runs once
  // (its kernels are recorded, not executed). Throws fstm::Error when the capture fails.
  void capture(const std::function<void()>& fn);
  // Queues the captured work on the compute stream (asynchronous, like any kernel).
  void replay();
  bool captured() const;
  Device device() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fstm::kernels::cuda
