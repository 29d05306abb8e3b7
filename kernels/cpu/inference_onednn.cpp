// The oneDNN executor of an InferenceGraph (kernels/graph/inference_graph.h).
//
// Each graph op becomes one oneDNN primitive. Convolutions are created with "any" memory formats
// so oneDNN picks its fastest (blocked) layouts, and the following ops run on those layouts
// directly; reorders are inserted only where two ops disagree. 4-D activations are in the plan's
// dtype (f32 or bf16); 2-D features ([N, C], after global pooling) are f32 in plain layout.
// Buffers are assigned by liveness, so a ResNet needs a few activation buffers, not one per layer.
#include <map>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/graph/buffer_plan.h"
#include "kernels/graph/executor.h"
#include "tensor/allocator.h"

namespace fstm {

namespace {

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

engine& cpu_engine() {
  static engine e(engine::kind::cpu, 0);
  return e;
}

dt to_dnnl(DType t) { return t == DType::bf16 ? dt::bf16 : dt::f32; }

// Engine shapes are channels-last; oneDNN's logical dims are N, C, H, W.
memory::dims logical_dims(const Shape& s) {
  if (s.size() == 4) return {s[0], s[3], s[1], s[2]};
  FSTM_CHECK(s.size() == 2, "inference plan: value of shape ", s.str(), " is neither [N, H, W, C] nor [N, C]");
  return {s[0], s[1]};
}

memory::desc plain_desc(const Shape& s, dt type) {
  return memory::desc(logical_dims(s), type, s.size() == 4 ? tag::nhwc : tag::nc);
}

algorithm eltwise_algorithm(kernels::Activation a) {
  switch (a) {
    case kernels::Activation::Relu: return algorithm::eltwise_relu;
    case kernels::Activation::Sigmoid: return algorithm::eltwise_logistic;
    case kernels::Activation::Silu: return algorithm::eltwise_swish;  // x * sigmoid(alpha x), alpha = 1
    case kernels::Activation::Identity: return algorithm::eltwise_linear;
  }
  return algorithm::eltwise_linear;
}
float eltwise_alpha(kernels::Activation a) {
  return (a == kernels::Activation::Silu || a == kernels::Activation::Identity) ? 1.0f : 0.0f;
}

// Right padding that makes oneDNN's output size equal PyTorch's floor((in + 2p - span) / s) + 1.
memory::dim right_pad(int64_t in, int64_t out, int kernel_span, int stride, int pad_left) {
  return (out - 1) * stride + kernel_span - in - pad_left;
}

class OnednnExecutor final : public InferenceExecutor {
 public:
  OnednnExecutor(const InferenceGraph& g, DType dtype) : g_(g), dtype_(to_dnnl(dtype)), stream_(cpu_engine()) {
    descs_.resize(g.values.size());
    buffer_of_.assign(g.values.size(), -1);
    input_value_ = g.input;
    descs_[size_t(g.input)] = plain_desc(g.values[size_t(g.input)], dtype_);
    for (const GraphOp& op : g.ops) compile(op);
    // The result, in the engine's plain f32 layout.
    output_value_ = add_value(plain_desc(g.values[size_t(g.output)], dt::f32), g.values[size_t(g.output)]);
    add_reorder(g.output, output_value_);
    allocate();
  }

  Tensor input_buffer() override { return tensor_of(input_value_, g_.values[size_t(g_.input)], dtype_); }
  Tensor run() override {
    for (Step& s : steps_) s.prim.execute(stream_, s.bound);
    stream_.wait();
    return tensor_of(output_value_, shapes_.at(output_value_), dt::f32);
  }
  std::string name() const override { return std::string("onednn cpu ") + (dtype_ == dt::bf16 ? "bf16" : "f32"); }

 private:
  struct Step {
    explicit Step(primitive p) : prim(std::move(p)) {}
    primitive prim;
    std::unordered_map<int, int> args;  // DNNL_ARG_* -> value id
    std::unordered_map<int, memory> constants;  // weights and biases, already in their layout
    std::unordered_map<int, memory> bound;      // filled by allocate()
  };

