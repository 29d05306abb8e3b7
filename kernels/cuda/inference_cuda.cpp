// The CUDA executor of an InferenceGraph (kernels/graph/inference_graph.h): the GPU twin of
// kernels/cpu/inference_onednn.cpp.
//
// Values. 4-D activations are NHWC in the plan's dtype T (f32, bf16 or f16); every other value
// (features [N, C] after global pooling, logits) is f32. A reshape between the two converts.
//
// Convolutions. cuDNN's convolution API with NHWC tensors of type T and f32 accumulation
// (PSEUDO_HALF / PSEUDO_BFLOAT16 configurations for f16/bf16), tensor-op math for f16/bf16 and
// FMA math for f32 unless TF32 is allowed (kernels/cuda_options.h), as in the eager path. Weights
// are folded (BatchNorm), reordered to OHWI and converted to T once, at build time; the bias stays
// f32. The algorithm of each convolution is chosen once, at build time, by cudnnFind on the plan's
// own buffers (heuristics when the search finds nothing). The bias, the residual "sum" and the
// activations that follow (GraphOp::post_ops) run as one fused elementwise pass over the output:
//   y = act(conv(x) + bias + residual).
// Where the post-ops are exactly relu(conv + bias [+ residual]), cudnnConvolutionBiasActivation
// Forward does it all in one call instead. That call has narrow support rules (data types,
// algorithms), so at build time each candidate is run once next to the unfused path on the same
// data and kept only when it succeeds and agrees (FSTM_CUDNN_FUSED=0 turns it off).
//
// Other ops: own kernels (kernels/cuda/inference_kernels.cu) for global average pooling (T in, f32
// out), elementwise ops, per-channel scaling and concatenation, in T; max pooling with the eager
// path's kernel instantiated for T (pool.cu); the linear layer with cuBLAS in f32
// (kernels::cuda::linear_forward).
//
// Memory. Buffers are assigned by liveness (kernels/graph/buffer_plan.h) and allocated once from the
// caching allocator, with one workspace shared by every convolution. run() allocates nothing.
//
// CUDA graph. After the build-time run (which also loads every kernel and creates the library
// handles), the whole forward pass is captured once into a CudaGraph (kernels/cuda/graph.h) and
// every run() replays it: one launch instead of one per op. The input and output buffers keep
// their addresses for the life of the executor. When the capture fails the executor runs op by op
// and says so in name(); FSTM_CUDA_GRAPHS=0 turns graphs off.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/common.h"
#include "kernels/cuda/cudnn_descriptors.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/inference_kernels.h"
#include "kernels/cuda_options.h"
#include "kernels/cuda_table.h"
#include "kernels/linear.h"
#include "kernels/graph/buffer_plan.h"
#include "kernels/graph/executor.h"
#include "tensor/random.h"
#include "tensor/environment.h"

namespace fstm {

namespace {

namespace kc = kernels::cuda;
namespace fc = ::fstm::cuda;
using kc::infer::Binary;

constexpr size_t kFindWorkspaceLimit = size_t(1) << 30;

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDNN_DATA_FLOAT;
    case DType::bf16:
      return CUDNN_DATA_BFLOAT16;
    case DType::f16:
      return CUDNN_DATA_HALF;
    default:
      break;
  }
  throw Error(detail::concat("inference plan on CUDA: dtype ", dtype_name(t), " is not f32, bf16 or f16"));
}

// Host f32 values converted to `t` (round to nearest even, as Tensor::to).
Tensor host_to_dtype(const std::vector<float>& values, const Shape& shape, DType t) {
  return Tensor::from_vector(values, shape).to(t);
}

// One convolution: descriptors, device weights and the chosen algorithm.
struct ConvStep : kc::ConvDescriptors {  // x, y, w, conv (cudnn_descriptors.h)
  kc::TensorDescriptor bias;       // fusable only
  kc::ActivationDescriptor relu;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace = 0;
  Tensor weight;         // [Co, kH, kW, Ci/groups] (OHWI) in the plan dtype
  Tensor bias_f32;       // [Co] f32, undefined without bias
  Tensor bias_t;         // [Co] in the plan dtype, for the fused call (fusable only)
  int sum_value = -1;    // the residual of a fusable [sum, relu] chain
  bool fusable = false;  // post-ops are [relu] or [sum, relu], and there is a bias
  bool fused = false;    // checked at build time: run with cudnnConvolutionBiasActivationForward
  std::string text;      // "conv 3x3/1 64->64 [8, 56, 56, 64]" for messages
};

