// Convolution on oneDNN: forward, backward data, backward weights.
//   x [N, H, W, Ci] -> oneDNN (N, Ci, H, W) in nhwc     y, dy likewise
//   w [Co, Ci/G, kH, kW] -> (Co, Ci, kH, kW) oihw, or with groups (G, Co/G, Ci/G, kH, kW) goihw:
//   torchvision's layout is already grouped-major, so the same bytes serve both.
//
// Layouts. The primitives choose their own weight layout (format_tag::any): oneDNN 2.6 has no fast
// kernel for plain oihw weights (it falls back to ref:any, 100x slower). The caller's weights are
// reordered on the way in, and the weight gradient on the way out, where the reorder also does the
// accumulation (dw += ...) with oneDNN's sum post-op.
//
// Algorithms. Direct convolution runs on the caller's NHWC tensors. Dense 3x3 stride-1
// convolutions (most of ResNet's work) can instead use oneDNN's Winograd F(4x4, 3x3) kernels, which
// are 2-2.6x faster on AVX-512 in all three directions but exist only for blocked (nChw16c)
// activations: the activations are reordered in and out around them, which still leaves the
// convolution about 2x faster. Winograd's transforms change rounding (errors about 1e-5 of the output
// scale instead of 1e-6), so it is an opt-in setting (conv2d_winograd in onednn_common.h, environment
// variable FSTM_CONV_WINOGRAD=1), off by default; where oneDNN has no Winograd kernel for a shape the
// direct one runs.
#include "kernels/conv2d.h"
#include "kernels/cpu/onednn_common.h"

namespace fstm::kernels::cpu {

namespace {

using namespace onednn;

enum ConvOp : int64_t { kForward = 1, kBackwardData = 2, kBackwardWeights = 3 };

// Everything a convolution primitive depends on, in oneDNN's terms.
struct ConvGeometry {
  dnnl::memory::desc src, dst, user_weights, bias, any_weights;  // src/dst: the caller's NHWC
  dims strides, dilates, pad_l, pad_r;
  bool winograd = false;  // try oneDNN's Winograd kernels (blocked activations)
  dnnl::algorithm algorithm() const {
    return winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  }
  // The activation layouts asked of the primitive: NHWC, or oneDNN's choice for Winograd.
  dnnl::memory::desc prim_src() const { return winograd ? any_like(src) : src; }
  dnnl::memory::desc prim_dst() const { return winograd ? any_like(dst) : dst; }
  static dnnl::memory::desc any_like(const dnnl::memory::desc& md) {
    return dnnl::memory::desc(md.dims(), md.data_type(), tag::any);
  }
};

ConvGeometry geometry(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p, bool winograd) {
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
  g.winograd = winograd;
  return g;
}

// Winograd F(4x4, 3x3) is defined for dense 3x3 stride-1 convolutions only.
bool winograd_candidate(const Shape& w, const Conv2dParams& p) {
  return conv2d_winograd() && w[2] == 3 && w[3] == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
         p.dilation_w == 1 && p.groups == 1;
}

Key conv_key(ConvOp op, const Shape& x, const Shape& w, const Conv2dParams& p, bool with_bias, bool winograd) {
  return Key{{op, x[0], x[1], x[2], x[3], w[0], w[1], w[2], w[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w,
              p.dilation_h, p.dilation_w, p.groups, with_bias, conv_weights_any(), winograd}};
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvGeometry& g, bool with_bias) {
  // forward_training: the same kernels as inference for convolution, and a valid hint for backward.
  const auto desc =
      with_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, g.algorithm(), g.prim_src(),
                                                  g.any_weights, g.bias, g.prim_dst(), g.strides, g.dilates, g.pad_l,
                                                  g.pad_r)
                : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, g.algorithm(), g.prim_src(),
                                                  g.any_weights, g.prim_dst(), g.strides, g.dilates, g.pad_l, g.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, engine());
}

// A conversion between the caller's layout and the primitive's, when they differ.
struct Convert {
  dnnl::memory::desc user, prim;
  std::unique_ptr<dnnl::reorder> to_prim, to_user;

