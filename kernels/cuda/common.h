// Internal to kernels/cuda: checks at the entry of each op, launch helpers, and the host-side
// launchers of helper kernels shared by several ops (reduce.cu, layout.cu). Included by .cu and
// .cpp files alike; needs the CUDA runtime headers but not cuDNN or cuBLAS.
#pragma once
#include <initializer_list>

#include "tensor/cuda/cuda_internal.h"
#include "tensor/tensor.h"

namespace fstm::kernels::cuda {

constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n elements: enough to fill any GPU, never zero.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where an op runs: checks that every defined tensor lives on the same CUDA device (a host pointer
// handed to a kernel would kill the CUDA context), makes it current, and names its stream.
struct OnDevice {
  OnDevice(const char* op, std::initializer_list<const Tensor*> tensors);
  int index;
  ::fstm::cuda::DeviceGuard guard;
  cudaStream_t stream;
};

// Throws unless t is f32 (named after the op) and, when `numel` >= 0, has that many elements.
void expect_f32(const char* op, const Tensor& t, int64_t numel = -1);
void expect_i64(const char* op, const Tensor& t, int64_t numel);
inline const float* f32_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
inline float* f32_or_null(Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
// Device memory for temporaries, from the caching allocator; freeing it right after queueing the
// kernels that use it is safe (stream order).
Tensor scratch_bytes(int device, size_t bytes);

// The largest power of two, up to 256, that divides every address (cuDNN's vectorised kernels
// depend on it, so an algorithm found for one alignment is cached only for that alignment).
int pointer_alignment(std::initializer_list<const void*> pointers);

// A device buffer for a cuDNN algorithm search (cudnnFind*) on `device`, as large as fits up to
// `limit` and half the free memory, straight from cudaMalloc (a one-off; it must not stay in the
// caching allocator). When half the free memory is less than `limit`, the caching allocator's
// unused blocks are first given back to the driver: otherwise memory the allocator merely holds
// would shrink the search, and a slow algorithm found with a small workspace would stay cached
// for the process. bytes() is 0 when nothing could be allocated (the search then runs without).
class FindWorkspace {
 public:
  FindWorkspace(int device, size_t limit);
  ~FindWorkspace();
  FindWorkspace(const FindWorkspace&) = delete;
  FindWorkspace& operator=(const FindWorkspace&) = delete;
  void* ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// ---- max pooling (pool.cu) ------------------------------------------------------------------------
struct PoolGeometry {
  int64_t N, H, W, C, Ho, Wo;
  int kh, kw, sh, sw, ph, pw;
};
// y [N, Ho, Wo, C] = max pooling of x [N, H, W, C]; elements of dtype t (f32, bf16 or f16) are
// compared in f32 and the chosen one is copied (exact). The kernel of kernels::cuda::max_pool2d_forward.
void max_pool_forward(DType t, const void* x, const PoolGeometry& g, void* y, cudaStream_t stream);

// ---- helper kernels (reduce.cu) -------------------------------------------------------------------
// Per-channel sums over the M rows of [M, C] matrices, in double, deterministic:
//   s1[c] = sum_m (a[m,c] - ca[c])      s2[c] = sum_m (a[m,c] - ca[c]) * (b[m,c] - cb[c])
// ca, cb may be null (0); b null skips s2 (s2 may then be null). s1, s2: device arrays of C.
void channel_sums(const float* a, const float* ca, const float* b, const float* cb, int64_t M, int64_t C,
                  double* s1, double* s2, int device, cudaStream_t stream);
// out[n, c] = float(sum_m a[n,m,c] * (b ? b[n,m,c] : 1) / divisor) for a, b [N, M, C] (assign).
void middle_sums(const float* a, const float* b, int64_t N, int64_t M, int64_t C, double divisor, float* out,
                 cudaStream_t stream);
// out[0] = float(sum_i x[i] / divisor), deterministic.
void sum_to_scalar(const float* x, int64_t n, double divisor, float* out, int device, cudaStream_t stream);
void sum_to_scalar(const double* x, int64_t n, double divisor, float* out, int device, cudaStream_t stream);
// dst[i] += float(src[i])
void accumulate_doubles(const double* src, int64_t n, float* dst, cudaStream_t stream);
// y[m, c] = b[c]  (add = false) or y[m, c] += b[c]  (add = true), for y [M, C].
void broadcast_rows(const float* b, int64_t M, int64_t C, float* y, bool add, cudaStream_t stream);

// ---- weight layouts (layout.cu) -------------------------------------------------------------------
// w [O, I, K] (OIHW with K = kH*kW) -> [O, K, I] (OHWI)
void oihw_to_ohwi(const float* src, int64_t O, int64_t I, int64_t K, float* dst, cudaStream_t stream);
// dst [O, I, K] += src [O, K, I]
void add_ohwi_to_oihw(const float* src, int64_t O, int64_t I, int64_t K, float* dst, cudaStream_t stream);

}  // namespace fstm::kernels::cuda
