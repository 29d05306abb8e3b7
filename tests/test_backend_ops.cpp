// One op table, run on every backend (the idea of ggml's test-backend-ops).
//
// Each row of the table names a kernel as kernels/*.h declares it, builds random operands on the
// host (odd sizes, and sizes large enough for the parallel branches), and calls the kernel's
// un-prefixed entry point, which dispatches on the tensors' device and the CPU path. The row runs
// twice: on the reference path (kernels::ref, plain loops: the oracle) and on a backend, `cpu` (the
// oneDNN/OpenMP fast path) or `cuda` (the CUDA kernels, skipped with the reason without a GPU).
// Outputs the kernel assigns start as NaN on the backend (every element must be written);
// outputs it accumulates into (parameter gradients, running statistics, optimizer state) start
// from the same random values on both sides. Then every output is compared:
//
//   |backend - reference| <= rel * (max|reference| + |reference|)
//
// with `rel` per row: 0 where both sides do the same float operations (adds, products, copies,
// max pooling, masking), 1e-6..1e-5 for reductions summed in another order, 1e-4 for convolutions
// and matrix products (other algorithms).
//
// tests/check_kernel_table.py reads the op names of this table (`{"name",` at the start of a row)
// and fails when a kernel that a header declares is missing here, or a row names no kernel. The
// finite-difference checks of the differentiable ops are in test_ops_gradcheck.cpp; edge cases of
// single families (special values, aliasing, errors) in test_ops_<family>.cpp.
#include <gtest/gtest-spi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/backend.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/depthwise_conv.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "kernels/shapley_mask.h"
#include "tests/ops_harness.h"

using namespace fstm;
namespace k = fstm::kernels;

