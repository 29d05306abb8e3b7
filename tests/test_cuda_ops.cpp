// Every CUDA kernel against the reference kernels (kernels::ref), forward and backward, on random
// shapes with odd sizes. Assigned outputs start as NaN (every element must be written); parameter
// gradients start from random values (they must accumulate). Without a GPU every test here is
// skipped with the reason.
//
// Tolerances: conv and linear 1e-4 of the largest reference value (f32 sums in another order and
// other algorithms; TF32 would be ~4e-4 and fails the separate exactness test); batch norm,
// pooling averages, losses 1e-5; adds, products, copies and max pooling are bit-exact.
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

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// |actual - expected| <= rel * (max|expected| + |expected|): relative to the tensor's scale, so
// values near zero that come from cancelling sums are judged like the rest.
::testing::AssertionResult close_to(const Tensor& actual, const Tensor& expected, float rel) {
  const float scale = std::max(max_abs(expected), 1e-20f);
  return test::all_close(actual, expected, rel * scale, rel);
}

Tensor random(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  return test::random_tensor(shape, rng, lo, hi);
}

struct Tf32Guard {  // restores the default even when an assertion fails
  explicit Tf32Guard(bool allow) { k::cuda::set_allow_tf32(allow); }
  ~Tf32Guard() { k::cuda::set_allow_tf32(false); }
};

}  // namespace

// ---- convolution ----------------------------------------------------------------------------------

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
  EXPECT_TRUE(close_to(y, y_ref, rel)) << "forward";

  Tensor dy = random(ys, rng);
  Tensor dx_ref = Tensor::empty(x.shape());
  k::ref::conv2d_backward_data(dy, w, p, dx_ref);
  Tensor dx = gpu_poisoned(x.shape());
  k::conv2d_backward_data(on_gpu(dy), on_gpu(w), p, dx);
  EXPECT_TRUE(close_to(dx, dx_ref, rel)) << "backward data";

  // Parameter gradients accumulate: start from random values, run twice (the second run uses the
  // cached algorithm).
  Tensor dw_ref = random(w.shape(), rng), db_ref = c.bias ? random(Shape{c.Co}, rng) : Tensor();
  Tensor dw = on_gpu(dw_ref), db = on_gpu(db_ref);
  for (int run = 0; run < 2; ++run) {
    k::ref::conv2d_backward_weights(dy, x, p, dw_ref, db_ref);
    Tensor dy_gpu = on_gpu(dy), x_gpu = on_gpu(x);
    k::conv2d_backward_weights(dy_gpu, x_gpu, p, dw, db);
  }
  EXPECT_TRUE(close_to(dw, dw_ref, rel)) << "backward weights";
  if (c.bias) {
    EXPECT_TRUE(close_to(db, db_ref, rel)) << "backward bias";
  }
}
}  // namespace

TEST(CudaOps, Conv2dMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(101);
  const ConvCase cases[] = {
      // N  H   W  Ci  Co kh kw sh sw ph pw dh dw groups bias
      {2, 7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},      // odd sizes, same padding
      {1, 11, 10, 8, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, false},  // stride 2
      {3, 8, 8, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, true},      // depthwise
      {2, 9, 7, 8, 12, 1, 1, 2, 2, 0, 0, 1, 1, 1, false},    // 1x1 downsample (no layout conversion)
      {2, 13, 13, 3, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, false},   // ResNet stem
      {1, 10, 12, 6, 9, 3, 2, 2, 1, 1, 0, 2, 1, 3, true},    // groups, non-square, dilation
      {2, 5, 5, 4, 4, 5, 5, 1, 1, 2, 2, 1, 1, 2, true},      // 5x5, 2 groups
      {1, 6, 6, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 32, false},  // grouped, 2 outputs per group (I=1)
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "N" << c.N << " " << c.H << "x" << c.W << " Ci" << c.Ci << " Co" << c.Co
                                    << " k" << c.kh << "x" << c.kw << " g" << c.groups);
    check_conv(c, rng, 1e-4f);
  }
}

