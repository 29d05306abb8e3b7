// What the CUDA backend does beyond matching the reference kernel by kernel (that is the op table,
// tests/test_backend_ops.cpp, which runs every kernel on cpu and cuda): f32 stays f32 unless TF32
// is asked for, max pooling sends ties to the first maximum, and misuse fails clearly. Assigned
// outputs start as NaN. Without a GPU every test here is skipped with the reason.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/cuda_options.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "tests/test_support.h"

using namespace fstm;
namespace k = fstm::kernels;

namespace {

Device gpu() { return Device::cuda(0); }
Tensor on_gpu(const Tensor& t) { return t.defined() ? t.to(gpu()) : Tensor(); }

// A device tensor of NaNs: the kernel under test must overwrite every element.
Tensor gpu_poisoned(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32, gpu());
  test::poison(t);
  return t;
}

Tensor random(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  return test::random_tensor(shape, rng, lo, hi);
}

struct Tf32Guard {  // restores the default even when an assertion fails
  explicit Tf32Guard(bool allow) { k::cuda::set_allow_tf32(allow); }
  ~Tf32Guard() { k::cuda::set_allow_tf32(false); }
};

}  // namespace

// ---- f32 exactness and TF32 -------------------------------------------------------------------------

namespace {
struct ConvCase {
  int64_t N, H, W, Ci, Co, kh, kw;
  int sh, sw, ph, pw, dh, dw, groups;
  bool bias;
};

void check_conv(const ConvCase& c, Rng& rng, float rel) {
  k::Conv2dParams p;
  p.stride_h = c.sh;
  p.stride_w = c.sw;
  p.pad_h = c.ph;
  p.pad_w = c.pw;
  p.dilation_h = c.dh;
  p.dilation_w = c.dw;
  p.groups = c.groups;
  Tensor x = random(Shape{c.N, c.H, c.W, c.Ci}, rng);
  Tensor w = random(Shape{c.Co, c.Ci / c.groups, c.kh, c.kw}, rng);
  Tensor b = c.bias ? random(Shape{c.Co}, rng) : Tensor();
  const Shape ys = k::conv2d_output_shape(x.shape(), w.shape(), p);

  Tensor y_ref = Tensor::empty(ys);
  k::ref::conv2d_forward(x, w, b, p, y_ref);
  Tensor y = gpu_poisoned(ys);
  k::conv2d_forward(on_gpu(x), on_gpu(w), on_gpu(b), p, y);
  EXPECT_TRUE(test::close_to_scale(y, y_ref, rel)) << "forward";

  Tensor dy = random(ys, rng);
  Tensor dx_ref = Tensor::empty(x.shape());
  k::ref::conv2d_backward_data(dy, w, p, dx_ref);
  Tensor dx = gpu_poisoned(x.shape());
  k::conv2d_backward_data(on_gpu(dy), on_gpu(w), p, dx);
  EXPECT_TRUE(test::close_to_scale(dx, dx_ref, rel)) << "backward data";

  // Parameter gradients accumulate: start from random values, run twice (the second run uses the
  // cached algorithm).
  Tensor dw_ref = random(w.shape(), rng), db_ref = c.bias ? random(Shape{c.Co}, rng) : Tensor();
  Tensor dw = on_gpu(dw_ref), db = on_gpu(db_ref);
  for (int run = 0; run < 2; ++run) {
    k::ref::conv2d_backward_weights(dy, x, p, dw_ref, db_ref);
    Tensor dy_gpu = on_gpu(dy), x_gpu = on_gpu(x);
    k::conv2d_backward_weights(dy_gpu, x_gpu, p, dw, db);
  }
  EXPECT_TRUE(test::close_to_scale(dw, dw_ref, rel)) << "backward weights";
  if (c.bias) {
    EXPECT_TRUE(test::close_to_scale(db, db_ref, rel)) << "backward bias";
  }
}
}  // namespace

namespace {
// y = x w^T for x [N, I], w [O, I] on the GPU against the reference.
void check_linear_forward(int64_t N, int64_t I, int64_t O, Rng& rng, float rel) {
  Tensor x = random(Shape{N, I}, rng), w = random(Shape{O, I}, rng);
  Tensor y_ref = Tensor::empty(Shape{N, O});
  k::ref::linear_forward(x, w, Tensor(), y_ref);
  Tensor y = gpu_poisoned(Shape{N, O});
  k::linear_forward(on_gpu(x), on_gpu(w), Tensor(), y);
  EXPECT_TRUE(test::close_to_scale(y, y_ref, rel)) << "linear " << N << "x" << I << " -> " << O;
}
}  // namespace

