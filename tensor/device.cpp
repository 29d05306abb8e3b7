#include "tensor/device.h"

#include <charconv>
#include <cstring>

#include "fstm_build_config.h"
#include "tensor/allocator.h"
#include "tensor/error.h"

namespace fstm {

namespace {
DeviceBackend*& cuda_backend_slot() {
  static DeviceBackend* backend = nullptr;
  return backend;
}
}  // namespace

void register_cuda_backend(DeviceBackend* backend) { cuda_backend_slot() = backend; }
DeviceBackend* cuda_backend_registered() { return cuda_backend_slot(); }

DeviceBackend* cuda_backend() {
  // Registered already when libfstm_cuda.so was linked in directly (the tests) or loaded before.
  if (DeviceBackend* b = cuda_backend_slot()) return b;
  return load_cuda_backend() ? cuda_backend_slot() : nullptr;
}

bool cuda_compiled() { return FSTM_HAVE_CUDA; }

int cuda_device_count() {
  DeviceBackend* b = cuda_backend();
  return b ? b->device_count() : 0;
}

Device Device::parse(std::string_view text) {
  if (text == "cpu") return cpu();
  if (text.substr(0, 4) != "cuda")
    throw Error(detail::concat("unknown device '", text, "' (expected cpu, cuda or cuda:N)"));
  int index = 0;
  if (text.size() > 4) {
    FSTM_CHECK(text[4] == ':' && text.size() > 5, "malformed device '", text, "' (expected cuda:N)");
    auto [end, ec] = std::from_chars(text.data() + 5, text.data() + text.size(), index);
    FSTM_CHECK(ec == std::errc() && end == text.data() + text.size() && index >= 0,
               "malformed device index in '", text, "'");
  }
  FSTM_CHECK(cuda_compiled(), "device '", text, "' requested but fstm was built without CUDA");
  const int count = cuda_device_count();
  FSTM_CHECK(index < count, "device '", text, "' does not exist: ", count, " CUDA device(s) visible (cuda: ",
             cuda_status(), ")");
  return cuda(index);
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  DeviceBackend* b = cuda_backend();
  FSTM_CHECK(b != nullptr, "tensor on ", device.str(), " requested but there is no CUDA backend (cuda: ", cuda_status(), ")");
  return b->allocator(device.index);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  DeviceBackend* b = cuda_backend();
  FSTM_CHECK(b != nullptr, "copy to or from ", dst_device.is_cpu() ? src_device.str() : dst_device.str(),
             " but there is no CUDA backend (cuda: ", cuda_status(), ")");
  b->copy(dst, dst_device, src, src_device, bytes);
}

}  // namespace fstm