  // ---- values and buffers ------------------------------------------------------------------
  int add_value(const memory::desc& d, const Shape& shape) {
    descs_.push_back(d);
    buffer_of_.push_back(-1);
    shapes_[int(descs_.size()) - 1] = shape;
    return int(descs_.size()) - 1;
  }
  const memory::desc& desc(int v) const { return descs_[size_t(v)]; }

  // Copies/converts value `from` into value `to` (which has its own desc).
  void add_reorder(int from, int to) {
    Step s{reorder(reorder::primitive_desc(cpu_engine(), desc(from), cpu_engine(), desc(to)))};
    s.args = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    steps_.push_back(std::move(s));
  }
  // Returns a value holding `v` in layout `want`, reordering when the layouts differ.
  int in_layout(int v, const memory::desc& want) {
    if (desc(v) == want) return v;
    const int t = add_value(want, {});
    add_reorder(v, t);
    return t;
  }
  memory constant(const Tensor& host_f32, const memory::desc& user, const memory::desc& want) {
    memory src(user, cpu_engine(), host_f32.raw_data());
    memory dst(want, cpu_engine());
    reorder(src, dst).execute(stream_, src, dst);
    stream_.wait();
    return dst;
  }

  // ---- one graph op ---------------------------------------------------------------------------
  void compile(const GraphOp& op) {
    const Shape& out_shape = g_.values[size_t(op.output)];
    switch (op.kind) {
      case GraphOpKind::Conv2d: return compile_conv(op);
      case GraphOpKind::Linear: return compile_linear(op);
      case GraphOpKind::MaxPool2d: {
        const int x = op.inputs[0];
        const Shape& xs = g_.values[size_t(x)];
        const auto& p = op.pool;
        memory::desc dst_any(logical_dims(out_shape), desc(x).data_type(), tag::any);
        auto pd = pooling_forward::primitive_desc(
            pooling_forward::desc(prop_kind::forward_inference, algorithm::pooling_max, desc(x), dst_any,
                                  {p.stride_h, p.stride_w}, {p.kernel_h, p.kernel_w}, {p.pad_h, p.pad_w},
                                  {right_pad(xs[1], out_shape[1], p.kernel_h, p.stride_h, p.pad_h),
                                   right_pad(xs[2], out_shape[2], p.kernel_w, p.stride_w, p.pad_w)}),
            cpu_engine());
        descs_[size_t(op.output)] = pd.dst_desc();
        Step s{pooling_forward(pd)};
        s.args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, op.output}};
        steps_.push_back(std::move(s));
        return;
      }
      case GraphOpKind::GlobalAvgPool: {
        // Average over H x W to [N, C, 1, 1], then to plain f32, which is the [N, C] feature. The
        // pooled layout is left to oneDNN: a plain destination under a channels-last or blocked
        // source sends oneDNN 2.6 to its reference kernel (seconds per EfficientNet batch, whose
        // squeeze-excitation pools every block).
        const int x = op.inputs[0];
        const Shape& xs = g_.values[size_t(x)];
        const memory::desc pooled_any({xs[0], xs[3], 1, 1}, desc(x).data_type(), tag::any);
        auto pd = pooling_forward::primitive_desc(
            pooling_forward::desc(prop_kind::forward_inference, algorithm::pooling_avg_exclude_padding, desc(x),
                                  pooled_any, {1, 1}, {xs[1], xs[2]}, {0, 0}, {0, 0}),
            cpu_engine());
        const memory::desc plain({xs[0], xs[3], 1, 1}, dt::f32, tag::nchw);
        const int p = add_value(pd.dst_desc(), {});
        Step s{pooling_forward(pd)};
        s.args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, p}};
        steps_.push_back(std::move(s));
        descs_[size_t(op.output)] = plain_desc(out_shape, dt::f32);
        if (pd.dst_desc() == plain) {
          alias(op.output, p);  // same bytes: [N, C, 1, 1] nchw == [N, C] nc
        } else {
          const int f = add_value(plain, {});
          add_reorder(p, f);
          alias(op.output, f);
        }
        return;
      }
      case GraphOpKind::Activation:
      case GraphOpKind::Affine: {
        const int x = op.inputs[0];
        const algorithm alg = op.kind == GraphOpKind::Affine ? algorithm::eltwise_linear : eltwise_algorithm(op.activation);
        const float alpha = op.kind == GraphOpKind::Affine ? op.alpha : eltwise_alpha(op.activation);
        const float beta = op.kind == GraphOpKind::Affine ? op.beta : 0.0f;
        auto pd = eltwise_forward::primitive_desc(
            eltwise_forward::desc(prop_kind::forward_inference, alg, desc(x), alpha, beta), cpu_engine());
        descs_[size_t(op.output)] = desc(x);
        Step s{eltwise_forward(pd)};
        s.args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, op.output}};
        steps_.push_back(std::move(s));
        return;
      }
      case GraphOpKind::Add:
      case GraphOpKind::Sub:
      case GraphOpKind::Mul:
      case GraphOpKind::MulChannel: {
        const int a = op.inputs[0];
        int b = op.inputs[1];
        const bool broadcast = op.kind == GraphOpKind::MulChannel && g_.values[size_t(a)].size() == 4;
        memory::desc b_desc = desc(b);
        if (broadcast) {  // s [N, C] f32 plain seen as [N, C, 1, 1]
          const Shape& ss = g_.values[size_t(b)];
          b_desc = memory::desc({ss[0], ss[1], 1, 1}, dt::f32, tag::nchw);
          const int view = add_value(b_desc, {});
          alias(view, b);
          b = view;
        } else {
          b = in_layout(b, desc(a));
          b_desc = desc(b);
        }
        const algorithm alg = op.kind == GraphOpKind::Add   ? algorithm::binary_add
                              : op.kind == GraphOpKind::Sub ? algorithm::binary_sub
                                                            : algorithm::binary_mul;
        auto pd = binary::primitive_desc(binary::desc(alg, desc(a), b_desc, desc(a)), cpu_engine());
        descs_[size_t(op.output)] = desc(a);
        Step s{binary(pd)};
        s.args = {{DNNL_ARG_SRC_0, a}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, op.output}};
        steps_.push_back(std::move(s));
        return;
      }
      case GraphOpKind::Concat: {
        std::vector<memory::desc> srcs;
        std::vector<int> ins;
        const dt type = desc(op.inputs[0]).data_type();
        for (int v : op.inputs) {
          const int u = desc(v).data_type() == type ? v : in_layout(v, plain_desc(g_.values[size_t(v)], type));
          ins.push_back(u);
          srcs.push_back(desc(u));
        }
        memory::desc dst(logical_dims(out_shape), type, out_shape.size() == 4 ? tag::any : tag::nc);
        auto pd = concat::primitive_desc(dst, 1, srcs, cpu_engine());
        descs_[size_t(op.output)] = pd.dst_desc();
        Step s{concat(pd)};
        for (size_t i = 0; i < ins.size(); ++i) s.args[DNNL_ARG_MULTIPLE_SRC + int(i)] = ins[i];
        s.args[DNNL_ARG_DST] = op.output;
        steps_.push_back(std::move(s));
        return;
      }
      case GraphOpKind::Reshape: {
        // A reshape is a reinterpretation of the engine's plain layout: bring the input to its
        // plain layout (f32 when the result is 2-D), then view those bytes with the new shape.
        const int x = op.inputs[0];
        const dt type = out_shape.size() == 2 ? dt::f32 : desc(x).data_type();
        const int plain = in_layout(x, plain_desc(g_.values[size_t(x)], type));
        descs_[size_t(op.output)] = plain_desc(out_shape, type);
        alias(op.output, plain);
        return;
      }
      case GraphOpKind::BatchNorm: break;
    }
    throw Error(detail::concat("inference plan: op ", graph_op_name(op.kind), " is not supported by oneDNN"));
  }

  post_ops make_post_ops(const GraphOp& op) {
    post_ops po;
    for (const PostOp& p : op.post_ops) {
      if (p.kind == PostOp::Kind::Sum) po.append_sum(1.0f);
      else po.append_eltwise(1.0f, eltwise_algorithm(p.activation), eltwise_alpha(p.activation), 0.0f);
    }
    return po;
  }

  // Sum post-op: the output buffer must already hold the other operand, in the output's layout.
  void prepare_sum_operand(const GraphOp& op, const memory::desc& dst) {
    for (const PostOp& p : op.post_ops) {
      if (p.kind != PostOp::Kind::Sum) continue;
      descs_[size_t(op.output)] = dst;
      if (desc(p.sum_value) == dst && last_use(p.sum_value) == &op) {
        alias(op.output, p.sum_value);  // accumulate in place: the operand is dead afterwards
      } else {
        add_reorder(p.sum_value, op.output);
      }
    }
  }

  void compile_conv(const GraphOp& op) {
    const int x = op.inputs[0];
    const Shape& xs = g_.values[size_t(x)];
    const Shape& ys = g_.values[size_t(op.output)];
    const auto& c = op.conv;
    const Shape& ws = op.weight.shape();  // [Co, Ci/g, kH, kW]
    const dt type = dtype_;
    memory::dims wdims = c.groups == 1 ? memory::dims{ws[0], ws[1], ws[2], ws[3]}
                                       : memory::dims{c.groups, ws[0] / c.groups, ws[1], ws[2], ws[3]};
    memory::desc w_user(wdims, dt::f32, c.groups == 1 ? tag::oihw : tag::goihw);
    memory::desc src_any(logical_dims(xs), type, tag::any), dst_any(logical_dims(ys), type, tag::any);
    memory::desc w_any(wdims, type, tag::any), b_desc({ws[0]}, dt::f32, tag::x);
    const int span_h = (int(ws[2]) - 1) * c.dilation_h + 1, span_w = (int(ws[3]) - 1) * c.dilation_w + 1;
    const memory::dims pad_r = {right_pad(xs[1], ys[1], span_h, c.stride_h, c.pad_h),
                                right_pad(xs[2], ys[2], span_w, c.stride_w, c.pad_w)};
    primitive_attr attr;
    attr.set_post_ops(make_post_ops(op));
    const bool has_bias = op.bias.defined();
    auto d = convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, src_any, w_any,
                                       has_bias ? b_desc : memory::desc(), dst_any, {c.stride_h, c.stride_w},
                                       {c.dilation_h - 1, c.dilation_w - 1}, {c.pad_h, c.pad_w}, pad_r);
    auto pd = convolution_forward::primitive_desc(d, attr, cpu_engine());
    const int src = in_layout(x, pd.src_desc());
    descs_[size_t(op.output)] = pd.dst_desc();
    prepare_sum_operand(op, pd.dst_desc());
    Step s{convolution_forward(pd)};
    s.args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, op.output}};
    s.constants[DNNL_ARG_WEIGHTS] = constant(op.weight, w_user, pd.weights_desc());
    if (has_bias) s.constants[DNNL_ARG_BIAS] = constant(op.bias, b_desc, b_desc);
    steps_.push_back(std::move(s));
  }

  void compile_linear(const GraphOp& op) {
    const int x = in_layout(op.inputs[0], plain_desc(g_.values[size_t(op.inputs[0])], dt::f32));
    const Shape& ws = op.weight.shape();  // [O, I]
    FSTM_CHECK(g_.values[size_t(op.inputs[0])].size() == 2, "inference plan: linear on a 4-D value");
    memory::desc w_user({ws[0], ws[1]}, dt::f32, tag::oi), b_desc({ws[0]}, dt::f32, tag::x);
    memory::desc w_any({ws[0], ws[1]}, dt::f32, tag::any);
    memory::desc dst = plain_desc(g_.values[size_t(op.output)], dt::f32);
    primitive_attr attr;
    attr.set_post_ops(make_post_ops(op));
    const bool has_bias = op.bias.defined();
    auto pd = inner_product_forward::primitive_desc(
        inner_product_forward::desc(prop_kind::forward_inference, desc(x), w_any, has_bias ? b_desc : memory::desc(),
                                    dst),
        attr, cpu_engine());
    descs_[size_t(op.output)] = dst;
    Step s{inner_product_forward(pd)};
    s.args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, op.output}};
    s.constants[DNNL_ARG_WEIGHTS] = constant(op.weight, w_user, pd.weights_desc());
    if (has_bias) s.constants[DNNL_ARG_BIAS] = constant(op.bias, b_desc, b_desc);
    steps_.push_back(std::move(s));
  }

  // The last graph op that reads value v (through an input or a sum post-op), or nullptr.
  const GraphOp* last_use(int v) const {
    const GraphOp* last = nullptr;
    for (const GraphOp& op : g_.ops) {
      for (int in : op.inputs)
        if (in == v) last = &op;
      for (const PostOp& p : op.post_ops)
        if (p.kind == PostOp::Kind::Sum && p.sum_value == v) last = &op;
    }
    if (v == g_.output) return nullptr;
    return last;
  }

  // `view` lives in the same bytes as `of` (resolved to the root value at allocation).
  void alias(int view, int of) { alias_of_[view] = of; }
  int root(int v) const {
    auto it = alias_of_.find(v);
    return it == alias_of_.end() ? v : root(it->second);
  }

  // ---- memory planning ----------------------------------------------------------------------
  // Each root value gets a buffer; buffers are reused once every value in them is dead.
  void allocate() {
    const int n = int(descs_.size());
    std::vector<int> first(size_t(n), -1), last(size_t(n), -1);
    auto touch = [&](int v, int step) {
      const int r = root(v);
      if (first[size_t(r)] < 0) first[size_t(r)] = step;
      last[size_t(r)] = std::max(last[size_t(r)], step);
    };
    touch(input_value_, 0);
    for (int i = 0; i < int(steps_.size()); ++i)
      for (auto& [arg, v] : steps_[size_t(i)].args) touch(v, i);
    last[size_t(root(input_value_))] = int(steps_.size());   // the input stays readable
    last[size_t(root(output_value_))] = int(steps_.size());  // the result outlives run()
    std::vector<BufferRequest> requests(static_cast<size_t>(n));
    for (int v = 0; v < n; ++v) {
      BufferRequest& r = requests[size_t(root(v))];
      r.first = first[size_t(root(v))];
      r.last = last[size_t(root(v))];
      if (descs_[size_t(v)].get_size() > 0) r.bytes = std::max(r.bytes, descs_[size_t(v)].get_size());
    }
    const BufferPlan plan = plan_buffers(requests);
    for (int v = 0; v < n; ++v)
      if (root(v) == v) buffer_of_[size_t(v)] = plan.buffer_of[size_t(v)];
    for (size_t bytes : plan.buffer_bytes)
      storage_.push_back(Tensor::empty(Shape{int64_t(std::max<size_t>(bytes, 1))}, DType::u8));
    for (Step& s : steps_) {
      s.bound = s.constants;
      for (auto& [arg, v] : s.args) s.bound[arg] = memory(desc(v), cpu_engine(), data_of(v));
    }
  }
  void* data_of(int v) { return storage_[size_t(buffer_of_[size_t(root(v))])].raw_data(); }

  Tensor tensor_of(int v, const Shape& shape, dt type) {
    // A view of the buffer as an engine tensor (plain layout).
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = storage_[size_t(buffer_of_[size_t(root(v))])].impl().storage;
    impl->shape = shape;
    impl->dtype = type == dt::bf16 ? DType::bf16 : DType::f32;
    return Tensor(std::move(impl));
  }

  const InferenceGraph& g_;
  dt dtype_;
  stream stream_;
  std::vector<memory::desc> descs_;
  std::vector<int> buffer_of_;
  std::map<int, Shape> shapes_;
  std::map<int, int> alias_of_;
  std::vector<Step> steps_;
  std::vector<Tensor> storage_;
  int input_value_ = -1, output_value_ = -1;
};

}  // namespace

// oneDNN reports a kernel it does not have for this CPU as dnnl::error ("could not create a primitive
// descriptor iterator"); bf16 is the usual case: oneDNN 2.6 has bf16 convolutions only with AVX-512
// (AVX512-BF16 or AMX to be fast), none on an AVX2-only CPU such as AMD Zen 3.
std::unique_ptr<InferenceExecutor> make_onednn_executor(const InferenceGraph& graph, DType dtype) {
  try {
    return std::make_unique<OnednnExecutor>(graph, dtype);
  } catch (const dnnl::error& e) {
    throw Error(detail::concat("inference plan: oneDNN has no ", dtype_name(dtype), " kernel for this graph on this CPU (",
                               e.what(), ")", dtype == DType::f32 ? "" : "; use f32, or a CPU with AVX-512"));
  }
}

}  // namespace fstm