namespace {

// ---- the harness --------------------------------------------------------------------------------

enum class Backend { cpu, cuda };
const char* backend_name(Backend b) { return b == Backend::cpu ? "cpu" : "cuda"; }
Device device_of(Backend b) { return b == Backend::cpu ? Device::cpu() : Device::cuda(0); }

// A kernel's tensors: read-only inputs, outputs it assigns, tensors it updates in place.
struct Operands {
  std::vector<Tensor> in, out, acc;
};

struct OpCase {
  std::string op;     // the kernel, as kernels/*.h names it
  std::string label;  // shapes and parameters
  float rel = 0;
  std::function<Operands(Rng&)> make;     // host tensors
  std::function<void(Operands&)> run;     // the un-prefixed entry point
  // Where the reference is another kernel (depthwise convolution: conv2d with groups = C), and the
  // op exists on the CPU only.
  std::function<void(Operands&)> reference = nullptr;
  bool cpu_only = false;
};

Tensor copy_to(const Tensor& t, Device d) {
  if (!t.defined()) return Tensor();
  return t.device() == d ? t.clone() : t.to(d);
}

Tensor poisoned_on(const Tensor& like, Device d) {
  if (!like.defined()) return Tensor();
  Tensor t = Tensor::empty(like.shape(), like.dtype(), Device::cpu());
  if (t.dtype() == DType::f32) test::poison(t);
  return copy_to(t, d);
}

Operands on(const Operands& o, Device d) {
  Operands r;
  for (const Tensor& t : o.in) r.in.push_back(copy_to(t, d));
  for (const Tensor& t : o.out) r.out.push_back(poisoned_on(t, d));
  for (const Tensor& t : o.acc) r.acc.push_back(copy_to(t, d));
  return r;
}

void expect_close(const Tensor& got, const Tensor& want, float rel, const std::string& what) {
  if (!want.defined()) return;
  const Tensor g = got.to(Device::cpu()), w = want.to(Device::cpu());
  ASSERT_EQ(g.shape(), w.shape()) << what;
  if (rel == 0.0f || w.dtype() != DType::f32) {  // the same operations: the same bits
    const auto* a = static_cast<const uint8_t*>(g.raw_data());
    const auto* b = static_cast<const uint8_t*>(w.raw_data());
    const size_t n = w.nbytes(), at = size_t(std::mismatch(a, a + n, b).first - a);
    EXPECT_EQ(at, n) << what << ": not bit-identical from byte " << at << " of " << n << " (element "
                     << at / dtype_size(w.dtype()) << ")";
    return;
  }
  EXPECT_TRUE(test::close_to_scale(g, w, rel)) << what;
}

uint64_t seed_of(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void check(const OpCase& c, Backend b) {
  const std::string what = c.op + " " + c.label + " on " + backend_name(b);
  Rng rng(seed_of(c.op + c.label));
  const Operands host = c.make(rng);
  Operands want = on(host, Device::cpu());
  want.out.clear();
  for (const Tensor& t : host.out) want.out.push_back(t.defined() ? Tensor::empty(t.shape(), t.dtype()) : Tensor());
  {
    test::CpuPathScope path(k::CpuPath::Reference);
    (c.reference ? c.reference : c.run)(want);
  }
  Operands got = on(host, device_of(b));
  {
    test::CpuPathScope path(k::CpuPath::Fast);
    c.run(got);
  }
  // CUDA's exp, rsqrt and reductions differ from the CPU's in the last bits: 1e-5 at least there,
  // unless the row is exact (the same float operations give the same bits on every backend).
  const float rel = b == Backend::cuda && c.rel > 0 ? std::max(c.rel, 1e-5f) : c.rel;
  for (size_t i = 0; i < want.out.size(); ++i) expect_close(got.out[i], want.out[i], rel, what + ": output " + std::to_string(i));
  for (size_t i = 0; i < want.acc.size(); ++i)
    expect_close(got.acc[i], want.acc[i], rel, what + ": updated operand " + std::to_string(i));
}

Tensor rnd(const Shape& s, Rng& rng, float lo = -1.0f, float hi = 1.0f) { return test::random_tensor(s, rng, lo, hi); }
Tensor shaped(const Shape& s, DType dt = DType::f32) { return Tensor::empty(s, dt); }

std::string str(const Shape& s) { return s.str(); }

// ---- the table, by op family -----------------------------------------------------------------------

void activation_rows(std::vector<OpCase>& t) {
  using A = k::Activation;
  for (A a : {A::Identity, A::Relu, A::Sigmoid, A::Silu})
    for (int64_t n : {int64_t(7), int64_t(33 * 13), int64_t(100003)}) {
      const std::string label = std::string(k::activation_name(a)) + " n=" + std::to_string(n);
      auto input = [n](Rng& rng) {
        Tensor x = rnd(Shape{n}, rng, -8.0f, 8.0f);
        const float special[] = {0.0f, -0.0f, 20.0f, -20.0f, 87.5f, -87.5f, 90.0f};
        for (size_t i = 0; i < 7 && int64_t(i) < n; ++i) x.data<float>()[i] = special[i];
        return x;
      };
      t.push_back({"activation_forward", label, 2e-6f, [=](Rng& rng) { return Operands{{input(rng)}, {shaped(Shape{n})}, {}}; },
                   [a](Operands& o) { k::activation_forward(a, o.in[0], o.out[0]); }});
      t.push_back({"activation_backward", label, 2e-6f,
                   [=](Rng& rng) {
                     Tensor x = input(rng), y = shaped(Shape{n});
                     k::ref::activation_forward(a, x, y);
                     return Operands{{rnd(Shape{n}, rng), x, y}, {shaped(Shape{n})}, {}};
                   },
                   [a](Operands& o) { k::activation_backward(a, o.in[0], o.in[1], o.in[2], o.out[0]); }});
    }
}

void conv_rows(std::vector<OpCase>& t) {
  struct C {
    Shape x;
    int64_t co, kh, kw;
    int sh, sw, ph, pw, dh, dw, groups;
    bool bias;
  };
  const C cases[] = {
      {Shape{2, 7, 9, 3}, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},    // odd sizes, same padding
      {Shape{1, 11, 8, 6}, 4, 3, 2, 2, 1, 0, 1, 1, 1, 2, false},  // grouped, strided, unequal kernel
      {Shape{2, 10, 10, 4}, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1, true},  // dilated
      {Shape{1, 9, 9, 8}, 8, 3, 3, 2, 2, 1, 1, 1, 1, 8, true},    // depthwise through conv2d
      {Shape{2, 14, 14, 32}, 64, 1, 1, 2, 2, 0, 0, 1, 1, 1, false},  // 1x1 downsample
      {Shape{1, 15, 13, 16}, 24, 7, 7, 2, 2, 3, 3, 1, 1, 1, true}, // ResNet stem-like
  };
  for (const C& c : cases) {
    k::Conv2dParams p;
    p.stride_h = c.sh, p.stride_w = c.sw, p.pad_h = c.ph, p.pad_w = c.pw, p.dilation_h = c.dh, p.dilation_w = c.dw;
    p.groups = c.groups;
    const Shape ws{c.co, c.x[3] / c.groups, c.kh, c.kw};
    const Shape ys = k::conv2d_output_shape(c.x, ws, p);
    const std::string label = str(c.x) + " w" + str(ws) + " s" + std::to_string(c.sh) + " p" + std::to_string(c.ph) +
                              " d" + std::to_string(c.dh) + " g" + std::to_string(c.groups) + (c.bias ? " bias" : "");
    t.push_back({"conv2d_forward", label, 1e-4f,
                 [=](Rng& rng) {
                   return Operands{{rnd(c.x, rng), rnd(ws, rng), c.bias ? rnd(Shape{c.co}, rng) : Tensor()}, {shaped(ys)}, {}};
                 },
                 [p](Operands& o) { k::conv2d_forward(o.in[0], o.in[1], o.in[2], p, o.out[0]); }});
    t.push_back({"conv2d_backward_data", label, 1e-4f,
                 [=](Rng& rng) { return Operands{{rnd(ys, rng), rnd(ws, rng)}, {shaped(c.x)}, {}}; },
                 [p](Operands& o) { k::conv2d_backward_data(o.in[0], o.in[1], p, o.out[0]); }});
    t.push_back({"conv2d_backward_weights", label, 1e-4f,
                 [=](Rng& rng) {
                   return Operands{{rnd(ys, rng), rnd(c.x, rng)}, {}, {rnd(ws, rng), c.bias ? rnd(Shape{c.co}, rng) : Tensor()}};
                 },
                 [p](Operands& o) { k::conv2d_backward_weights(o.in[0], o.in[1], p, o.acc[0], o.acc[1]); }});
  }
}

// EfficientNet's depthwise kernels exist on the CPU only; their reference is conv2d with groups = C.
void depthwise_rows(std::vector<OpCase>& t) {
  struct C {
    Shape x;
    int64_t k;
    int stride, pad, dilation;
  };
  for (const C& c : {C{Shape{2, 9, 11, 8}, 3, 1, 1, 1}, C{Shape{1, 16, 16, 40}, 5, 2, 2, 1}, C{Shape{2, 7, 7, 19}, 3, 1, 2, 2}}) {
    k::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride, p.pad_h = p.pad_w = c.pad, p.dilation_h = p.dilation_w = c.dilation;
    p.groups = int(c.x[3]);
    const Shape ws{c.x[3], 1, c.k, c.k};
    const Shape ys = k::conv2d_output_shape(c.x, ws, p);
    const std::string label = str(c.x) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " d" +
                              std::to_string(c.dilation);
    OpCase f{"depthwise_conv2d_forward", label, 1e-5f,
             [=](Rng& rng) { return Operands{{rnd(c.x, rng), rnd(ws, rng), rnd(Shape{c.x[3]}, rng)}, {shaped(ys)}, {}}; },
             [p](Operands& o) { k::cpu::depthwise_conv2d_forward(o.in[0], o.in[1], o.in[2], p, o.out[0]); },
             [p](Operands& o) { k::ref::conv2d_forward(o.in[0], o.in[1], o.in[2], p, o.out[0]); }, true};
    OpCase d{"depthwise_conv2d_backward_data", label, 1e-5f,
             [=](Rng& rng) { return Operands{{rnd(ys, rng), rnd(ws, rng)}, {shaped(c.x)}, {}}; },
             [p](Operands& o) { k::cpu::depthwise_conv2d_backward_data(o.in[0], o.in[1], p, o.out[0]); },
             [p](Operands& o) { k::ref::conv2d_backward_data(o.in[0], o.in[1], p, o.out[0]); }, true};
    OpCase w{"depthwise_conv2d_backward_weights", label, 1e-5f,
             [=](Rng& rng) { return Operands{{rnd(ys, rng), rnd(c.x, rng)}, {}, {rnd(ws, rng), rnd(Shape{c.x[3]}, rng)}}; },
             [p](Operands& o) { k::cpu::depthwise_conv2d_backward_weights(o.in[0], o.in[1], p, o.acc[0], o.acc[1]); },
             [p](Operands& o) { k::ref::conv2d_backward_weights(o.in[0], o.in[1], p, o.acc[0], o.acc[1]); }, true};
    t.insert(t.end(), {f, d, w});
  }
}

void linear_rows(std::vector<OpCase>& t) {
  struct C {
    int64_t n, in, out;
    bool bias;
  };
  for (const C& c : {C{3, 7, 5, true}, C{17, 130, 33, false}, C{64, 512, 10, true}}) {
    const Shape xs{c.n, c.in}, ws{c.out, c.in}, ys{c.n, c.out};
    const std::string label = str(xs) + " -> " + std::to_string(c.out) + (c.bias ? " bias" : "");
    t.push_back({"linear_forward", label, 1e-4f,
                 [=](Rng& rng) {
                   return Operands{{rnd(xs, rng), rnd(ws, rng), c.bias ? rnd(Shape{c.out}, rng) : Tensor()}, {shaped(ys)}, {}};
                 },
                 [](Operands& o) { k::linear_forward(o.in[0], o.in[1], o.in[2], o.out[0]); }});
    t.push_back({"linear_backward_data", label, 1e-4f,
                 [=](Rng& rng) { return Operands{{rnd(ys, rng), rnd(ws, rng)}, {shaped(xs)}, {}}; },
                 [](Operands& o) { k::linear_backward_data(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"linear_backward_weights", label, 1e-4f,
                 [=](Rng& rng) {
                   return Operands{{rnd(ys, rng), rnd(xs, rng)}, {}, {rnd(ws, rng), c.bias ? rnd(Shape{c.out}, rng) : Tensor()}};
                 },
                 [](Operands& o) { k::linear_backward_weights(o.in[0], o.in[1], o.acc[0], o.acc[1]); }});
  }
}

void batch_norm_rows(std::vector<OpCase>& t) {
  const float momentum = 0.1f, eps = 1e-5f;
  for (const Shape& xs : {Shape{2, 5, 7, 3}, Shape{4, 14, 14, 64}, Shape{3, 1, 1, 130}}) {
    const Shape cs{xs[3]};
    const std::string label = str(xs);
    auto var = [cs](Rng& rng) { return rnd(cs, rng, 0.5f, 2.0f); };
    // the saved statistics (and y) of a train-mode forward, for the backward rows
    auto forward = [=](const Tensor& x, const Tensor& g, const Tensor& b, const Tensor& res, Tensor& y, Tensor& sm, Tensor& si) {
      Tensor rm, rv;
      y = shaped(xs), sm = shaped(cs), si = shaped(cs);
      if (res.defined()) {
        k::ref::batch_norm_relu_forward_train(x, g, b, res, rm, rv, momentum, eps, y, sm, si);
      } else {
        k::ref::batch_norm_forward_train(x, g, b, rm, rv, momentum, eps, y, sm, si);
      }
    };
    t.push_back({"batch_norm_forward_train", label, 1e-5f,
                 [=](Rng& rng) {
                   return Operands{{rnd(xs, rng, -2, 3), rnd(cs, rng), rnd(cs, rng)},
                                   {shaped(xs), shaped(cs), shaped(cs)},
                                   {rnd(cs, rng), var(rng)}};
                 },
                 [=](Operands& o) {
                   k::batch_norm_forward_train(o.in[0], o.in[1], o.in[2], o.acc[0], o.acc[1], momentum, eps, o.out[0],
                                               o.out[1], o.out[2]);
                 }});
    t.push_back({"batch_norm_forward_eval", label, 1e-5f,
                 [=](Rng& rng) {
                   return Operands{{rnd(xs, rng), rnd(cs, rng), rnd(cs, rng), rnd(cs, rng), var(rng)}, {shaped(xs)}, {}};
                 },
                 [=](Operands& o) { k::batch_norm_forward_eval(o.in[0], o.in[1], o.in[2], o.in[3], o.in[4], eps, o.out[0]); }});
    t.push_back({"batch_norm_backward_train", label, 1e-5f,
                 [=](Rng& rng) {
                   Tensor x = rnd(xs, rng, -2, 3), g = rnd(cs, rng), b = rnd(cs, rng), y, sm, si;
                   forward(x, g, b, Tensor(), y, sm, si);
                   return Operands{{rnd(xs, rng), x, g, sm, si}, {shaped(xs)}, {rnd(cs, rng), rnd(cs, rng)}};
                 },
                 [](Operands& o) {
                   k::batch_norm_backward_train(o.in[0], o.in[1], o.in[2], o.in[3], o.in[4], o.out[0], o.acc[0], o.acc[1]);
                 }});
    t.push_back({"batch_norm_backward_eval", label, 1e-5f,
                 [=](Rng& rng) {
                   return Operands{{rnd(xs, rng), rnd(xs, rng), rnd(cs, rng), rnd(cs, rng), var(rng)},
                                   {shaped(xs)},
                                   {rnd(cs, rng), rnd(cs, rng)}};
                 },
                 [=](Operands& o) {
                   k::batch_norm_backward_eval(o.in[0], o.in[1], o.in[2], o.in[3], o.in[4], eps, o.out[0], o.acc[0], o.acc[1]);
                 }});
    for (bool residual : {false, true}) {
      const std::string l = label + (residual ? " + residual" : "");
      t.push_back({"batch_norm_relu_forward_train", l, 1e-5f,
                   [=](Rng& rng) {
                     return Operands{{rnd(xs, rng, -2, 3), rnd(cs, rng), rnd(cs, rng), residual ? rnd(xs, rng) : Tensor()},
                                     {shaped(xs), shaped(cs), shaped(cs)},
                                     {rnd(cs, rng), var(rng)}};
                   },
                   [=](Operands& o) {
                     k::batch_norm_relu_forward_train(o.in[0], o.in[1], o.in[2], o.in[3], o.acc[0], o.acc[1], momentum, eps,
                                                      o.out[0], o.out[1], o.out[2]);
                   }});
      t.push_back({"batch_norm_relu_backward_train", l, 1e-5f,
                   [=](Rng& rng) {
                     Tensor x = rnd(xs, rng, -2, 3), g = rnd(cs, rng), b = rnd(cs, rng), y, sm, si;
                     forward(x, g, b, residual ? rnd(xs, rng) : Tensor(), y, sm, si);
                     return Operands{{rnd(xs, rng), x, y, g, sm, si},
                                     {shaped(xs), residual ? shaped(xs) : Tensor()},
                                     {rnd(cs, rng), rnd(cs, rng)}};
                   },
                   [](Operands& o) {
                     k::batch_norm_relu_backward_train(o.in[0], o.in[1], o.in[2], o.in[3], o.in[4], o.in[5], o.out[0],
                                                       o.acc[0], o.acc[1], o.out[1]);
                   }});
    }
  }
}

void pool_rows(std::vector<OpCase>& t) {
  struct C {
    Shape x;
    int kernel, stride, pad;
  };
  for (const C& c : {C{Shape{2, 9, 11, 5}, 3, 2, 1}, C{Shape{1, 14, 14, 64}, 3, 2, 1}, C{Shape{2, 8, 7, 3}, 2, 2, 0}}) {
    k::Pool2dParams p;
    p.kernel_h = p.kernel_w = c.kernel, p.stride_h = p.stride_w = c.stride, p.pad_h = p.pad_w = c.pad;
    const Shape ys = k::max_pool2d_output_shape(c.x, p);
    const std::string label = str(c.x) + " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride);
    t.push_back({"max_pool2d_forward", label, 0.0f, [=](Rng& rng) { return Operands{{rnd(c.x, rng)}, {shaped(ys)}, {}}; },
                 [p](Operands& o) { k::max_pool2d_forward(o.in[0], p, o.out[0]); }});
    t.push_back({"max_pool2d_backward", label, 1e-6f,
                 [=](Rng& rng) { return Operands{{rnd(ys, rng), rnd(c.x, rng)}, {shaped(c.x)}, {}}; },
                 [p](Operands& o) { k::max_pool2d_backward(o.in[0], o.in[1], p, o.out[0]); }});
  }
  for (const Shape& xs : {Shape{1, 7, 7, 3}, Shape{3, 9, 13, 65}, Shape{2, 28, 28, 64}}) {
    const Shape ys{xs[0], xs[3]};
    t.push_back({"global_avg_pool_forward", str(xs), 1e-6f,
                 [=](Rng& rng) { return Operands{{rnd(xs, rng)}, {shaped(ys)}, {}}; },
                 [](Operands& o) { k::global_avg_pool_forward(o.in[0], o.out[0]); }});
    t.push_back({"global_avg_pool_backward", str(xs), 1e-6f,
                 [=](Rng& rng) { return Operands{{rnd(ys, rng)}, {shaped(xs)}, {}}; },
                 [](Operands& o) { k::global_avg_pool_backward(o.in[0], o.out[0]); }});
  }
}

void elementwise_rows(std::vector<OpCase>& t) {
  for (const Shape& s : {Shape{3, 5, 7, 9}, Shape{2, 28, 28, 64}}) {
    const Shape nc{s[0], s[3]}, n{s[0]};
    const std::string l = str(s);
    t.push_back({"add", l, 0.0f, [=](Rng& rng) { return Operands{{rnd(s, rng), rnd(s, rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::add(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"add_inplace", l, 0.0f, [=](Rng& rng) { return Operands{{rnd(s, rng)}, {}, {rnd(s, rng)}}; },
                 [](Operands& o) { k::add_inplace(o.acc[0], o.in[0]); }});
    t.push_back({"mul", l, 0.0f, [=](Rng& rng) { return Operands{{rnd(s, rng), rnd(s, rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::mul(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"affine", l + " 0.7x-1.5", 1e-6f, [=](Rng& rng) { return Operands{{rnd(s, rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::affine(o.in[0], 0.7f, -1.5f, o.out[0]); }});
    t.push_back({"mul_channel", l, 0.0f, [=](Rng& rng) { return Operands{{rnd(s, rng), rnd(nc, rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::mul_channel(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"mul_channel_backward_scale", l, 1e-5f,
                 [=](Rng& rng) { return Operands{{rnd(s, rng), rnd(s, rng)}, {shaped(nc)}, {}}; },
                 [](Operands& o) { k::mul_channel_backward_scale(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"mul_sample", l, 0.0f, [=](Rng& rng) { return Operands{{rnd(s, rng), rnd(n, rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::mul_sample(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"sum_all", l, 1e-5f, [=](Rng& rng) { return Operands{{rnd(s, rng)}, {shaped(Shape{1})}, {}}; },
                 [](Operands& o) { k::sum_all(o.in[0], o.out[0]); }});
  }
  // concatenation along the last axis and its inverse: odd widths, and a wide one
  for (const std::vector<int64_t>& widths : {std::vector<int64_t>{3, 1, 5}, std::vector<int64_t>{512, 512}}) {
    const Shape lead{2, 3};
    int64_t total = 0;
    std::string l;
    for (int64_t w : widths) {
      total += w;
      if (!l.empty()) l += '+';
      l += std::to_string(w);
    }
    auto with_last = [lead](int64_t w) { return Shape{lead[0], lead[1], w}; };
    t.push_back({"concat_last", l, 0.0f,
                 [=](Rng& rng) {
                   Operands o;
                   for (int64_t w : widths) o.in.push_back(rnd(with_last(w), rng));
                   o.out = {shaped(with_last(total))};
                   return o;
                 },
                 [](Operands& o) { k::concat_last(o.in, o.out[0]); }});
    t.push_back({"split_last", l, 0.0f,
                 [=](Rng& rng) {
                   Operands o{{rnd(with_last(total), rng)}, {}, {}};
                   for (int64_t w : widths) o.out.push_back(shaped(with_last(w)));
                   return o;
                 },
                 [](Operands& o) { k::split_last(o.in[0], o.out); }});
  }
}

void loss_rows(std::vector<OpCase>& t) {
  for (const Shape& s : {Shape{5, 2}, Shape{7, 13}, Shape{64, 1000}}) {
    const int64_t N = s[0], K = s[1];
    const std::string l = str(s);
    auto labels = [N, K](Rng& rng) { return test::random_labels(N, K, rng); };
    t.push_back({"softmax", l, 1e-6f, [=](Rng& rng) { return Operands{{rnd(s, rng, -5, 5)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::softmax(o.in[0], o.out[0]); }});
    t.push_back({"cross_entropy_forward", l, 1e-6f,
                 [=](Rng& rng) { return Operands{{rnd(s, rng, -5, 5), labels(rng)}, {shaped(Shape{}), shaped(s)}, {}}; },
                 [](Operands& o) { k::cross_entropy_forward(o.in[0], o.in[1], o.out[0], o.out[1]); }});
    t.push_back({"cross_entropy_backward", l, 1e-6f,
                 [=](Rng& rng) {
                   Tensor probs = shaped(s);
                   k::ref::softmax(rnd(s, rng, -5, 5), probs);
                   return Operands{{rnd(Shape{1}, rng), probs, labels(rng)}, {shaped(s)}, {}};
                 },
                 [](Operands& o) { k::cross_entropy_backward(o.in[0], o.in[1], o.in[2], o.out[0]); }});
    t.push_back({"gather_rows", l, 0.0f,
                 [=](Rng& rng) { return Operands{{rnd(s, rng), labels(rng)}, {shaped(Shape{N})}, {}}; },
                 [](Operands& o) { k::gather_rows(o.in[0], o.in[1], o.out[0]); }});
    t.push_back({"gather_rows_backward", l, 0.0f,
                 [=](Rng& rng) { return Operands{{rnd(Shape{N}, rng), labels(rng)}, {shaped(s)}, {}}; },
                 [](Operands& o) { k::gather_rows_backward(o.in[0], o.in[1], o.out[0]); }});
  }
}

void optim_rows(std::vector<OpCase>& t) {
  for (int64_t n : {int64_t(7), int64_t(100003)}) {
    const Shape s{n};
    for (int variant = 0; variant < 3; ++variant) {  // momentum, Nesterov, the first step (buffer = gradient)
      k::SgdParams p;
      p.lr = 0.05f, p.momentum = 0.9f, p.dampening = 0.1f, p.weight_decay = 1e-3f, p.nesterov = variant == 1;
      p.first_step = variant == 2;
      const char* names[] = {"", " nesterov", " first step"};
      t.push_back({"sgd_step", "n=" + std::to_string(n) + names[variant], 1e-6f,
                   [=](Rng& rng) { return Operands{{rnd(s, rng)}, {}, {rnd(s, rng), rnd(s, rng)}}; },
                   [p](Operands& o) { k::sgd_step(o.acc[0], o.in[0], o.acc[1], p); }});
    }
    k::AdamWParams p;
    p.lr = 1e-3f, p.weight_decay = 4e-3f, p.step = 3;
    t.push_back({"adamw_step", "n=" + std::to_string(n) + " step 3", 1e-6f,
                 [=](Rng& rng) { return Operands{{rnd(s, rng)}, {}, {rnd(s, rng), rnd(s, rng), rnd(s, rng, 0.0f, 0.5f)}}; },
                 [p](Operands& o) { k::adamw_step(o.acc[0], o.in[0], o.acc[1], o.acc[2], p); }});
  }
}

// The Shapley masking kernel takes plain pointers: operands are the image, the baseline, the grid
// maps, the permutation ranks and the rows; the output is the masked batch.
void shapley_rows(std::vector<OpCase>& t) {
  struct C {
    int64_t h, w;
    int grid, perms, rows;
  };
  for (const C& c : {C{13, 11, 4, 3, 17}, C{29, 23, 5, 4, 40}, C{16, 16, 16, 2, 9}}) {
    const int players = c.grid * c.grid;
    auto i32 = [](const std::vector<int32_t>& v) {
      Tensor x = Tensor::empty(Shape{int64_t(v.size())}, DType::i32);
      std::memcpy(x.raw_data(), v.data(), v.size() * sizeof(int32_t));
      return x;
    };
    t.push_back({"shapley_mask",
                 std::to_string(c.h) + "x" + std::to_string(c.w) + " L=" + std::to_string(c.grid) + " rows=" +
                     std::to_string(c.rows),
                 0.0f,
                 [=](Rng& rng) {
                   std::vector<int32_t> row_cell(size_t(c.h)), col_cell(size_t(c.w)), edges(size_t(c.grid) + 1, int32_t(c.w));
                   for (int64_t y = 0; y < c.h; ++y) row_cell[size_t(y)] = int32_t(y * c.grid / c.h);
                   for (int64_t x = c.w - 1; x >= 0; --x) {
                     col_cell[size_t(x)] = int32_t(x * c.grid / c.w);
                     edges[size_t(col_cell[size_t(x)])] = int32_t(x);
                   }
                   std::vector<int32_t> ranks(size_t(c.perms) * size_t(players)), rows;
                   for (int p = 0; p < c.perms; ++p) {
                     std::vector<int32_t> order(static_cast<size_t>(players));
                     for (int i = 0; i < players; ++i) order[size_t(i)] = i;
                     for (int i = players - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i) + 1)]);
                     for (int i = 0; i < players; ++i) ranks[size_t(p) * size_t(players) + size_t(order[size_t(i)])] = i;
                   }
                   for (int r = 0; r < c.rows; ++r) {
                     rows.push_back(int32_t(rng.below(uint64_t(c.perms))));
                     rows.push_back(int32_t(rng.below(uint64_t(players) + 1)));
                   }
                   const Shape img{c.h, c.w, 3};
                   return Operands{{rnd(img, rng), rnd(img, rng), i32(row_cell), i32(col_cell), i32(edges), i32(ranks), i32(rows)},
                                   {shaped(Shape{c.rows, c.h, c.w, 3})},
                                   {}};
                 },
                 [=](Operands& o) {
                   k::ShapleyMaskArgs a;
                   a.height = c.h, a.width = c.w, a.channels = 3, a.grid = c.grid;
                   a.image_f32 = o.in[0].data<float>(), a.baseline_f32 = o.in[1].data<float>();
                   a.image = o.in[0].raw_data(), a.baseline = o.in[1].raw_data();
                   a.row_cell = static_cast<const int32_t*>(o.in[2].raw_data());
                   a.col_cell = static_cast<const int32_t*>(o.in[3].raw_data());
                   a.col_edges = static_cast<const int32_t*>(o.in[4].raw_data());
                   a.ranks = static_cast<const int32_t*>(o.in[5].raw_data());
                   a.perms = c.perms;
                   a.rows = static_cast<const int32_t*>(o.in[6].raw_data());
                   a.n = c.rows;
                   a.out = o.out[0].raw_data();
                   a.dtype = DType::f32;
                   k::shapley_mask(a, o.out[0].device());
                 }});
  }
}

const std::vector<OpCase>& table() {
  static const std::vector<OpCase> t = [] {
    std::vector<OpCase> rows;
    activation_rows(rows);
    batch_norm_rows(rows);
    conv_rows(rows);
    depthwise_rows(rows);
    elementwise_rows(rows);
    linear_rows(rows);
    loss_rows(rows);
    optim_rows(rows);
    pool_rows(rows);
    shapley_rows(rows);
    return rows;
  }();
  return t;
}

void run_table(Backend b) {
  int ran = 0;
  for (const OpCase& c : table()) {
    if (c.cpu_only && b != Backend::cpu) continue;
    SCOPED_TRACE(c.op + " " + c.label);
    check(c, b);
    ++ran;
  }
  EXPECT_GT(ran, 100) << "the table lost its rows";
}

}  // namespace

TEST(BackendOps, CpuFastPathMatchesReference) {
  FSTM_REQUIRE_ONEDNN();
  run_table(Backend::cpu);
}

TEST(BackendOps, CudaMatchesReference) {
  FSTM_REQUIRE_CUDA();
  run_table(Backend::cuda);
}

namespace {
// The harness itself: a kernel that writes a wrong value, or skips an element, must fail a row.
OpCase add_off_by(float error, bool skip_last) {
  return {"add", "3 (made wrong)", 0.0f,
          [](Rng& rng) { return Operands{{rnd(Shape{3}, rng), rnd(Shape{3}, rng)}, {shaped(Shape{3})}, {}}; },
          [=](Operands& o) {
            if (k::cpu_path() == k::CpuPath::Reference) return k::add(o.in[0], o.in[1], o.out[0]);
            for (int i = 0; i < (skip_last ? 2 : 3); ++i)
              o.out[0].data<float>()[i] = o.in[0].data<float>()[i] + o.in[1].data<float>()[i] + (i == 1 ? error : 0.0f);
          }};
}
}  // namespace

TEST(BackendOps, HarnessCatchesAWrongOrUnwrittenOutput) {
  EXPECT_NONFATAL_FAILURE(check(add_off_by(1e-3f, false), Backend::cpu), "add 3 (made wrong) on cpu: output 0");
  EXPECT_NONFATAL_FAILURE(check(add_off_by(0.0f, true), Backend::cpu), "add 3 (made wrong) on cpu: output 0");
}