namespace {
// y = x w^T for x [N, I], w [O, I] on the GPU against the reference.
void check_linear_forward(int64_t N, int64_t I, int64_t O, Rng& rng, float rel) {
  Tensor x = random(Shape{N, I}, rng), w = random(Shape{O, I}, rng);
  Tensor y_ref = Tensor::empty(Shape{N, O});
  k::ref::linear_forward(x, w, Tensor(), y_ref);
  Tensor y = gpu_poisoned(Shape{N, O});
  k::linear_forward(on_gpu(x), on_gpu(w), Tensor(), y);
  EXPECT_TRUE(close_to(y, y_ref, rel)) << "linear " << N << "x" << I << " -> " << O;
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

// ---- linear ---------------------------------------------------------------------------------------

TEST(CudaOps, LinearMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(104);
  struct Case {
    int64_t N, I, O;
    bool bias;
  };
  for (const Case c : {Case{1, 1, 1, true}, Case{7, 13, 5, true}, Case{64, 512, 2, false}, Case{33, 257, 129, true},
                       Case{5, 2048, 3, true}}) {
    SCOPED_TRACE(testing::Message() << c.N << "x" << c.I << " -> " << c.O);
    Tensor x = random(Shape{c.N, c.I}, rng), w = random(Shape{c.O, c.I}, rng);
    Tensor b = c.bias ? random(Shape{c.O}, rng) : Tensor();
    Tensor y_ref = Tensor::empty(Shape{c.N, c.O});
    k::ref::linear_forward(x, w, b, y_ref);
    Tensor y = gpu_poisoned(Shape{c.N, c.O});
    k::linear_forward(on_gpu(x), on_gpu(w), on_gpu(b), y);
    EXPECT_TRUE(close_to(y, y_ref, 1e-4f)) << "forward";

    Tensor dy = random(Shape{c.N, c.O}, rng);
    Tensor dx_ref = Tensor::empty(x.shape());
    k::ref::linear_backward_data(dy, w, dx_ref);
    Tensor dx = gpu_poisoned(x.shape());
    k::linear_backward_data(on_gpu(dy), on_gpu(w), dx);
    EXPECT_TRUE(close_to(dx, dx_ref, 1e-4f)) << "backward data";

    Tensor dw_ref = random(w.shape(), rng), db_ref = c.bias ? random(Shape{c.O}, rng) : Tensor();
    Tensor dw = on_gpu(dw_ref), db = on_gpu(db_ref);
    k::ref::linear_backward_weights(dy, x, dw_ref, db_ref);
    k::linear_backward_weights(on_gpu(dy), on_gpu(x), dw, db);
    EXPECT_TRUE(close_to(dw, dw_ref, 1e-4f)) << "backward weights";
    if (c.bias) {
      EXPECT_TRUE(close_to(db, db_ref, 1e-5f)) << "backward bias";
    }
  }
}

// ---- batch norm -----------------------------------------------------------------------------------

TEST(CudaOps, BatchNormMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(105);
  const Shape shapes[] = {Shape{2, 5, 7, 3}, Shape{4, 3, 3, 64}, Shape{5, 33}, Shape{1, 1, 1, 17},
                          Shape{64, 16, 16, 16}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape.str());
    const int64_t C = shape.back();
    // An offset mean (about 3) exercises the centred variance.
    Tensor x = random(shape, rng, 2.0f, 4.0f);
    Tensor gamma = random(Shape{C}, rng, 0.5f, 1.5f), beta = random(Shape{C}, rng);
    Tensor rm_ref = random(Shape{C}, rng), rv_ref = random(Shape{C}, rng, 0.5f, 2.0f);
    Tensor rm = on_gpu(rm_ref), rv = on_gpu(rv_ref);
    const float momentum = 0.1f, eps = 1e-5f;

    Tensor y_ref = Tensor::empty(shape), mean_ref = Tensor::empty(Shape{C}), invstd_ref = Tensor::empty(Shape{C});
    k::ref::batch_norm_forward_train(x, gamma, beta, rm_ref, rv_ref, momentum, eps, y_ref, mean_ref, invstd_ref);
    Tensor y = gpu_poisoned(shape), mean = gpu_poisoned(Shape{C}), invstd = gpu_poisoned(Shape{C});
    Tensor xg = on_gpu(x), gg = on_gpu(gamma), bg = on_gpu(beta);
    k::batch_norm_forward_train(xg, gg, bg, rm, rv, momentum, eps, y, mean, invstd);
    EXPECT_TRUE(close_to(y, y_ref, 1e-4f)) << "train forward";
    EXPECT_TRUE(test::all_close(mean, mean_ref, 1e-6f, 1e-6f)) << "saved mean";
    EXPECT_TRUE(test::all_close(invstd, invstd_ref, 0.0f, 1e-5f)) << "saved invstd";
    EXPECT_TRUE(test::all_close(rm, rm_ref, 1e-6f, 1e-6f)) << "running mean";
    EXPECT_TRUE(test::all_close(rv, rv_ref, 1e-6f, 1e-5f)) << "running var";

    Tensor ye_ref = Tensor::empty(shape);
    k::ref::batch_norm_forward_eval(x, gamma, beta, rm_ref, rv_ref, eps, ye_ref);
    Tensor ye = gpu_poisoned(shape);
    k::batch_norm_forward_eval(xg, gg, bg, rm, rv, eps, ye);
    EXPECT_TRUE(close_to(ye, ye_ref, 1e-5f)) << "eval forward";

    // Backward, train mode (from the reference's saved statistics, so both start equal).
    Tensor dy = random(shape, rng);
    Tensor dx_ref = Tensor::empty(shape), dg_ref = random(Shape{C}, rng), db_ref = random(Shape{C}, rng);
    Tensor dx = gpu_poisoned(shape), dg = on_gpu(dg_ref), db = on_gpu(db_ref);
    k::ref::batch_norm_backward_train(dy, x, gamma, mean_ref, invstd_ref, dx_ref, dg_ref, db_ref);
    k::batch_norm_backward_train(on_gpu(dy), xg, gg, on_gpu(mean_ref), on_gpu(invstd_ref), dx, dg, db);
    EXPECT_TRUE(close_to(dx, dx_ref, 1e-4f)) << "train backward dx";
    EXPECT_TRUE(close_to(dg, dg_ref, 1e-5f)) << "train backward dgamma";
    EXPECT_TRUE(close_to(db, db_ref, 1e-5f)) << "train backward dbeta";

    // Backward, eval mode, with and without parameter gradients.
    Tensor dxe_ref = Tensor::empty(shape), dge_ref = random(Shape{C}, rng), dbe_ref = random(Shape{C}, rng);
    Tensor dxe = gpu_poisoned(shape), dge = on_gpu(dge_ref), dbe = on_gpu(dbe_ref);
    k::ref::batch_norm_backward_eval(dy, x, gamma, rm_ref, rv_ref, eps, dxe_ref, dge_ref, dbe_ref);
    k::batch_norm_backward_eval(on_gpu(dy), xg, gg, rm, rv, eps, dxe, dge, dbe);
    EXPECT_TRUE(close_to(dxe, dxe_ref, 1e-5f)) << "eval backward dx";
    EXPECT_TRUE(close_to(dge, dge_ref, 1e-5f)) << "eval backward dgamma";
    EXPECT_TRUE(close_to(dbe, dbe_ref, 1e-5f)) << "eval backward dbeta";
    Tensor dx_only = gpu_poisoned(shape), none_g, none_b;
    k::batch_norm_backward_eval(on_gpu(dy), xg, gg, rm, rv, eps, dx_only, none_g, none_b);
    EXPECT_TRUE(close_to(dx_only, dxe_ref, 1e-5f)) << "eval backward without parameter gradients";
  }
}

TEST(CudaOps, BatchNormReluMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(106);
  for (bool with_residual : {false, true}) {
    SCOPED_TRACE(with_residual ? "with residual" : "without residual");
    const Shape shape{4, 9, 9, 32};
    const int64_t C = shape.back();
    Tensor x = random(shape, rng, -1.0f, 3.0f), gamma = random(Shape{C}, rng, 0.5f, 1.5f), beta = random(Shape{C}, rng);
    Tensor residual = with_residual ? random(shape, rng) : Tensor();
    Tensor rm_ref = random(Shape{C}, rng), rv_ref = random(Shape{C}, rng, 0.5f, 2.0f);
    Tensor rm = on_gpu(rm_ref), rv = on_gpu(rv_ref);
    Tensor y_ref = Tensor::empty(shape), mean_ref = Tensor::empty(Shape{C}), invstd_ref = Tensor::empty(Shape{C});
    k::ref::batch_norm_relu_forward_train(x, gamma, beta, residual, rm_ref, rv_ref, 0.1f, 1e-5f, y_ref, mean_ref,
                                          invstd_ref);
    Tensor y = gpu_poisoned(shape), mean = gpu_poisoned(Shape{C}), invstd = gpu_poisoned(Shape{C});
    k::batch_norm_relu_forward_train(on_gpu(x), on_gpu(gamma), on_gpu(beta), on_gpu(residual), rm, rv, 0.1f, 1e-5f, y,
                                     mean, invstd);
    EXPECT_TRUE(close_to(y, y_ref, 1e-4f)) << "forward";
    EXPECT_TRUE(test::all_close(rv, rv_ref, 1e-6f, 1e-5f)) << "running var";

    Tensor dy = random(shape, rng);
    Tensor dx_ref = Tensor::empty(shape), dg_ref = random(Shape{C}, rng), db_ref = random(Shape{C}, rng);
    Tensor dres_ref = with_residual ? Tensor::empty(shape) : Tensor();
    Tensor dx = gpu_poisoned(shape), dg = on_gpu(dg_ref), db = on_gpu(db_ref);
    Tensor dres = with_residual ? gpu_poisoned(shape) : Tensor();
    k::ref::batch_norm_relu_backward_train(dy, x, y_ref, gamma, mean_ref, invstd_ref, dx_ref, dg_ref, db_ref, dres_ref);
    k::batch_norm_relu_backward_train(on_gpu(dy), on_gpu(x), on_gpu(y_ref), on_gpu(gamma), on_gpu(mean_ref),
                                      on_gpu(invstd_ref), dx, dg, db, dres);
    EXPECT_TRUE(close_to(dx, dx_ref, 1e-4f)) << "dx";
    EXPECT_TRUE(close_to(dg, dg_ref, 1e-5f)) << "dgamma";
    EXPECT_TRUE(close_to(db, db_ref, 1e-5f)) << "dbeta";
    if (with_residual) {
      EXPECT_EQ(dres.to_vector(), dres_ref.to_vector()) << "dresidual: dy or 0, exact";
    }
  }
}

// ---- activations ----------------------------------------------------------------------------------

TEST(CudaOps, ActivationsMatchReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(106);
  Tensor x = random(Shape{12345}, rng, -8.0f, 8.0f);
  float* px = x.data<float>();
  px[0] = 0.0f;  // the ReLU kink
  px[1] = -0.0f;
  Tensor dy = random(x.shape(), rng);
  for (k::Activation a : {k::Activation::Identity, k::Activation::Relu, k::Activation::Sigmoid, k::Activation::Silu}) {
    SCOPED_TRACE(k::activation_name(a));
    Tensor y_ref = Tensor::empty(x.shape());
    k::ref::activation_forward(a, x, y_ref);
    Tensor y = gpu_poisoned(x.shape());
    k::activation_forward(a, on_gpu(x), y);
    EXPECT_TRUE(test::all_close(y, y_ref, 1e-7f, 1e-6f));
    Tensor dx_ref = Tensor::empty(x.shape());
    k::ref::activation_backward(a, dy, x, y_ref, dx_ref);
    Tensor dx = gpu_poisoned(x.shape());
    k::activation_backward(a, on_gpu(dy), on_gpu(x), on_gpu(y_ref), dx);
    EXPECT_TRUE(test::all_close(dx, dx_ref, 1e-7f, 1e-5f));
  }
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

TEST(CudaOps, GlobalAvgPoolMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(108);
  for (const Shape& shape : {Shape{2, 7, 7, 512}, Shape{3, 1, 1, 5}, Shape{1, 13, 11, 3}, Shape{2, 56, 56, 40}}) {
    SCOPED_TRACE(shape.str());
    Tensor x = random(shape, rng);
    Tensor y_ref = Tensor::empty(Shape{shape[0], shape[3]});
    k::ref::global_avg_pool_forward(x, y_ref);
    Tensor y = gpu_poisoned(y_ref.shape());
    k::global_avg_pool_forward(on_gpu(x), y);
    EXPECT_TRUE(test::all_close(y, y_ref, 1e-7f, 1e-6f));
    Tensor dy = random(y_ref.shape(), rng);
    Tensor dx_ref = Tensor::empty(shape);
    k::ref::global_avg_pool_backward(dy, dx_ref);
    Tensor dx = gpu_poisoned(shape);
    k::global_avg_pool_backward(on_gpu(dy), dx);
    EXPECT_EQ(dx.to_vector(), dx_ref.to_vector());
  }
}

// ---- elementwise ----------------------------------------------------------------------------------

TEST(CudaOps, ElementwiseMatchesReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(109);
  const Shape shape{3, 5, 7, 11};
  Tensor a = random(shape, rng), b = random(shape, rng);
  Tensor ag = on_gpu(a), bg = on_gpu(b);
  {
    Tensor r = Tensor::empty(shape), g = gpu_poisoned(shape);
    k::ref::add(a, b, r);
    k::add(ag, bg, g);
    EXPECT_EQ(g.to_vector(), r.to_vector()) << "add";
    k::ref::mul(a, b, r);
    k::mul(ag, bg, g);
    EXPECT_EQ(g.to_vector(), r.to_vector()) << "mul";
    k::ref::affine(a, -1.75f, 0.3f, r);
    k::affine(ag, -1.75f, 0.3f, g);
    // The host compiler may fuse alpha * x + beta into one FMA (GCC contracts in C++ by default).
    EXPECT_TRUE(test::all_close(g, r, 1e-7f, 1e-7f)) << "affine";
    Tensor acc_ref = b.clone(), acc = on_gpu(b);
    k::ref::add_inplace(acc_ref, a);
    k::add_inplace(acc, ag);
    EXPECT_EQ(acc.to_vector(), acc_ref.to_vector()) << "add_inplace";
  }
  {
    Tensor s = random(Shape{3, 11}, rng);
    Tensor r = Tensor::empty(shape), g = gpu_poisoned(shape);
    k::ref::mul_channel(a, s, r);
    k::mul_channel(ag, on_gpu(s), g);
    EXPECT_EQ(g.to_vector(), r.to_vector()) << "mul_channel";
    Tensor ds_ref = Tensor::empty(Shape{3, 11}), ds = gpu_poisoned(Shape{3, 11});
    k::ref::mul_channel_backward_scale(b, a, ds_ref);
    k::mul_channel_backward_scale(bg, ag, ds);
    EXPECT_TRUE(test::all_close(ds, ds_ref, 1e-6f, 1e-6f)) << "mul_channel_backward_scale";
    Tensor t = random(Shape{3}, rng);
    k::ref::mul_sample(a, t, r);
    k::mul_sample(ag, on_gpu(t), g);
    EXPECT_EQ(g.to_vector(), r.to_vector()) << "mul_sample";
  }
  {
    std::vector<Tensor> parts = {random(Shape{4, 3, 1}, rng), random(Shape{4, 3, 7}, rng),
                                 random(Shape{4, 3, 32}, rng)};
    std::vector<Tensor> parts_gpu;
    for (const Tensor& t : parts) parts_gpu.push_back(on_gpu(t));
    Tensor r = Tensor::empty(Shape{4, 3, 40}), g = gpu_poisoned(Shape{4, 3, 40});
    k::ref::concat_last(parts, r);
    k::concat_last(parts_gpu, g);
    EXPECT_EQ(g.to_vector(), r.to_vector()) << "concat_last";
    std::vector<Tensor> back = {gpu_poisoned(Shape{4, 3, 1}), gpu_poisoned(Shape{4, 3, 7}),
                                gpu_poisoned(Shape{4, 3, 32})};
    k::split_last(g, back);
    for (size_t i = 0; i < parts.size(); ++i) EXPECT_EQ(back[i].to_vector(), parts[i].to_vector()) << "split " << i;
    std::vector<Tensor> wrong = {gpu_poisoned(Shape{4, 3, 1})};
    EXPECT_THROW(k::split_last(g, wrong), Error);
  }
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t((1 << 20) + 3)}) {
    Tensor x = random(Shape{n}, rng, 0.0f, 1.0f);
    Tensor r = Tensor::empty(Shape{}), g = gpu_poisoned(Shape{});
    k::ref::sum_all(x, r);
    k::sum_all(on_gpu(x), g);
    EXPECT_TRUE(test::all_close(g, r, 0.0f, 1e-6f)) << "sum_all of " << n;
  }
}

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

