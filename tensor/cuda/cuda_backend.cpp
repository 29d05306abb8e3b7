// The CUDA DeviceBackend: device discovery, per-device compute stream and caching allocator,
// copies, memsets, dtype conversion, events, pinned memory. Registered when libfstm_cuda.so is
// loaded (tensor/device.h); CUDA itself is only touched on the first question about devices, and
// a machine without a driver or GPU gets zero devices and a reason in status(), never an abort.
#include <atomic>
#include <mutex>
#include <string>

#include "fstm_build_config.h"
#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/cuda_internal.h"
#include "tensor/cuda_api.h"

namespace fstm::cuda {

namespace {

std::string version_text(int v) {  // 12080 -> "12.8"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// The oldest architecture in FSTM_CUDA_ARCHITECTURES ("90", "80;90-real", ...); 0 when the list
// names none ("native", "all").
int oldest_compiled_architecture() {
  const std::string list = FSTM_CUDA_ARCHITECTURES;
  int oldest = 0;
  size_t i = 0;
  while (i < list.size()) {
    int value = 0;
    bool digits = false;
    while (i < list.size() && list[i] >= '0' && list[i] <= '9') {
      value = value * 10 + (list[i] - '0');
      digits = true;
      ++i;
    }
    if (digits && (oldest == 0 || value < oldest)) oldest = value;
    while (i < list.size() && list[i] != ';') ++i;
    ++i;
  }
  return oldest;
}

struct DeviceState {
  std::once_flag init;
  cudaStream_t stream = nullptr;
  std::atomic<CachingAllocator*> allocator{nullptr};
};

class CudaBackend final : public DeviceBackend {
 public:
  int device_count() override {
    probe();
    return count_;
  }

  std::string device_name(int index) override {
    check_device(index);
    cudaDeviceProp prop{};
    FSTM_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
    return prop.name;
  }

  std::string status() override {
    probe();
    return status_;
  }

  Allocator& allocator(int index) override { return *state(index).allocator.load(); }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    if (bytes == 0) return;
    if (dst_device.is_cuda() && src_device.is_cuda()) {
      if (dst_device.index == src_device.index) {
        // Stream-ordered: every later use of dst on this device runs after the copy.
        DeviceGuard guard(dst_device.index);
        FSTM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, state(dst_device.index).stream));
        return;
      }
      // Between devices: wait for the producer, copy on the consumer's stream, wait again.
      synchronize(src_device.index);
      DeviceGuard guard(dst_device.index);
      const cudaStream_t stream = state(dst_device.index).stream;
      FSTM_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream));
      FSTM_CUDA_CHECK(cudaStreamSynchronize(stream));
      return;
    }
    // Host <-> device: synchronous, so the host buffer may be reused or read on return.
    const int index = dst_device.is_cuda() ? dst_device.index : src_device.index;
    const cudaMemcpyKind kind = dst_device.is_cuda() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    DeviceGuard guard(index);
    const cudaStream_t stream = state(index).stream;
    FSTM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
    FSTM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  void memset_zero(void* dst, Device device, size_t bytes) override {
    if (bytes == 0) return;
    DeviceGuard guard(device.index);
    FSTM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, state(device.index).stream));
  }

  void synchronize(int index) override {
    DeviceState& s = state(index);
    DeviceGuard guard(index);
    FSTM_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  }

  bool convert(const void* src, DType from, void* dst, DType to, int64_t n, Device device) override {
    DeviceState& s = state(device.index);
    DeviceGuard guard(device.index);
    return convert_on_device(src, from, dst, to, n, s.stream);
  }

  // The state of a usable device, created on first use.
  DeviceState& state(int index) {
    check_device(index);
    DeviceState& s = devices_[index];
    std::call_once(s.init, [&] {
      DeviceGuard guard(index);
      std::string why;
      FSTM_CHECK(kernels_runnable(&why), "cuda:", index, " cannot run this build's kernels (compiled for ",
                 FSTM_CUDA_ARCHITECTURES, "): ", why);
      FSTM_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
      s.allocator.store(new CachingAllocator(index, s.stream));  // never destroyed, like the stream
    });
    return s;
  }

  // The allocator when the device was used already, else nullptr (queries must not create contexts).
  CachingAllocator* existing_allocator(int index) {
    if (index < 0 || index >= device_count()) return nullptr;
    return devices_[index].allocator.load();
  }

  std::string versions() {
    probe();
    return versions_;
  }

  // ---- runtime controls (tensor/cuda_api.h, tensor/cuda_host.h) ----

  MemoryStats memory_stats(int index) override {
    CachingAllocator* a = existing_allocator(index);
    return a ? a->stats() : MemoryStats{};
  }

  void reset_peak_memory(int index) override {
    if (CachingAllocator* a = existing_allocator(index)) a->reset_peak();
  }

  void empty_cache(int index) override {
    if (CachingAllocator* a = existing_allocator(index)) a->empty_cache();
  }

  void synchronize_if_used(int index) override {
    if (existing_allocator(index)) synchronize(index);
  }

  DeviceMemory device_memory(int index) override {
    if (index < 0 || index >= device_count()) return {};
    DeviceGuard guard(index);
    DeviceMemory m;
    FSTM_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
    return m;
  }

  std::string library_versions() override { return versions(); }

  void* event_create(int device, bool timing) override {
    check_device(device);
    DeviceGuard guard(device);
    cudaEvent_t e = nullptr;
    FSTM_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
    return e;
  }

  void event_destroy(void* event) noexcept override { (void)cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

  void event_record(void* event, int device) override {
    DeviceGuard guard(device);
    FSTM_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), state(device).stream));
  }

  void event_synchronize(void* event) override {
    FSTM_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
  }

  bool event_query(void* event) override {
    const cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (status == cudaErrorNotReady) return false;
    FSTM_CUDA_CHECK(status);
    return true;
  }

  float event_elapsed_ms(void* start, void* end) override {
    float ms = 0;
    FSTM_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
    return ms;
  }

  void* host_alloc_pinned(size_t bytes) override {
    void* ptr = nullptr;
    FSTM_CUDA_CHECK(cudaHostAlloc(&ptr, bytes, cudaHostAllocPortable));  // usable for copies to every device
    return ptr;
  }

  void host_free_pinned(void* ptr) noexcept override { (void)cudaFreeHost(ptr); }

  void copy_to_device_queued(void* dst, int device, const void* src, size_t bytes) override {
    DeviceGuard guard(device);
    FSTM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, state(device).stream));
  }

 private:
  void probe() {
    std::call_once(probe_once_, [this] {
      try {
        probe_devices();
      } catch (const std::exception& e) {
        count_ = 0;
        status_ = std::string("CUDA initialisation failed: ") + e.what();
      }
    });
  }

  void probe_devices() {
    int driver = 0, runtime = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
    if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
    versions_ = "driver " + (driver ? version_text(driver) : std::string("none")) + ", runtime " +
                version_text(runtime) + ", " + vendor_library_versions();
    int n = 0;
    std::string reason;
    const cudaError_t status = cudaGetDeviceCount(&n);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
      if (driver == 0) {
        reason = "no CUDA driver (libcuda.so.1 is not installed or cannot be loaded)";
      } else if (status == cudaErrorInsufficientDriver) {
        reason = "the CUDA driver " + version_text(driver) + " is older than the CUDA runtime " +
                 version_text(runtime) + " fstm was built with";
      } else if (status == cudaErrorNoDevice) {
        reason = "no CUDA-capable device";
      } else {
        reason = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
      }
    } else if (n == 0) {
      reason = "no CUDA-capable device";
    }
    if (n > kMaxDevices) n = kMaxDevices;
    // A GPU older than the compiled architectures cannot run our kernels. Decided from the compute
    // capability, which needs no CUDA context (state() checks the kernel image for certain).
    const int oldest = oldest_compiled_architecture();
    for (int i = 0; i < n; ++i) {
      int major = 0, minor = 0;
      FSTM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i));
      FSTM_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, i));
      if (major * 10 + minor < oldest) {
        reason = "cuda:" + std::to_string(i) + " has compute capability " + std::to_string(major) + "." +
                 std::to_string(minor) + " but this build's kernels need " + std::to_string(oldest / 10) + "." +
                 std::to_string(oldest % 10) + " or newer (FSTM_CUDA_ARCHITECTURES=" FSTM_CUDA_ARCHITECTURES
                 "); rebuild for it or hide it with CUDA_VISIBLE_DEVICES";
        n = 0;
        break;
      }
    }
    count_ = n;
    status_ = n > 0 ? versions_ + "; " + std::to_string(n) + " device(s)" : reason + " [" + versions_ + "]";
  }

  std::once_flag probe_once_;
  int count_ = 0;
  std::string status_, versions_;
  DeviceState devices_[kMaxDevices];
};

