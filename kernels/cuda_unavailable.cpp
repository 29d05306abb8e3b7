// kernels/cuda/graph.h in builds without CUDA: a graph cannot be made. (With CUDA it lives in
// kernels/cuda/graph.cpp.)
#include "fstm_build_config.h"

#if !FSTM_HAVE_CUDA

#include "kernels/cuda/graph.h"
#include "tensor/error.h"

namespace fstm::kernels::cuda {

struct CudaGraph::Impl {};

CudaGraph::CudaGraph(Device device) {
  throw Error(detail::concat("CUDA graph on ", device.str(), " requested but fstm was built without CUDA"));
}
CudaGraph::~CudaGraph() = default;
CudaGraph::CudaGraph(CudaGraph&&) noexcept = default;
CudaGraph& CudaGraph::operator=(CudaGraph&&) noexcept = default;
void CudaGraph::capture(const std::function<void()>&) {}
void CudaGraph::replay() {}
bool CudaGraph::captured() const { return false; }
Device CudaGraph::device() const { return Device::cpu(); }

}  // namespace fstm::kernels::cuda

#endif  // !FSTM_HAVE_CUDA