// ---- losses ---------------------------------------------------------------------------------------

TEST(CudaOps, SoftmaxCrossEntropyAndGatherMatchReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(110);
  using Dims = std::pair<int64_t, int64_t>;
  for (const auto& [N, K] : {Dims{1, 1}, Dims{7, 2}, Dims{33, 1000}, Dims{300, 37}}) {
    SCOPED_TRACE(testing::Message() << N << "x" << K);
    Tensor logits = random(Shape{N, K}, rng, -6.0f, 6.0f);
    std::vector<int64_t> label_values;
    for (int64_t n = 0; n < N; ++n) label_values.push_back(int64_t(rng.below(uint64_t(K))));
    Tensor labels = Tensor::from_vector_i64(label_values, Shape{N});
    Tensor lg = on_gpu(logits), lb = labels.to(gpu());

    Tensor p_ref = Tensor::empty(Shape{N, K}), p = gpu_poisoned(Shape{N, K});
    k::ref::softmax(logits, p_ref);
    k::softmax(lg, p);
    EXPECT_TRUE(test::all_close(p, p_ref, 1e-7f, 1e-5f)) << "softmax";

    Tensor loss_ref = Tensor::empty(Shape{}), loss = gpu_poisoned(Shape{});
    Tensor probs_ref = Tensor::empty(Shape{N, K}), probs = gpu_poisoned(Shape{N, K});
    k::ref::cross_entropy_forward(logits, labels, loss_ref, probs_ref);
    k::cross_entropy_forward(lg, lb, loss, probs);
    EXPECT_TRUE(test::all_close(loss, loss_ref, 1e-6f, 1e-5f)) << "cross entropy";
    EXPECT_TRUE(test::all_close(probs, probs_ref, 1e-7f, 1e-5f)) << "cross entropy probs";

    Tensor dloss = Tensor::from_vector({0.7f}, Shape{});
    Tensor d_ref = Tensor::empty(Shape{N, K}), d = gpu_poisoned(Shape{N, K});
    k::ref::cross_entropy_backward(dloss, probs_ref, labels, d_ref);
    k::cross_entropy_backward(on_gpu(dloss), on_gpu(probs_ref), lb, d);
    EXPECT_TRUE(test::all_close(d, d_ref, 1e-8f, 1e-6f)) << "cross entropy backward";

    Tensor g_ref = Tensor::empty(Shape{N}), g = gpu_poisoned(Shape{N});
    k::ref::gather_rows(logits, labels, g_ref);
    k::gather_rows(lg, lb, g);
    EXPECT_EQ(g.to_vector(), g_ref.to_vector()) << "gather_rows";
    Tensor dy = random(Shape{N}, rng);
    Tensor dg_ref = Tensor::empty(Shape{N, K}), dg = gpu_poisoned(Shape{N, K});
    k::ref::gather_rows_backward(dy, labels, dg_ref);
    k::gather_rows_backward(on_gpu(dy), lb, dg);
    EXPECT_EQ(dg.to_vector(), dg_ref.to_vector()) << "gather_rows backward";
  }
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

// ---- optimizers -----------------------------------------------------------------------------------

TEST(CudaOps, FusedOptimizersMatchReference) {
  FSTM_REQUIRE_CUDA();
  Rng rng(111);
  const Shape shape{37, 129};
  struct SgdCase {
    float momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (const SgdCase c : {SgdCase{0.0f, 0.0f, 0.0f, false}, SgdCase{0.9f, 0.0f, 1e-4f, false},
                          SgdCase{0.9f, 0.1f, 0.0f, false}, SgdCase{0.8f, 0.0f, 5e-4f, true}}) {
    SCOPED_TRACE(testing::Message() << "sgd momentum " << c.momentum << " nesterov " << c.nesterov);
    Tensor w_ref = random(shape, rng), buf_ref = Tensor::zeros(shape);
    Tensor w = on_gpu(w_ref), buf = Tensor::zeros(shape, DType::f32, gpu());
    for (int step = 0; step < 3; ++step) {
      Tensor g = random(shape, rng);
      k::SgdParams p;
      p.lr = 0.05f;
      p.momentum = c.momentum;
      p.dampening = c.dampening;
      p.weight_decay = c.weight_decay;
      p.nesterov = c.nesterov;
      p.first_step = step == 0;
      Tensor no_buf;
      k::ref::sgd_step(w_ref, g, c.momentum != 0.0f ? buf_ref : no_buf, p);
      Tensor gg = on_gpu(g);
      k::sgd_step(w, gg, c.momentum != 0.0f ? buf : no_buf, p);
    }
    EXPECT_TRUE(test::all_close(w, w_ref, 1e-6f, 1e-6f));
    if (c.momentum != 0.0f) {
      EXPECT_TRUE(test::all_close(buf, buf_ref, 1e-6f, 1e-6f));
    }
  }
  Tensor w_ref = random(shape, rng), m_ref = Tensor::zeros(shape), v_ref = Tensor::zeros(shape);
  Tensor w = on_gpu(w_ref), m = on_gpu(m_ref), v = on_gpu(v_ref);
  for (int64_t step = 1; step <= 3; ++step) {
    Tensor g = random(shape, rng);
    k::AdamWParams p;
    p.lr = 1e-3f;
    p.weight_decay = 4e-3f;
    p.step = step;
    k::ref::adamw_step(w_ref, g, m_ref, v_ref, p);
    k::adamw_step(w, on_gpu(g), m, v, p);
  }
  EXPECT_TRUE(test::all_close(w, w_ref, 1e-6f, 1e-5f)) << "adamw param";
  EXPECT_TRUE(test::all_close(m, m_ref, 1e-7f, 1e-5f)) << "adamw exp_avg";
  EXPECT_TRUE(test::all_close(v, v_ref, 1e-9f, 1e-5f)) << "adamw exp_avg_sq";
}
