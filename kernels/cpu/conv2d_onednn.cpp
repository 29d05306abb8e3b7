// Convolution on oneDNN: forward, backward data, backward weights.
//   x [N, H, W, Ci] -> oneDNN (N, Ci, H, W) in nhwc     y, dy likewise
//   w [Co, Ci/G, kH, kW] -> (Co, Ci, kH, kW) oihw, or with groups (G, Co/G, Ci/G, kH, kW) goihw:
//   torchvision's layout is already grouped-major, so the same bytes serve both.
// The primitives choose their own weight layout (format_tag::any; a blocked one on AVX-512) and the
// caller's weights are reordered on the way in, and the weight gradient on the way out, where the
// reorder also does the accumulation (dw += ...) with oneDNN's sum post-op.
#include "kernels/conv2d.h"
#include "kernels/cpu/onednn_common.h"

namespace fstm::kernels::cpu {

namespace {

using namespace onednn;

enum ConvOp : int64_t { kForward = 1, kBackwardData = 2, kBackwardWeights = 3 };

// Everything a convolution primitive depends on, in oneDNN's terms.
struct ConvGeometry {
  dnnl::memory::desc src, dst, user_weights, bias, any_weights;
  dims strides, dilates, pad_l, pad_r;
};

ConvGeometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  ConvGeometry g;
  g.src = nhwc_desc(x);
  g.dst = nhwc_desc(y);
  const int64_t G = p.groups, Co = w[0], Cig = w[1], kH = w[2], kW = w[3];
  const dims wdims = G > 1 ? dims{G, Co / G, Cig, kH, kW} : dims{Co, Cig, kH, kW};
  g.user_weights = plain_desc(wdims, G > 1 ? tag::goihw : tag::oihw);
  g.any_weights = plain_desc(wdims, conv_weights_any() ? tag::any : (G > 1 ? tag::goihw : tag::oihw));
  g.bias = plain_desc({Co}, tag::a);
  g.strides = {p.stride_h, p.stride_w};
  g.dilates = {p.dilation_h - 1, p.dilation_w - 1};  // oneDNN counts the gaps: 0 = dense
  // As PyTorch does: right padding = left padding; oneDNN floors the output size like we do.
  g.pad_l = {p.pad_h, p.pad_w};
  g.pad_r = {p.pad_h, p.pad_w};
  return g;
}

Key conv_key(ConvOp op, const Shape& x, const Shape& w, const Conv2dParams& p, bool with_bias) {
  return Key{{op, x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w,
              p.dilation_h, p.dilation_w, p.groups, with_bias, conv_weights_any()}};
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, bool with_bias) {
  // forward_training: the same kernels as inference for convolution, and a valid hint for backward.
  const auto desc = with_bias ? dnnl::convolution_forward::desc(
                                    dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, g.src,
                                    g.any_weights, g.bias, g.dst, g.strides, g.dilates, g.pad_l, g.pad_r)
                              : dnnl::convolution_forward::desc(
                                    dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, g.src,
                                    g.any_weights, g.dst, g.strides, g.dilates, g.pad_l, g.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, engine());
}

// Weights in the caller's layout, or in the primitive's when it differs (reordered into `scratch`).
dnnl::memory weights_for(const dnnl::memory::desc& wanted, const dnnl::memory::desc& user, const Tensor& w,
                         const dnnl::reorder* reorder, Tensor& scratch) {
  dnnl::memory user_mem = wrap(user, w);
  if (!reorder) return user_mem;
  scratch = Tensor::empty(Shape{int64_t((wanted.get_size() + 3) / 4)});
  dnnl::memory mem = wrap(wanted, scratch);
  reorder->execute(stream(), user_mem, mem);
  return mem;
}

struct ConvForward {
  dnnl::convolution_forward prim;
  dnnl::memory::desc weights;  // the primitive's weight layout
  std::unique_ptr<dnnl::reorder> weights_reorder;
};

struct ConvBackwardData {
  dnnl::convolution_backward_data prim;
  dnnl::memory::desc weights;
  std::unique_ptr<dnnl::reorder> weights_reorder;
};

struct ConvBackwardWeights {
  dnnl::convolution_backward_weights prim;
  dnnl::memory::desc diff_weights;  // the primitive's layout
  dnnl::reorder accumulate;         // diff_weights -> caller's dw, with dw += (sum post-op)
};

PrimitiveCache<ConvForward> g_forward;
PrimitiveCache<ConvBackwardData> g_backward_data;
PrimitiveCache<ConvBackwardWeights> g_backward_weights;

std::unique_ptr<dnnl::reorder> reorder_if_needed(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (from == to) return nullptr;
  return std::make_unique<dnnl::reorder>(make_reorder(from, to, false));
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  const bool with_bias = b.defined();
  const ConvGeometry g = geometry(x.shape(), w.shape(), y.shape(), p);
  auto e = g_forward.get(conv_key(kForward, x.shape(), w.shape(), p, with_bias), [&] {
    const auto pd = forward_pd(g, with_bias);
    return ConvForward{dnnl::convolution_forward(pd), pd.weights_desc(),
                       reorder_if_needed(g.user_weights, pd.weights_desc())};
  });
  Tensor scratch;
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, wrap(g.src, x)},
      {DNNL_ARG_WEIGHTS, weights_for(e->weights, g.user_weights, w, e->weights_reorder.get(), scratch)},
      {DNNL_ARG_DST, wrap(g.dst, y)}};
  if (with_bias) args.emplace(DNNL_ARG_BIAS, wrap(g.bias, b));
  e->prim.execute(stream(), args);
  stream().wait();
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  const ConvGeometry g = geometry(dx.shape(), w.shape(), dy.shape(), p);
  auto e = g_backward_data.get(conv_key(kBackwardData, dx.shape(), w.shape(), p, false), [&] {
    const auto hint = forward_pd(g, false);
    const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.src, g.any_weights,
                                                     g.dst, g.strides, g.dilates, g.pad_l, g.pad_r);
    const dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), hint);
    return ConvBackwardData{dnnl::convolution_backward_data(pd), pd.weights_desc(),
                            reorder_if_needed(g.user_weights, pd.weights_desc())};
  });
  Tensor scratch;
  // oneDNN writes every element of diff_src, zeros included where no output reads the input.
  e->prim.execute(stream(),
                  {{DNNL_ARG_DIFF_DST, wrap(g.dst, dy)},
                   {DNNL_ARG_WEIGHTS, weights_for(e->weights, g.user_weights, w, e->weights_reorder.get(), scratch)},
                   {DNNL_ARG_DIFF_SRC, wrap(g.src, dx)}});
  stream().wait();
}

void conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw, Tensor& db) {
  const bool with_bias = db.defined();
  const ConvGeometry g = geometry(x.shape(), dw.shape(), dy.shape(), p);
  auto e = g_backward_weights.get(conv_key(kBackwardWeights, x.shape(), dw.shape(), p, with_bias), [&] {
    const auto hint = forward_pd(g, with_bias);
    const auto desc = with_bias ? dnnl::convolution_backward_weights::desc(
                                      dnnl::algorithm::convolution_direct, g.src, g.any_weights, g.bias, g.dst,
                                      g.strides, g.dilates, g.pad_l, g.pad_r)
                                : dnnl::convolution_backward_weights::desc(
                                      dnnl::algorithm::convolution_direct, g.src, g.any_weights, g.dst, g.strides,
                                      g.dilates, g.pad_l, g.pad_r);
    const dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), hint);
    return ConvBackwardWeights{dnnl::convolution_backward_weights(pd), pd.diff_weights_desc(),
                               make_reorder(pd.diff_weights_desc(), g.user_weights, true)};
  });
  // oneDNN overwrites its outputs: compute into scratch, then add into the caller's buffers.
  Tensor dw_scratch = Tensor::empty(Shape{int64_t((e->diff_weights.get_size() + 3) / 4)});
  dnnl::memory dw_mem = wrap(e->diff_weights, dw_scratch);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, wrap(g.src, x)}, {DNNL_ARG_DIFF_DST, wrap(g.dst, dy)}, {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
  Tensor db_scratch;
  if (with_bias) {
    db_scratch = Tensor::empty(db.shape());
    args.emplace(DNNL_ARG_DIFF_BIAS, wrap(g.bias, db_scratch));
  }
  e->prim.execute(stream(), args);
  dnnl::memory dw_user = wrap(g.user_weights, dw);
  e->accumulate.execute(stream(), dw_mem, dw_user);
  stream().wait();
  if (with_bias) {
    const float* s = db_scratch.data<float>();
    float* d = db.data<float>();
    for (int64_t i = 0; i < db.numel(); ++i) d[i] += s[i];
  }
}

}  // namespace fstm::kernels::cpu