CudaBackend& backend() {
  static auto* instance = new CudaBackend();  // never destroyed: tensors may outlive main()
  return *instance;
}

struct Registrar {
  Registrar() { register_cuda_backend(&backend()); }
} registrar;

}  // namespace

// ---- internal API (tensor/cuda/cuda_internal.h) ------------------------------------------------

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  const char* name = cudaGetErrorName(status);
  const char* text = cudaGetErrorString(status);
  (void)cudaGetLastError();  // clear a non-sticky error so the next check does not see it again
  throw Error(detail::concat("CUDA error in ", call, " (", file, ":", line, "): ", text, " (", name, ")"));
}

DeviceGuard::DeviceGuard(int index) {
  int current = -1;
  FSTM_CUDA_CHECK(cudaGetDevice(&current));
  if (current != index) {
    FSTM_CUDA_CHECK(cudaSetDevice(index));
    previous_ = current;
  }
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

void check_device(int index) {
  const int count = backend().device_count();
  FSTM_CHECK(index >= 0 && index < count, "cuda:", index, " does not exist: ", count, " CUDA device(s) visible (",
             backend().status(), ")");
}

cudaStream_t compute_stream(int index) { return backend().state(index).stream; }

CachingAllocator& caching_allocator(int index) { return *backend().state(index).allocator.load(); }

bool stream_is_capturing(int index) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FSTM_CUDA_CHECK(cudaStreamIsCapturing(compute_stream(index), &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace fstm::cuda
