#include "kernels/cuda/graph.h"

#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/cuda_internal.h"

namespace fstm::kernels::cuda {

namespace fc = ::fstm::cuda;

struct CudaGraph::Impl {
  Device device;
  cudaGraphExec_t exec = nullptr;
  int pool = -1;  // the allocator pool holding the memory the graph uses

  ~Impl() {
    // Destructors do not throw; the device may already be in an error state.
    if (exec) {
      if (cudaStreamSynchronize(fc::compute_stream(device.index)) != cudaSuccess) (void)cudaGetLastError();
      (void)cudaGraphExecDestroy(exec);
    }
    if (pool >= 0) fc::caching_allocator(device.index).release_pool(pool);
  }
};

CudaGraph::CudaGraph(Device device) : impl_(std::make_unique<Impl>()) {
  FSTM_CHECK(device.is_cuda(), "CUDA graph on ", device.str(), ": needs a CUDA device");
  fc::check_device(device.index);
  impl_->device = device;
}

CudaGraph::~CudaGraph() = default;
CudaGraph::CudaGraph(CudaGraph&&) noexcept = default;
CudaGraph& CudaGraph::operator=(CudaGraph&&) noexcept = default;

bool CudaGraph::captured() const { return impl_ && impl_->exec != nullptr; }
Device CudaGraph::device() const { return impl_ ? impl_->device : Device::cpu(); }

void CudaGraph::capture(const std::function<void()>& fn) {
  FSTM_CHECK(impl_, "CudaGraph::capture on a moved-from graph");
  FSTM_CHECK(!impl_->exec, "CudaGraph on ", impl_->device.str(), " was captured already");
  const int index = impl_->device.index;
  fc::DeviceGuard guard(index);
  const cudaStream_t stream = fc::compute_stream(index);
  fc::CachingAllocator& allocator = fc::caching_allocator(index);
  if (impl_->pool < 0) impl_->pool = allocator.create_pool();

  allocator.begin_capture(impl_->pool);
  // Relaxed: cudaMalloc (a new block for the pool) is allowed while capturing; calls that really
  // conflict with the capture (synchronisation, host copies) still fail and invalidate it.
  cudaError_t status = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
  if (status != cudaSuccess) {
    allocator.end_capture();
    fc::throw_cuda_error(status, "cudaStreamBeginCapture", __FILE__, __LINE__);
  }
  std::string failure;
  try {
    fn();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  cudaGraph_t graph = nullptr;
  status = cudaStreamEndCapture(stream, &graph);
  allocator.end_capture();
  if (!failure.empty() || status != cudaSuccess) {
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    if (failure.empty()) failure = std::string(cudaGetErrorString(status));
    throw Error(detail::concat("CUDA graph capture on ", impl_->device.str(), " failed: ", failure,
                               " (a captured function may only queue device work: no host copies or "
                               "synchronisation)"));
  }
  cudaGraphExec_t exec = nullptr;
  status = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable graph is independent of it
  if (status != cudaSuccess) fc::throw_cuda_error(status, "cudaGraphInstantiate", __FILE__, __LINE__);
  impl_->exec = exec;
}

void CudaGraph::replay() {
  FSTM_CHECK(captured(), "CudaGraph::replay before a successful capture");
  const int index = impl_->device.index;
  fc::DeviceGuard guard(index);
  FSTM_CUDA_CHECK(cudaGraphLaunch(impl_->exec, fc::compute_stream(index)));
}

}  // namespace fstm::kernels::cuda