TEST(CudaOps, Conv2dAndLinearAreExactF32ByDefault) {
  FSTM_REQUIRE_CUDA();
  // Long reductions (576 and 1024 terms): f32 kernels (even Winograd) stay within ~1e-5 of the
  // largest value; TF32 tensor cores (10-bit mantissa inputs) would be off by ~4e-4 of it.
  ASSERT_FALSE(k::cuda::allow_tf32());
  Rng rng(102);
  check_conv({2, 8, 8, 64, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, false}, rng, 5e-5f);
  check_linear_forward(64, 1024, 48, rng, 1e-5f);
}

TEST(CudaOps, Tf32WhenAllowedStaysClose) {
  FSTM_REQUIRE_CUDA();
  Tf32Guard tf32(true);
  Rng rng(103);
  check_conv({2, 8, 8, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, true}, rng, 1e-2f);
  check_linear_forward(16, 256, 8, rng, 1e-2f);
}

// ---- pooling --------------------------------------------------------------------------------------

TEST(CudaOps, MaxPoolMatchesReferenceIncludingTies) {
  FSTM_REQUIRE_CUDA();
  Rng rng(107);
  struct Case {
    Shape x;
    k::Pool2dParams p;
  };
  const Case cases[] = {
      {Shape{2, 12, 11, 5}, {3, 3, 2, 2, 1, 1}},  // ResNet's 3x3/2 pad 1, odd width
      {Shape{1, 9, 9, 3}, {2, 2, 2, 2, 0, 0}},    // 2x2/2 with an uncovered last row and column
      {Shape{2, 7, 6, 4}, {3, 3, 1, 1, 1, 1}},    // overlapping windows, every input in 9 windows
      {Shape{1, 8, 10, 33}, {3, 2, 2, 1, 1, 0}},  // non-square
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.x.str());
    // Integers 0..3: many ties, which must go to the first maximum in window order.
    Tensor x = random(c.x, rng, 0.0f, 4.0f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::floor(x.data<float>()[i]);
    const Shape ys = k::max_pool2d_output_shape(x.shape(), c.p);
    Tensor y_ref = Tensor::empty(ys);
    k::ref::max_pool2d_forward(x, c.p, y_ref);
    Tensor y = gpu_poisoned(ys);
    k::max_pool2d_forward(on_gpu(x), c.p, y);
    EXPECT_EQ(y.to_vector(), y_ref.to_vector());
    Tensor dy = random(ys, rng);
    Tensor dx_ref = Tensor::empty(x.shape());
    k::ref::max_pool2d_backward(dy, x, c.p, dx_ref);
    Tensor dx = gpu_poisoned(x.shape());
    k::max_pool2d_backward(on_gpu(dy), on_gpu(x), c.p, dx);
    EXPECT_EQ(dx.to_vector(), dx_ref.to_vector()) << "same windows, same order of additions";
  }
}

// ---- errors ---------------------------------------------------------------------------------------

TEST(CudaOps, MixingHostAndDeviceTensorsIsAnError) {
  FSTM_REQUIRE_CUDA();
  Tensor a = Tensor::zeros(Shape{8}, DType::f32, gpu()), b = Tensor::zeros(Shape{8}), y = gpu_poisoned(Shape{8});
  try {
    k::add(a, b, y);
    FAIL() << "a CPU tensor was handed to a CUDA kernel";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU"), std::string::npos) << e.what();
  }
  Tensor wrong_size = Tensor::zeros(Shape{7}, DType::f32, gpu());
  EXPECT_THROW(k::add(a, wrong_size, y), Error);
}

TEST(CudaOps, LabelOutOfRangeGivesNaNNotACrash) {
  FSTM_REQUIRE_CUDA();
  Tensor logits = Tensor::zeros(Shape{2, 3}, DType::f32, gpu());
  Tensor labels = Tensor::from_vector_i64({1, 3}, Shape{2}, gpu());
  Tensor loss = gpu_poisoned(Shape{}), probs = gpu_poisoned(Shape{2, 3});
  k::cross_entropy_forward(logits, labels, loss, probs);
  EXPECT_TRUE(std::isnan(loss.item()));
  Tensor picked = gpu_poisoned(Shape{2});
  k::gather_rows(logits, labels, picked);
  const std::vector<float> v = picked.to_vector();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_TRUE(std::isnan(v[1]));
}