enum class StepKind { Conv, Linear, MaxPool, GlobalAvgPool, Activation, Affine, Binary, MulChannel, Concat, Convert };

struct Step {
  StepKind kind = StepKind::Convert;
  std::vector<int> in;  // values read (a convolution's residuals are in `sums`)
  int out = -1;
  const GraphOp* op = nullptr;  // parameters and post-ops
  std::vector<int> sums;        // residual values of post-ops, in order
  int conv = -1;                // index into convs_
  int linear = -1;              // index into linears_
  Binary binary = Binary::Add;
};

Step make_step(StepKind kind, std::vector<int> in, int out, const GraphOp* op = nullptr) {
  Step s;
  s.kind = kind;
  s.in = std::move(in);
  s.out = out;
  s.op = op;
  return s;
}

struct LinearWeights {
  Tensor w, b;  // f32 on the device
};

struct Value {
  Shape shape;
  DType dtype = DType::f32;
  int alias_of = -1;  // lives in the bytes of another value (a reshape without conversion)
};

class CudaExecutor final : public InferenceExecutor {
 public:
  CudaExecutor(const InferenceGraph& g, DType dtype, Device device, const CudaExecutorOptions& options)
      : g_(g), dtype_(dtype), device_(device) {
    FSTM_CHECK(device.is_cuda(), "CUDA inference executor on ", device.str());
    fc::check_device(device.index);
    cudnn_type(dtype);  // rejects other dtypes
    fc::DeviceGuard guard(device.index);
    stream_ = fc::compute_stream(device.index);
    handle_ = fc::cudnn_handle(device.index);
    tf32_ = kc::allow_tf32();
    deterministic_ = kc::deterministic_algorithms();
    use_fused_ = options.fused_conv && environment().cudnn_fused;
    const bool use_graph = options.graphs && environment().cuda_graphs;

    for (const Shape& s : g.values) add_value(s);
    for (const GraphOp& op : g.ops) compile(op);
    // The result, f32, in a buffer no other value uses.
    output_value_ = g.output;
    if (values_[size_t(g.output)].dtype != DType::f32 || root(g.output) == root(g.input))
      output_value_ = add_convert(g.output, values_[size_t(g.output)].shape, DType::f32);
    allocate();
    choose_algorithms();
    build_time_run();
    if (use_graph) capture();
    FSTM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  Tensor input_buffer() override { return view(g_.input); }

  Tensor run() override {
    fc::DeviceGuard guard(device_.index);
    if (graph_ && graph_->captured()) {
      graph_->replay();
    } else {
      for (const Step& s : steps_) execute(s);
    }
    return view(output_value_);
  }

  std::string name() const override {
    int fused = 0;
    for (const auto& c : convs_) fused += c->fused ? 1 : 0;
    std::string text = std::string("cuda ") + dtype_name(dtype_) + (tf32_ && dtype_ == DType::f32 ? " tf32" : "") +
                       ", " + std::to_string(convs_.size()) + " convs (" + std::to_string(fused) + " fused by cuDNN)";
    if (graph_ && graph_->captured()) return text + ", CUDA graph";
    text += ", no CUDA graph";
    if (!graph_note_.empty()) text += " (" + graph_note_.substr(0, 300) + ")";
    return text;
  }

 private:
  // ---- values --------------------------------------------------------------------------------
  // 4-D activations are in the plan dtype, everything else f32.
  DType dtype_for(const Shape& s) const { return s.size() == 4 ? dtype_ : DType::f32; }
  int add_value(const Shape& s) {
    values_.push_back(Value{s, dtype_for(s), -1});
    return int(values_.size()) - 1;
  }
  int root(int v) const {
    while (values_[size_t(v)].alias_of >= 0) v = values_[size_t(v)].alias_of;
    return v;
  }
  const Shape& shape(int v) const { return values_[size_t(v)].shape; }
  DType dtype(int v) const { return values_[size_t(v)].dtype; }
  void* ptr(int v) const { return storage_[size_t(buffer_of_[size_t(root(v))])].raw_data(); }
  // An engine tensor over value v's bytes (shares the buffer; valid while the executor lives).
  Tensor view(int v) const { return view_as(v, shape(v), dtype(v)); }
  Tensor view_as(int v, const Shape& s, DType t) const {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = storage_[size_t(buffer_of_[size_t(root(v))])].impl().storage;
    impl->shape = s;
    impl->dtype = t;
    return Tensor(std::move(impl));
  }
  // A new value holding v converted to dtype t (and seen with shape s).
  int add_convert(int v, const Shape& s, DType t) {
    const int out = int(values_.size());
    values_.push_back(Value{s, t, -1});
    Step step = make_step(StepKind::Convert, {v}, out);
    steps_.push_back(step);
    return out;
  }

  // ---- compile: graph ops to steps -------------------------------------------------------------
  void compile(const GraphOp& op) {
    const int out = op.output;
    auto same_dtype = [&](int v) {
      FSTM_CHECK(dtype(v) == dtype(out) && shape(v).numel() == shape(out).numel(),
                 "inference plan on CUDA: ", graph_op_name(op.kind), " reads ", shape(v).str(), " and writes ",
                 shape(out).str());
    };
    switch (op.kind) {
      case GraphOpKind::Conv2d:
        return compile_conv(op);
      case GraphOpKind::Linear:
        return compile_linear(op);
      case GraphOpKind::MaxPool2d:
      case GraphOpKind::GlobalAvgPool: {
        FSTM_CHECK(shape(op.inputs[0]).size() == 4, "inference plan on CUDA: ", graph_op_name(op.kind), " on ",
                   shape(op.inputs[0]).str(), " (expected [N, H, W, C])");
        Step s = make_step(op.kind == GraphOpKind::MaxPool2d ? StepKind::MaxPool : StepKind::GlobalAvgPool,
                           {op.inputs[0]}, out, &op);
        steps_.push_back(s);
        return;
      }
      case GraphOpKind::Activation:
      case GraphOpKind::Affine: {
        same_dtype(op.inputs[0]);
        Step s = make_step(op.kind == GraphOpKind::Activation ? StepKind::Activation : StepKind::Affine, {op.inputs[0]},
                           out, &op);
        steps_.push_back(s);
        return;
      }
      case GraphOpKind::Add:
      case GraphOpKind::Sub:
      case GraphOpKind::Mul: {
        same_dtype(op.inputs[0]);
        same_dtype(op.inputs[1]);
        Step s = make_step(StepKind::Binary, {op.inputs[0], op.inputs[1]}, out, &op);
        s.binary = op.kind == GraphOpKind::Add ? Binary::Add : op.kind == GraphOpKind::Sub ? Binary::Sub : Binary::Mul;
        steps_.push_back(s);
        return;
      }
      case GraphOpKind::MulChannel: {
        same_dtype(op.inputs[0]);
        const Shape& xs = shape(op.inputs[0]);
        const int scale = op.inputs[1];
        FSTM_CHECK(xs.size() >= 2 && dtype(scale) == DType::f32 && shape(scale).numel() == xs[0] * xs[xs.size() - 1],
                   "inference plan on CUDA: mul_channel of ", xs.str(), " by ", shape(scale).str());
        Step s = make_step(StepKind::MulChannel, {op.inputs[0], scale}, out, &op);
        steps_.push_back(s);
        return;
      }
      case GraphOpKind::Concat: {
        int64_t channels = 0;
        for (int v : op.inputs) {
          FSTM_CHECK(dtype(v) == dtype(out) && shape(v).size() == shape(out).size(),
                     "inference plan on CUDA: concat of ", shape(v).str(), " into ", shape(out).str());
          channels += shape(v)[shape(v).size() - 1];
        }
        FSTM_CHECK(channels == shape(out)[shape(out).size() - 1], "inference plan on CUDA: concat of ", channels,
                   " channels into ", shape(out).str());
        Step s = make_step(StepKind::Concat, op.inputs, out, &op);
        steps_.push_back(s);
        return;
      }
      case GraphOpKind::Reshape: {
        const int x = op.inputs[0];
        FSTM_CHECK(shape(x).numel() == shape(out).numel(), "inference plan on CUDA: reshape of ", shape(x).str(),
                   " to ", shape(out).str());
        if (dtype(x) == dtype(out)) {
          values_[size_t(out)].alias_of = x;  // same bytes, another shape
        } else {
          Step s = make_step(StepKind::Convert, {x}, out, &op);
          steps_.push_back(s);
        }
        return;
      }
      case GraphOpKind::BatchNorm:
        break;
    }
    throw Error(detail::concat("inference plan on CUDA: op ", graph_op_name(op.kind), " is not supported"));
  }

  void compile_conv(const GraphOp& op) {
    const int x = op.inputs[0];
    const Shape& xs = shape(x);
    const Shape& ys = shape(op.output);
    const Shape& ws = op.weight.shape();  // [Co, Ci/groups, kH, kW]
    const auto& p = op.conv;
    FSTM_CHECK(xs.size() == 4 && ys.size() == 4 && ws.size() == 4 && ws[1] * p.groups == xs[3] && ys[3] == ws[0],
               "inference plan on CUDA: conv of ", xs.str(), " with weight ", ws.str(), " into ", ys.str());
    auto c = std::make_unique<ConvStep>();
    c->text = detail::concat("conv ", ws[2], "x", ws[3], "/", p.stride_h, " ", xs[3], "->", ws[0],
                             p.groups > 1 ? " groups " + std::to_string(p.groups) : std::string(), " on ", xs.str());
    const cudnnDataType_t t = cudnn_type(dtype_);
    c->math = dtype_ != DType::f32 ? CUDNN_TENSOR_OP_MATH : (tf32_ ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH);
    static_cast<kc::ConvDescriptors&>(*c) =
        kc::make_conv_descriptors(xs, ws, ys, p, t, c->math, "inference plan on CUDA: " + c->text);

    // Weights OIHW -> OHWI in the plan dtype; bias f32.
    const int64_t O = ws[0], I = ws[1], K = ws[2] * ws[3];
    const std::vector<float> oihw = op.weight.to_vector();
    std::vector<float> ohwi(oihw.size());
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i)
        for (int64_t k = 0; k < K; ++k) ohwi[size_t((o * K + k) * I + i)] = oihw[size_t((o * I + i) * K + k)];
    c->weight = host_to_dtype(ohwi, Shape{O, ws[2], ws[3], I}, dtype_).to(device_);
    if (op.bias.defined()) c->bias_f32 = op.bias.to(DType::f32).to(device_);

    Step s = make_step(StepKind::Conv, {x}, op.output, &op);
    int relus = 0;
    for (const PostOp& post : op.post_ops) {
      if (post.kind == PostOp::Kind::Sum) {
        FSTM_CHECK(shape(post.sum_value) == ys && dtype(post.sum_value) == dtype_, "inference plan on CUDA: ", c->text,
                   " adds ", shape(post.sum_value).str(), " to its output ", ys.str());
        s.sums.push_back(post.sum_value);
      } else {
        relus += post.activation == kernels::Activation::Relu ? 1 : 0;
      }
    }
    FSTM_CHECK(int(op.post_ops.size()) <= kc::infer::kMaxEpilogueSteps, "inference plan on CUDA: ", c->text, " has ",
               op.post_ops.size(), " post-ops (at most ", kc::infer::kMaxEpilogueSteps, ")");
    // relu(conv + bias) or relu(conv + bias + residual): what cudnnConvolutionBiasActivationForward computes.
    const auto& po = op.post_ops;
    const bool relu_only = po.size() == 1 && relus == 1;
    const bool sum_relu =
        po.size() == 2 && po[0].kind == PostOp::Kind::Sum && relus == 1 && po[1].kind == PostOp::Kind::Activation;
    c->fusable = use_fused_ && op.bias.defined() && p.groups == 1 && (relu_only || sum_relu);
    if (c->fusable) {
      c->sum_value = sum_relu ? po[0].sum_value : -1;
      c->bias_t = op.bias.to(DType::f32).to(dtype_).to(device_);
      c->bias = kc::TensorDescriptor::create();
      FSTM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(c->bias, CUDNN_TENSOR_NCHW, t, 1, kc::cudnn_int(O, "inference plan on CUDA", "channels"), 1, 1));
      c->relu = kc::ActivationDescriptor::create();
      FSTM_CUDNN_CHECK(cudnnSetActivationDescriptor(c->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    }
    s.conv = int(convs_.size());
    convs_.push_back(std::move(c));
    steps_.push_back(s);
  }

  void compile_linear(const GraphOp& op) {
    int x = op.inputs[0];
    const Shape& ws = op.weight.shape();  // [O, I]
    const int64_t N = shape(x)[0];
    FSTM_CHECK(ws.size() == 2 && shape(x).numel() == N * ws[1] && shape(op.output).numel() == N * ws[0],
               "inference plan on CUDA: linear of ", shape(x).str(), " with weight ", ws.str());
    // cuBLAS in f32 on [N, I]: activations in another dtype are converted first.
    if (dtype(x) != DType::f32) x = add_convert(x, Shape{N, ws[1]}, DType::f32);
    LinearWeights lw;
    lw.w = op.weight.to(DType::f32).to(device_);
    if (op.bias.defined()) lw.b = op.bias.to(DType::f32).to(device_);
    Step s = make_step(StepKind::Linear, {x}, op.output, &op);
    FSTM_CHECK(dtype(op.output) == DType::f32, "inference plan on CUDA: linear output ", shape(op.output).str());
    for (const PostOp& post : op.post_ops)
      if (post.kind == PostOp::Kind::Sum) {
        FSTM_CHECK(dtype(post.sum_value) == DType::f32 && shape(post.sum_value).numel() == shape(op.output).numel(),
                   "inference plan on CUDA: linear adds ", shape(post.sum_value).str());
        s.sums.push_back(post.sum_value);
      }
    s.linear = int(linears_.size());
    linears_.push_back(std::move(lw));
    steps_.push_back(s);
  }

  // ---- memory -------------------------------------------------------------------------------------
  void allocate() {
    const int n = int(values_.size());
    const int end = int(steps_.size());
    std::vector<BufferRequest> requests(static_cast<size_t>(n));
    auto touch = [&](int v, int step) {
      BufferRequest& r = requests[size_t(root(v))];
      if (r.first < 0 || step < r.first) r.first = step;
      r.last = std::max(r.last, step);
    };
    touch(g_.input, 0);
    for (int i = 0; i < end; ++i) {
      const Step& s = steps_[size_t(i)];
      for (int v : s.in) touch(v, i);
      for (int v : s.sums) touch(v, i);
      touch(s.out, i);
    }
    requests[size_t(root(g_.input))].last = end;       // the caller writes it before run()
    requests[size_t(root(output_value_))].last = end;  // read after run()
    touch(output_value_, end);
    for (int v = 0; v < n; ++v) {
      BufferRequest& r = requests[size_t(root(v))];
      r.bytes = std::max(r.bytes, size_t(shape(v).numel()) * dtype_size(dtype(v)));
    }
    const BufferPlan plan = plan_buffers(requests);
    buffer_of_.assign(size_t(n), -1);
    for (int v = 0; v < n; ++v) buffer_of_[size_t(v)] = plan.buffer_of[size_t(root(v))];
    for (size_t bytes : plan.buffer_bytes) {
      storage_.push_back(Tensor::empty(Shape{int64_t(std::max<size_t>(bytes, 16))}, DType::u8, device_));
      // Finite contents for the algorithm search (garbage could hold NaNs).
      FSTM_CUDA_CHECK(cudaMemsetAsync(storage_.back().raw_data(), 0, storage_.back().nbytes(), stream_));
    }
  }

  // ---- convolution algorithms ----------------------------------------------------------------------
  // The first usable result (cuDNN lists them fastest first): for f32 without TF32, results that
  // need tensor-op math are skipped; so are non-deterministic ones unless
  // kernels::cuda::set_deterministic_algorithms(false) (a forward pass rarely has any).
  template <typename Perf>
  bool pick(const Perf* perf, int count, ConvStep& c) const {
    const bool tensor_ops = dtype_ != DType::f32 || tf32_;
    for (int i = 0; i < count; ++i) {
      if (!kc::usable_algorithm(perf[i], tensor_ops, deterministic_)) continue;
      c.algo = perf[i].algo;
      c.math = tensor_ops ? perf[i].mathType : CUDNN_FMA_MATH;
      return true;
    }
    return false;
  }

  void choose_algorithms() {
    if (convs_.empty()) return;
    kc::FindWorkspace find_ws(device_.index, kFindWorkspaceLimit);
    size_t workspace = 0;
    for (const Step& s : steps_) {
      if (s.kind != StepKind::Conv) continue;
      ConvStep& c = *convs_[size_t(s.conv)];
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int returned = 0;
      // A failed search (unsupported configuration, no memory) falls back to the heuristics.
      const cudnnStatus_t status = cudnnFindConvolutionForwardAlgorithmEx(
          handle_, c.x, ptr(s.in[0]), c.w, c.weight.raw_data(), c.conv, c.y, ptr(s.out),
          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, find_ws.ptr(), find_ws.bytes());
      bool found = status == CUDNN_STATUS_SUCCESS && pick(perf, returned, c);
      if (!found) {
        FSTM_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, c.x, c.w, c.conv, c.y,
                                                                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
        found = pick(perf, returned, c);
      }
      FSTM_CHECK(found, "inference plan on CUDA: cuDNN has no ", dtype_name(dtype_),
                 dtype_ == DType::f32 && !tf32_ ? " FMA (non-TF32)" : "", " algorithm for ", c.text);
      FSTM_CUDNN_CHECK(cudnnSetConvolutionMathType(c.conv, c.math));
      FSTM_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle_, c.x, c.w, c.conv, c.y, c.algo, &c.workspace));
      workspace = std::max(workspace, c.workspace);
    }
    workspace_bytes_ = workspace;
    if (workspace > 0) workspace_ = kc::scratch_bytes(device_.index, workspace);
  }

  // ---- execution ------------------------------------------------------------------------------------
  void* workspace_ptr() const { return workspace_bytes_ ? workspace_.raw_data() : nullptr; }

  cudnnStatus_t run_fused(const Step& s, const ConvStep& c) const {
    const float one = 1.0f, alpha2 = c.sum_value >= 0 ? 1.0f : 0.0f;
    void* y = ptr(s.out);
    const void* z = c.sum_value >= 0 ? ptr(c.sum_value) : y;  // ignored when alpha2 is 0
    return cudnnConvolutionBiasActivationForward(handle_, &one, c.x, ptr(s.in[0]), c.w, c.weight.raw_data(), c.conv,
                                                 c.algo, workspace_ptr(), workspace_bytes_, &alpha2, c.y, z, c.bias,
                                                 c.bias_t.raw_data(), c.relu, c.y, y);
  }

  void run_unfused(const Step& s, const ConvStep& c) const {
    const float one = 1.0f, zero = 0.0f;
    FSTM_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, c.x, ptr(s.in[0]), c.w, c.weight.raw_data(), c.conv, c.algo,
                                             workspace_ptr(), workspace_bytes_, &zero, c.y, ptr(s.out)));
    const GraphOp& op = *s.op;
    if (op.post_ops.empty() && !c.bias_f32.defined()) return;
    kc::infer::Epilogue e;
    for (const PostOp& post : op.post_ops) {
      kc::infer::EpilogueStep& step = e.steps[e.count++];
      if (post.kind == PostOp::Kind::Sum)
        step.residual = ptr(post.sum_value);
      else
        step.activation = post.activation;
    }
    const Shape& ys = shape(s.out);
    kc::infer::conv_epilogue(dtype_, ptr(s.out), c.bias_f32.defined() ? c.bias_f32.data<float>() : nullptr, ys.numel(),
                             ys[3], e, stream_);
  }

  void execute(const Step& s) {
    const int64_t n = shape(s.out).numel();
    switch (s.kind) {
      case StepKind::Conv: {
        const ConvStep& c = *convs_[size_t(s.conv)];
        try {
          if (c.fused) {
            FSTM_CUDNN_CHECK(run_fused(s, c));
          } else {
            run_unfused(s, c);
          }
        } catch (const Error& e) {
          throw Error(detail::concat(e.what(), " [inference plan: ", c.text, "]"));
        }
        return;
      }
      case StepKind::Linear: {
        const LinearWeights& lw = linears_[size_t(s.linear)];
        const int64_t N = shape(s.in[0])[0];
        const Tensor x = view_as(s.in[0], Shape{N, shape(s.in[0]).numel() / N}, DType::f32);
        Tensor y = view_as(s.out, Shape{N, n / N}, DType::f32);
        kc::linear_forward(x, lw.w, lw.b, y);
        for (const PostOp& post : s.op->post_ops) {
          if (post.kind == PostOp::Kind::Sum) {
            kc::infer::binary(DType::f32, Binary::Add, ptr(s.out), ptr(post.sum_value), ptr(s.out), n, stream_);
          } else {
            kc::infer::activation(DType::f32, post.activation, ptr(s.out), ptr(s.out), n, stream_);
          }
        }
        return;
      }
      case StepKind::MaxPool: {
        const Shape& xs = shape(s.in[0]);
        const Shape& ys = shape(s.out);
        const auto& p = s.op->pool;
        const kc::PoolGeometry g{xs[0],      xs[1],      xs[2],      xs[3],      ys[1],   ys[2],
                                        p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
        kc::max_pool_forward(dtype_, ptr(s.in[0]), g, ptr(s.out), stream_);
        return;
      }
      case StepKind::GlobalAvgPool: {
        const Shape& xs = shape(s.in[0]);
        kc::infer::global_avg_pool(dtype(s.in[0]), ptr(s.in[0]), xs[0], xs[1] * xs[2], xs[3],
                                   static_cast<float*>(ptr(s.out)), stream_);
        return;
      }
      case StepKind::Activation:
        kc::infer::activation(dtype(s.out), s.op->activation, ptr(s.in[0]), ptr(s.out), n, stream_);
        return;
      case StepKind::Affine:
        kc::infer::affine(dtype(s.out), ptr(s.in[0]), s.op->alpha, s.op->beta, ptr(s.out), n, stream_);
        return;
      case StepKind::Binary:
        kc::infer::binary(dtype(s.out), s.binary, ptr(s.in[0]), ptr(s.in[1]), ptr(s.out), n, stream_);
        return;
      case StepKind::MulChannel: {
        const Shape& xs = shape(s.in[0]);
        const int64_t C = xs[xs.size() - 1];
        kc::infer::mul_channel(dtype(s.out), ptr(s.in[0]), static_cast<const float*>(ptr(s.in[1])), ptr(s.out), n,
                               n / xs[0], C, stream_);
        return;
      }
      case StepKind::Concat: {
        const Shape& ys = shape(s.out);
        const int64_t Cy = ys[ys.size() - 1], L = Cy ? n / Cy : 0;
        int64_t offset = 0;
        for (int v : s.in) {
          const int64_t C = shape(v)[shape(v).size() - 1];
          kc::infer::concat_part(dtype(s.out), ptr(v), L, C, ptr(s.out), Cy, offset, stream_);
          offset += C;
        }
        return;
      }
      case StepKind::Convert:
        FSTM_CHECK(fc::convert_on_device(ptr(s.in[0]), dtype(s.in[0]), ptr(s.out), dtype(s.out), n, stream_),
                   "inference plan on CUDA: cannot convert ", dtype_name(dtype(s.in[0])), " to ",
                   dtype_name(dtype(s.out)));
        return;
    }
  }

  // ---- build time -----------------------------------------------------------------------------------
  // One eager pass on a random input: loads every kernel and creates the library handles before
  // the capture, and decides which fusable convolutions really run fused (see the file comment).
  void build_time_run() {
    {
      Rng rng(12345);
      const Shape& is = shape(g_.input);
      std::vector<float> values(size_t(is.numel()));
      for (float& v : values) v = rng.uniform(-1.0f, 1.0f);
      Tensor in = input_buffer();
      in.copy_(host_to_dtype(values, is, dtype(g_.input)));
    }
    size_t largest = 0;
    for (const Step& s : steps_)
      if (s.kind == StepKind::Conv && convs_[size_t(s.conv)]->fusable)
        largest = std::max(largest, size_t(shape(s.out).numel()) * dtype_size(dtype_));
    Tensor reference, stats;
    if (largest > 0) {
      reference = kc::scratch_bytes(device_.index, largest);
      stats = Tensor::empty(Shape{2}, DType::f32, device_);
    }
    for (const Step& s : steps_) {
      if (s.kind == StepKind::Conv && convs_[size_t(s.conv)]->fusable) {
        check_fused(s, *convs_[size_t(s.conv)], reference, stats);
      } else {
        execute(s);
      }
    }
    FSTM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // Runs the unfused path, keeps its result, runs the fused call on the same inputs and keeps it
  // only when it succeeds and agrees within the dtype's rounding. Leaves a correct y either way.
  void check_fused(const Step& s, ConvStep& c, Tensor& reference, Tensor& stats) {
    try {
      run_unfused(s, c);
    } catch (const Error& e) {
      throw Error(detail::concat(e.what(), " [inference plan: ", c.text, "]"));
    }
    const Shape& ys = shape(s.out);
    const size_t bytes = size_t(ys.numel()) * dtype_size(dtype_);
    FSTM_CUDA_CHECK(cudaMemcpyAsync(reference.raw_data(), ptr(s.out), bytes, cudaMemcpyDeviceToDevice, stream_));
    const cudnnStatus_t status = run_fused(s, c);
    if (status != CUDNN_STATUS_SUCCESS) {
      (void)cudaGetLastError();
      FSTM_CUDA_CHECK(cudaMemcpyAsync(ptr(s.out), reference.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream_));
      c.fused = false;
      return;
    }
    kc::infer::max_abs_diff(dtype_, ptr(s.out), reference.raw_data(), ys.numel(), stats.data<float>(), stream_);
    const std::vector<float> d = stats.to_vector();  // waits for the stream
    // Two roundings of the output (bf16: 2^-8 each, f16: 2^-11) relative to the largest value, with
    // room for another summation order; f32 differs only in the order of the sums.
    const float tolerance = dtype_ == DType::bf16 ? 2e-2f : dtype_ == DType::f16 ? 4e-3f : 1e-4f;
    c.fused = std::isfinite(d[0]) && std::isfinite(d[1]) && d[0] <= tolerance * d[1] + 1e-6f;
    if (!c.fused)
      FSTM_CUDA_CHECK(cudaMemcpyAsync(ptr(s.out), reference.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream_));
  }

  void capture() {
    try {
      graph_ = std::make_unique<kc::CudaGraph>(device_);
      graph_->capture([&] {
        for (const Step& s : steps_) execute(s);
      });
    } catch (const Error& e) {
      graph_.reset();
      graph_note_ = e.what();
      FSTM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
  }

  const InferenceGraph& g_;
  const DType dtype_;
  const Device device_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t handle_ = nullptr;
  bool tf32_ = false, deterministic_ = true, use_fused_ = true;
  std::vector<Value> values_;
  std::vector<Step> steps_;
  std::vector<std::unique_ptr<ConvStep>> convs_;
  std::vector<LinearWeights> linears_;
  std::vector<int> buffer_of_;
  std::vector<Tensor> storage_;
  Tensor workspace_;
  size_t workspace_bytes_ = 0;
  int output_value_ = -1;
  std::unique_ptr<kc::CudaGraph> graph_;
  std::string graph_note_;
};

}  // namespace

std::unique_ptr<InferenceExecutor> kernels::cuda::make_executor(const InferenceGraph& graph, DType dtype,
                                                               Device device, const CudaExecutorOptions& options) {
  return std::make_unique<CudaExecutor>(graph, dtype, device, options);
}

}  // namespace fstm
