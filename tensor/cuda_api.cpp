// tensor/cuda_api.h in every build: each call goes to the CUDA backend when libfstm_cuda.so is
// loaded (tensor/device.h); without it, queries report zeros and an Event says why it cannot exist.
#include "tensor/cuda_api.h"

#include "tensor/device.h"
#include "tensor/error.h"

namespace fstm::cuda {

MemoryStats memory_stats(int index) {
  DeviceBackend* b = cuda_backend();
  return b ? b->memory_stats(index) : MemoryStats{};
}

void reset_peak_memory(int index) {
  if (DeviceBackend* b = cuda_backend()) b->reset_peak_memory(index);
}

void empty_cache(int index) {
  if (DeviceBackend* b = cuda_backend()) b->empty_cache(index);
}

void synchronize(int index) {
  if (DeviceBackend* b = cuda_backend()) b->synchronize_if_used(index);
}

DeviceMemory device_memory(int index) {
  DeviceBackend* b = cuda_backend();
  return b ? b->device_memory(index) : DeviceMemory{};
}

std::string library_versions() {
  DeviceBackend* b = cuda_backend();
  return b ? b->library_versions() : std::string();
}

namespace {
DeviceBackend& backend_for_event(int device) {
  DeviceBackend* b = cuda_backend();
  FSTM_CHECK(b != nullptr, "CUDA event on cuda:", device, ": there is no CUDA backend (cuda: ", cuda_status(), ")");
  return *b;
}
}  // namespace

Event::Event(int device, bool timing) : device_(device) { event_ = backend_for_event(device).event_create(device, timing); }

Event::~Event() {
  if (event_) cuda_backend_registered()->event_destroy(event_);
}

void Event::record() { backend_for_event(device_).event_record(event_, device_); }
void Event::synchronize() { backend_for_event(device_).event_synchronize(event_); }
bool Event::query() { return backend_for_event(device_).event_query(event_); }

float Event::elapsed_ms_since(const Event& start) {
  return backend_for_event(device_).event_elapsed_ms(start.event_, event_);
}

}  // namespace fstm::cuda
