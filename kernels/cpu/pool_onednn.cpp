// Max pooling on oneDNN, NHWC. oneDNN's max pooling leaves padding out of the window (as -inf
// would) and keeps the first maximum on ties (it replaces only on strictly greater), as PyTorch does.
// Backward gets x, not the argmax, so it reruns the forward pass in training mode to get oneDNN's
// workspace (the argmax of every window), then routes dy through it.
#include "kernels/cpu/onednn_common.h"
#include "kernels/pool.h"

namespace fstm::kernels::cpu {

namespace {

using namespace onednn;

enum PoolOp : int64_t { kForward = 1, kBackward = 2 };

struct PoolGeometry {
  dnnl::memory::desc src, dst;
  dims strides, kernel, pad_l, pad_r;
};

PoolGeometry geometry(const Shape& x, const Shape& y, const Pool2dParams& p) {
  // Right padding = left padding, as PyTorch passes it; oneDNN floors the output size like we do.
  return {nhwc_desc(x), nhwc_desc(y), {p.stride_h, p.stride_w}, {p.kernel_h, p.kernel_w},
          {p.pad_h, p.pad_w},         {p.pad_h, p.pad_w}};
}

Key pool_key(PoolOp op, const Shape& x, const Pool2dParams& p) {
  return Key{{op, x[0], x[1], x[2], x[3], p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w}};
}

dnnl::pooling_forward::primitive_desc forward_pd(const PoolGeometry& g, dnnl::prop_kind kind) {
  const dnnl::pooling_forward::desc desc(kind, dnnl::algorithm::pooling_max, g.src, g.dst, g.strides, g.kernel,
                                         g.pad_l, g.pad_r);
  return dnnl::pooling_forward::primitive_desc(desc, engine());
}

struct PoolForward {
  dnnl::pooling_forward prim;
};

struct PoolBackward {
  dnnl::pooling_forward forward;  // training mode: also writes the workspace
  dnnl::pooling_backward backward;
  dnnl::memory::desc workspace;
};

PrimitiveCache<PoolForward> g_forward;
PrimitiveCache<PoolBackward> g_backward;

}  // namespace

void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  const PoolGeometry g = geometry(x.shape(), y.shape(), p);
  auto e = g_forward.get(pool_key(kForward, x.shape(), p), [&] {
    return PoolForward{dnnl::pooling_forward(forward_pd(g, dnnl::prop_kind::forward_inference))};
  });
  e->prim.execute(stream(), {{DNNL_ARG_SRC, wrap(g.src, x)}, {DNNL_ARG_DST, wrap(g.dst, y)}});
  stream().wait();
}

void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Pool2dParams& p, Tensor& dx) {
  const PoolGeometry g = geometry(x.shape(), dy.shape(), p);
  auto e = g_backward.get(pool_key(kBackward, x.shape(), p), [&] {
    const auto hint = forward_pd(g, dnnl::prop_kind::forward_training);
    const dnnl::pooling_backward::desc desc(dnnl::algorithm::pooling_max, g.src, g.dst, g.strides, g.kernel,
                                            g.pad_l, g.pad_r);
    const dnnl::pooling_backward::primitive_desc pd(desc, engine(), hint);
    return PoolBackward{dnnl::pooling_forward(hint), dnnl::pooling_backward(pd), hint.workspace_desc()};
  });
  Tensor y = Tensor::empty(dy.shape());
  Tensor workspace = Tensor::empty(Shape{int64_t((e->workspace.get_size() + 3) / 4)});
  const dnnl::memory ws = wrap(e->workspace, workspace);
  e->forward.execute(stream(), {{DNNL_ARG_SRC, wrap(g.src, x)}, {DNNL_ARG_DST, wrap(g.dst, y)},
                                {DNNL_ARG_WORKSPACE, ws}});
  // oneDNN zeroes diff_src before scattering, so every element of dx is written.
  e->backward.execute(stream(), {{DNNL_ARG_DIFF_DST, wrap(g.dst, dy)}, {DNNL_ARG_WORKSPACE, ws},
                                 {DNNL_ARG_DIFF_SRC, wrap(g.src, dx)}});
  stream().wait();
}

}  // namespace fstm::kernels::cpu
