#include "kernels/cuda/common.h"

#include "tensor/cuda_api.h"

namespace fstm::kernels::cuda {

namespace {
int device_of(const char* op, std::initializer_list<const Tensor*> tensors) {
  int index = -1;
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    FSTM_CHECK(t->is_cuda(), op, ": ", t->describe(), " is on the CPU but the op runs on CUDA");
    if (index < 0) index = t->device().index;
    FSTM_CHECK(t->device().index == index, op, ": ", t->describe(), " is not on cuda:", index);
  }
  FSTM_CHECK(index >= 0, op, ": no CUDA tensor given");
  return index;
}
}  // namespace

OnDevice::OnDevice(const char* op, std::initializer_list<const Tensor*> tensors)
    : index(device_of(op, tensors)), guard(index), stream(::fstm::cuda::compute_stream(index)) {}

void expect_f32(const char* op, const Tensor& t, int64_t numel) {
  FSTM_CHECK(t.dtype() == DType::f32, op, ": expected f32, got ", t.describe());
  FSTM_CHECK(numel < 0 || t.numel() == numel, op, ": expected ", numel, " elements, got ", t.describe());
}

void expect_i64(const char* op, const Tensor& t, int64_t numel) {
  FSTM_CHECK(t.dtype() == DType::i64, op, ": expected i64, got ", t.describe());
  FSTM_CHECK(t.numel() == numel, op, ": expected ", numel, " elements, got ", t.describe());
}

int pointer_alignment(std::initializer_list<const void*> pointers) {
  int alignment = 256;
  for (const void* p : pointers) {
    const auto address = reinterpret_cast<uintptr_t>(p);
    if (address == 0) continue;  // absent operand
    while (alignment > 1 && address % uintptr_t(alignment) != 0) alignment /= 2;
  }
  return alignment;
}

FindWorkspace::FindWorkspace(int device, size_t limit) {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  if (free_bytes / 2 < limit) {
    ::fstm::cuda::empty_cache(device);
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  }
  bytes_ = free_bytes / 2 < limit ? free_bytes / 2 : limit;
  while (bytes_ >= (size_t(1) << 20)) {
    if (cudaMalloc(&ptr_, bytes_) == cudaSuccess) return;
    (void)cudaGetLastError();
    ptr_ = nullptr;
    bytes_ /= 2;
  }
  bytes_ = 0;
}

FindWorkspace::~FindWorkspace() {
  if (ptr_) (void)cudaFree(ptr_);
}

Tensor scratch_bytes(int device, size_t bytes) {
  return Tensor::empty(Shape{int64_t(bytes)}, DType::u8, Device::cuda(device));
}

}  // namespace fstm::kernels::cuda
