// Linear layer on oneDNN's matmul. Transposes are strides, not copies:
//   forward        y [N, O]  = x [N, I]  * w^T [I, O] + b      (w^T: dims {I, O}, strides {1, I})
//   backward data  dx [N, I] = dy [N, O] * w [O, I]
//   backward wts   dw [O, I] += dy^T [O, N] * x [N, I]          (dy^T: dims {O, N}, strides {1, O})
// The weight gradient accumulates inside the matmul through oneDNN's sum post-op (dst = dst + ...).
#include "kernels/cpu/onednn_common.h"
#include "kernels/linear.h"

namespace fstm::kernels::cpu {

namespace {

using namespace onednn;

enum LinearOp : int64_t { kForward = 1, kBackwardData = 2, kBackwardWeights = 3 };

dnnl::memory::desc strided(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  return dnnl::memory::desc({rows, cols}, dt::f32, dims{row_stride, col_stride});
}
dnnl::memory::desc row_major(int64_t rows, int64_t cols) { return strided(rows, cols, cols, 1); }

struct MatmulEntry {
  dnnl::matmul prim;
  dnnl::memory::desc src, weights, bias, dst;
};

MatmulEntry make_matmul(const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                        const dnnl::memory::desc& bias, const dnnl::memory::desc& dst, bool accumulate) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const auto desc = bias.is_zero() ? dnnl::matmul::desc(src, weights, dst) : dnnl::matmul::desc(src, weights, bias, dst);
  return MatmulEntry{dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, engine())), src, weights, bias, dst};
}

PrimitiveCache<MatmulEntry> g_cache;

void run(const MatmulEntry& e, const Tensor& src, const Tensor& weights, const Tensor& bias, Tensor& dst) {
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(e.src, src)},
                                             {DNNL_ARG_WEIGHTS, wrap(e.weights, weights)},
                                             {DNNL_ARG_DST, wrap(e.dst, dst)}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(e.bias, bias));
  e.prim.execute(stream(), args);
  stream().wait();
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  auto e = g_cache.get(Key{{kForward, N, I, O, b.defined()}}, [&] {
    return make_matmul(row_major(N, I), strided(I, O, 1, I),
                       b.defined() ? row_major(1, O) : dnnl::memory::desc(), row_major(N, O), false);
  });
  run(*e, x, w, b, y);
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  const int64_t N = dy.size(0), O = w.size(0), I = w.size(1);
  auto e = g_cache.get(Key{{kBackwardData, N, I, O}}, [&] {
    return make_matmul(row_major(N, O), row_major(O, I), dnnl::memory::desc(), row_major(N, I), false);
  });
  run(*e, dy, w, Tensor(), dx);
}

void linear_backward_weights(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db) {
  const int64_t N = x.size(0), I = x.size(1), O = dw.size(0);
  auto e = g_cache.get(Key{{kBackwardWeights, N, I, O}}, [&] {
    return make_matmul(strided(O, N, 1, O), row_major(N, I), dnnl::memory::desc(), row_major(O, I), true);
  });
  run(*e, dy, x, Tensor(), dw);
  if (db.defined()) {
    // db [O] += sum_n dy[n, :]: a few thousand values, one pass over dy.
    const float* pdy = dy.data<float>();
    float* pdb = db.data<float>();
    for (int64_t n = 0; n < N; ++n)
#pragma omp simd
      for (int64_t o = 0; o < O; ++o) pdb[o] += pdy[n * O + o];
  }
}

}  // namespace fstm::kernels::cpu