  static Convert input(const dnnl::memory::desc& user, const dnnl::memory::desc& prim) {
    Convert c{user, prim, nullptr, nullptr};
    if (user != prim) c.to_prim = std::make_unique<dnnl::reorder>(make_reorder(user, prim, false));
    return c;
  }
  static Convert output(const dnnl::memory::desc& user, const dnnl::memory::desc& prim) {
    Convert c{user, prim, nullptr, nullptr};
    if (user != prim) c.to_user = std::make_unique<dnnl::reorder>(make_reorder(prim, user, false));
    return c;
  }

  // The tensor as the primitive reads it: t itself, or t reordered into `scratch`.
  dnnl::memory read(const Tensor& t, Tensor& scratch) const {
    dnnl::memory user_mem = wrap(user, t);
    if (!to_prim) return user_mem;
    dnnl::memory mem = scratch_memory(scratch);
    to_prim->execute(stream(), user_mem, mem);
    return mem;
  }
  // Where the primitive writes t: t itself, or `scratch` that finish() reorders into t.
  dnnl::memory write(const Tensor& t, Tensor& scratch) const {
    return to_user ? scratch_memory(scratch) : wrap(user, t);
  }
  void finish(const dnnl::memory& written, const Tensor& t) const {
    if (!to_user) return;
    dnnl::memory from = written, user_mem = wrap(user, t);  // execute() takes non-const handles
    to_user->execute(stream(), from, user_mem);
  }

 private:
  dnnl::memory scratch_memory(Tensor& scratch) const {
    scratch = Tensor::empty(Shape{int64_t((prim.get_size() + 3) / 4)});
    return wrap(prim, scratch);
  }
};

struct ConvForward {
  dnnl::convolution_forward prim;
  Convert src, weights, dst;
};

struct ConvBackwardData {
  dnnl::convolution_backward_data prim;
  Convert diff_dst, weights, diff_src;
};

struct ConvBackwardWeights {
  dnnl::convolution_backward_weights prim;
  Convert src, diff_dst;
  dnnl::memory::desc diff_weights, user_weights;  // the primitive's layout, the caller's
  dnnl::reorder accumulate;         // diff_weights -> caller's dw, with dw += (sum post-op)
};

PrimitiveCache<ConvForward> g_forward;
PrimitiveCache<ConvBackwardData> g_backward_data;
PrimitiveCache<ConvBackwardWeights> g_backward_weights;

// Builds with Winograd when asked and oneDNN has it for this shape, else with the direct algorithm.
template <typename Value, typename Make>
std::shared_ptr<const Value> get_or_build(PrimitiveCache<Value>& cache, ConvOp op, const Shape& x, const Shape& w,
                                          const Shape& y, const Conv2dParams& p, bool with_bias, Make make) {
  if (winograd_candidate(w, p)) {
    auto e = cache.get(conv_key(op, x, w, p, with_bias, true), [&]() -> Value {
      try {
        return make(geometry(x, w, y, p, true));
      } catch (const dnnl::error&) {  // no Winograd kernel for this shape: the direct one
        return make(geometry(x, w, y, p, false));
      }
    });
    return e;
  }
  return cache.get(conv_key(op, x, w, p, with_bias, false), [&] { return make(geometry(x, w, y, p, false)); });
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  const bool with_bias = b.defined();
  auto e = get_or_build(g_forward, kForward, x.shape(), w.shape(), y.shape(), p, with_bias, [&](const ConvGeometry& g) {
    const auto pd = forward_pd(g, with_bias);
    return ConvForward{dnnl::convolution_forward(pd), Convert::input(g.src, pd.src_desc()),
                       Convert::input(g.user_weights, pd.weights_desc()), Convert::output(g.dst, pd.dst_desc())};
  });
  Tensor x_scratch, w_scratch, y_scratch;
  const dnnl::memory dst = e->dst.write(y, y_scratch);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, e->src.read(x, x_scratch)},
                                             {DNNL_ARG_WEIGHTS, e->weights.read(w, w_scratch)},
                                             {DNNL_ARG_DST, dst}};
  if (with_bias) args.emplace(DNNL_ARG_BIAS, wrap(plain_desc({w.size(0)}, tag::a), b));
  e->prim.execute(stream(), args);
  e->dst.finish(dst, y);
  stream().wait();
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  auto e = get_or_build(g_backward_data, kBackwardData, dx.shape(), w.shape(), dy.shape(), p, false,
                        [&](const ConvGeometry& g) {
                          const auto hint = forward_pd(g, false);
                          const dnnl::convolution_backward_data::desc desc(g.algorithm(), g.prim_src(), g.any_weights,
                                                                           g.prim_dst(), g.strides, g.dilates, g.pad_l,
                                                                           g.pad_r);
                          const dnnl::convolution_backward_data::primitive_desc pd(desc, engine(), hint);
                          return ConvBackwardData{dnnl::convolution_backward_data(pd),
                                                  Convert::input(g.dst, pd.diff_dst_desc()),
                                                  Convert::input(g.user_weights, pd.weights_desc()),
                                                  Convert::output(g.src, pd.diff_src_desc())};
                        });
  Tensor dy_scratch, w_scratch, dx_scratch;
  // oneDNN writes every element of diff_src, zeros included where no output reads the input.
  const dnnl::memory diff_src = e->diff_src.write(dx, dx_scratch);
  e->prim.execute(stream(), {{DNNL_ARG_DIFF_DST, e->diff_dst.read(dy, dy_scratch)},
                             {DNNL_ARG_WEIGHTS, e->weights.read(w, w_scratch)},
                             {DNNL_ARG_DIFF_SRC, diff_src}});
  e->diff_src.finish(diff_src, dx);
  stream().wait();
}

void conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw, Tensor& db) {
  const bool with_bias = db.defined();
  auto e = get_or_build(
      g_backward_weights, kBackwardWeights, x.shape(), dw.shape(), dy.shape(), p, with_bias, [&](const ConvGeometry& g) {
        const auto hint = forward_pd(g, with_bias);
        const auto desc = with_bias ? dnnl::convolution_backward_weights::desc(
                                          g.algorithm(), g.prim_src(), g.any_weights, g.bias, g.prim_dst(), g.strides,
                                          g.dilates, g.pad_l, g.pad_r)
                                    : dnnl::convolution_backward_weights::desc(
                                          g.algorithm(), g.prim_src(), g.any_weights, g.prim_dst(), g.strides,
                                          g.dilates, g.pad_l, g.pad_r);
        const dnnl::convolution_backward_weights::primitive_desc pd(desc, engine(), hint);
        return ConvBackwardWeights{dnnl::convolution_backward_weights(pd), Convert::input(g.src, pd.src_desc()),
                                   Convert::input(g.dst, pd.diff_dst_desc()), pd.diff_weights_desc(),
                                   g.user_weights, make_reorder(pd.diff_weights_desc(), g.user_weights, true)};
      });
  // oneDNN overwrites its outputs: compute into scratch, then add into the caller's buffers.
  Tensor x_scratch, dy_scratch;
  Tensor dw_scratch = Tensor::empty(Shape{int64_t((e->diff_weights.get_size() + 3) / 4)});
  dnnl::memory dw_mem = wrap(e->diff_weights, dw_scratch);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, e->src.read(x, x_scratch)},
                                             {DNNL_ARG_DIFF_DST, e->diff_dst.read(dy, dy_scratch)},
                                             {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
  Tensor db_scratch;
  if (with_bias) {
    db_scratch = Tensor::empty(db.shape());
    args.emplace(DNNL_ARG_DIFF_BIAS, wrap(plain_desc({db.size(0)}, tag::a), db_scratch));
  }
  e->prim.execute(stream(), args);
  dnnl::memory dw_user = wrap(e->user_weights, dw);
  e->accumulate.execute(stream(), dw_mem, dw_user);
  stream().wait();
  if (with_bias) {
    const float* s = db_scratch.data<float>();
    float* d = db.data<float>();
    for (int64_t i = 0; i < db.numel(); ++i) d[i] += s[i];
  }
}

}  // namespace fstm::kernels::cpu
