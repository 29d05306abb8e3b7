// Convolution benchmark: every distinct convolution of ResNet-18 at 224x224, batch 32.
//
//   fstm/{fwd,bwd_data,bwd_weights}/<layer>   fstm's kernels (the fast CPU path) on NHWC tensors with
//                                             OIHW weights, as training calls them; GFLOP/s counter.
//   fstm_direct/...                           3x3 stride-1 layers with Winograd turned off: the
//                                             direct kernels on NHWC (what PyTorch 1.13 runs).
//   fstm_plainw/.../layer4_3x3_7              the same with the weight layout forced to OIHW (no
//                                             reorders): does letting oneDNN pick a layout pay? (Yes:
//                                             oneDNN 2.6 has no fast NHWC kernel for plain OIHW
//                                             weights and falls back to ref:any, 100x slower, so
//                                             only the smallest shape is registered.)
//   onednn/{f32,bf16}/{nhwc,nChw16c,any}/<layer>
//                                             a bare oneDNN inference convolution with weights already
//                                             in the primitive's layout and activations NHWC, blocked
//                                             nChw16c (a 3-channel input stays as oneDNN wants it), or
//                                             whatever oneDNN prefers: the layout choice for the
//                                             inference path. The label names the layouts and kernel.
//                                             onednn/f32/winograd/...: f32 Winograd (3x3/1 layers).
//   overhead/cache_{on,off}/<layer>           one small call (batch 1): the cost of building the
//                                             primitive descriptors on every call, i.e. what fstm's
//                                             primitive cache saves on top of oneDNN's own cache.
//
// Run: build/bench/bench_conv --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//      (bench/bench_conv.py runs it next to PyTorch and prints ratios). The GFLOP/s counter uses
//      wall time; the CPU column is the whole process's CPU time, which on a shared machine with
//      OMP_NUM_THREADS=1 is the steadier measure of a kernel's efficiency.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "fstm_build_config.h"
#include "kernels/backend.h"
#include "kernels/conv2d.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#if FSTM_HAVE_ONEDNN
#include "kernels/cpu/onednn_common.h"
#endif

namespace {

using fstm::Shape;
using fstm::Tensor;
using fstm::kernels::Conv2dParams;

struct ConvShape {
  const char* name;  // the first ResNet-18 layer with this shape
  int64_t H, W, Ci, Co, k;
  int stride, pad;
};

// Every distinct convolution of torchvision's resnet18 at 224x224.
const std::vector<ConvShape>& resnet18_convs() {
  static const std::vector<ConvShape> shapes{
      {"conv1_7x7s2", 224, 224, 3, 64, 7, 2, 3},
      {"layer1_3x3_56", 56, 56, 64, 64, 3, 1, 1},
      {"layer2.0.conv1_3x3s2", 56, 56, 64, 128, 3, 2, 1},
      {"layer2.0.downsample_1x1s2", 56, 56, 64, 128, 1, 2, 0},
      {"layer2_3x3_28", 28, 28, 128, 128, 3, 1, 1},
      {"layer3.0.conv1_3x3s2", 28, 28, 128, 256, 3, 2, 1},
      {"layer3.0.downsample_1x1s2", 28, 28, 128, 256, 1, 2, 0},
      {"layer3_3x3_14", 14, 14, 256, 256, 3, 1, 1},
      {"layer4.0.conv1_3x3s2", 14, 14, 256, 512, 3, 2, 1},
      {"layer4.0.downsample_1x1s2", 14, 14, 256, 512, 1, 2, 0},
      {"layer4_3x3_7", 7, 7, 512, 512, 3, 1, 1},
  };
  return shapes;
}

constexpr int64_t kBatch = 32;

Conv2dParams params_of(const ConvShape& s) {
  Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  return p;
}

int64_t out_size(int64_t in, const ConvShape& s) { return (in + 2 * s.pad - s.k) / s.stride + 1; }

double gflop(const ConvShape& s, int64_t batch) {
  return 2.0 * double(batch) * double(out_size(s.H, s) * out_size(s.W, s)) * double(s.Co) * double(s.Ci) *
         double(s.k * s.k) * 1e-9;
}

Tensor random(const Shape& shape, fstm::Rng& rng) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-1.0f, 1.0f);
  return t;
}

enum class Direction { Forward, BackwardData, BackwardWeights };

void run_fstm(benchmark::State& state, const ConvShape& s, Direction dir, int64_t batch) {
  fstm::Rng rng(1);
  const Conv2dParams p = params_of(s);
  Tensor x = random(Shape{batch, s.H, s.W, s.Ci}, rng);
  Tensor w = random(Shape{s.Co, s.Ci, s.k, s.k}, rng);
  Tensor y = Tensor::empty(fstm::kernels::conv2d_output_shape(x.shape(), w.shape(), p));
  Tensor dy = random(y.shape(), rng), dx = Tensor::empty(x.shape()), dw = Tensor::zeros(w.shape());
  Tensor none;
  auto once = [&] {
    switch (dir) {
      case Direction::Forward: fstm::kernels::conv2d_forward(x, w, none, p, y); break;
      case Direction::BackwardData: fstm::kernels::conv2d_backward_data(dy, w, p, dx); break;
      case Direction::BackwardWeights: fstm::kernels::conv2d_backward_weights(dy, x, p, dw, none); break;
    }
  };
  once();  // builds and caches the primitives
  for (auto _ : state) once();
  state.counters["GFLOP/s"] = benchmark::Counter(gflop(s, batch), benchmark::Counter::kIsIterationInvariantRate);
}

#if FSTM_HAVE_ONEDNN
namespace dn = fstm::kernels::onednn;

// A short name for a 4-D activation layout: nhwc, nchw, nChw16c, nChw8c, ...
std::string layout_name(const dnnl::memory::desc& md) {
  const auto& b = md.data.format_desc.blocking;
  if (b.inner_nblks == 1 && b.inner_idxs[0] == 1) return "nChw" + std::to_string(b.inner_blks[0]) + "c";
  if (b.inner_nblks == 0 && b.strides[1] == 1) return "nhwc";
  if (b.inner_nblks == 0 && b.strides[3] == 1) return "nchw";
  return "other";
}

struct RawConv {
  dnnl::convolution_forward prim;
  dnnl::memory src, weights, dst;
  std::string layouts;
};

enum class Layout { Nhwc, Blocked16, Any, Winograd };  // Winograd: its algorithm, layouts as it wants

// An inference convolution with every operand already in the primitive's layout.
RawConv make_raw(const ConvShape& s, dnnl::memory::data_type type, Layout layout) {
  using tag = dnnl::memory::format_tag;
  const int64_t Ho = out_size(s.H, s), Wo = out_size(s.W, s);
  const tag act = layout == Layout::Nhwc ? tag::nhwc : layout == Layout::Blocked16 ? tag::nChw16c : tag::any;
  const auto algorithm =
      layout == Layout::Winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  const tag src_tag = (layout == Layout::Blocked16 && s.Ci % 16 != 0) ? tag::any : act;
  const dnnl::memory::desc src({kBatch, s.Ci, s.H, s.W}, type, src_tag), dst({kBatch, s.Co, Ho, Wo}, type, act);
  const dnnl::memory::desc wei({s.Co, s.Ci, s.k, s.k}, type, tag::any);
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm,
                                             src, wei, dst, {s.stride, s.stride}, {s.pad, s.pad}, {s.pad, s.pad});
  const dnnl::convolution_forward::primitive_desc pd(desc, dn::engine());
  RawConv r{dnnl::convolution_forward(pd), dnnl::memory(pd.src_desc(), dn::engine()),
            dnnl::memory(pd.weights_desc(), dn::engine()), dnnl::memory(pd.dst_desc(), dn::engine()),
            layout_name(pd.src_desc()) + "->" + layout_name(pd.dst_desc()) + " " + pd.impl_info_str()};
  // Small finite values in every byte pattern (0x3c3c: ~0.0115 in bf16 and f32): no denormals.
  for (dnnl::memory* m : {&r.src, &r.weights, &r.dst})
    std::memset(m->get_data_handle(), 0x3c, m->get_desc().get_size());
  return r;
}

void run_raw(benchmark::State& state, const ConvShape& s, dnnl::memory::data_type type, Layout layout) {
  RawConv r = make_raw(s, type, layout);
  state.SetLabel(r.layouts);
  auto once = [&] {
    r.prim.execute(dn::stream(), {{DNNL_ARG_SRC, r.src}, {DNNL_ARG_WEIGHTS, r.weights}, {DNNL_ARG_DST, r.dst}});
    dn::stream().wait();
  };
  once();
  for (auto _ : state) once();
  state.counters["GFLOP/s"] = benchmark::Counter(gflop(s, kBatch), benchmark::Counter::kIsIterationInvariantRate);
}
#endif

void register_all() {
  const std::pair<Direction, const char*> directions[] = {
      {Direction::Forward, "fwd"}, {Direction::BackwardData, "bwd_data"}, {Direction::BackwardWeights, "bwd_weights"}};
  for (const ConvShape& s : resnet18_convs()) {
    for (auto [dir, dname] : directions) {
      const ConvShape shape = s;
      const Direction d = dir;
      benchmark::RegisterBenchmark((std::string("fstm/") + dname + "/" + s.name).c_str(),
                                   [shape, d](benchmark::State& st) { run_fstm(st, shape, d, kBatch); })
          ->Unit(benchmark::kMillisecond)
          ->MeasureProcessCPUTime()
          ->UseRealTime();
#if FSTM_HAVE_ONEDNN
      if (s.k == 3 && s.stride == 1)
        benchmark::RegisterBenchmark((std::string("fstm_direct/") + dname + "/" + s.name).c_str(),
                                     [shape, d](benchmark::State& st) {
                                       dn::set_conv2d_winograd(false);
                                       run_fstm(st, shape, d, kBatch);
                                       dn::set_conv2d_winograd(true);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->MeasureProcessCPUTime()
            ->UseRealTime();
      if (std::string(s.name) == "layer4_3x3_7")
        benchmark::RegisterBenchmark((std::string("fstm_plainw/") + dname + "/" + s.name).c_str(),
                                   [shape, d](benchmark::State& st) {
                                     dn::set_conv_weights_any(false);
                                     run_fstm(st, shape, d, kBatch);
                                     dn::set_conv_weights_any(true);
                                   })
          ->Unit(benchmark::kMillisecond)
          ->MeasureProcessCPUTime()
          ->UseRealTime();
#endif
    }
  }
#if FSTM_HAVE_ONEDNN
  using dt = dnnl::memory::data_type;
  for (auto [type, tname] : {std::pair{dt::f32, "f32"}, std::pair{dt::bf16, "bf16"}})
    for (auto [layout, lname] : {std::pair{Layout::Nhwc, "nhwc"}, std::pair{Layout::Blocked16, "nChw16c"},
                                 std::pair{Layout::Any, "any"}, std::pair{Layout::Winograd, "winograd"}})
      for (const ConvShape& s : resnet18_convs()) {
        if (layout == Layout::Winograd && (s.k != 3 || s.stride != 1 || type != dt::f32)) continue;
        const ConvShape shape = s;
        const dt t = type;
        const Layout l = layout;
        benchmark::RegisterBenchmark((std::string("onednn/") + tname + "/" + lname + "/" + s.name).c_str(),
                                     [shape, t, l](benchmark::State& st) { run_raw(st, shape, t, l); })
            ->Unit(benchmark::kMillisecond)
            ->MeasureProcessCPUTime()
            ->UseRealTime();
      }
  for (int i : {1, 10}) {
    const ConvShape shape = resnet18_convs()[size_t(i)];
    for (bool cache : {true, false})
      benchmark::RegisterBenchmark(
          (std::string("overhead/") + (cache ? "cache_on/" : "cache_off/") + shape.name + "_batch1").c_str(),
          [shape, cache](benchmark::State& st) {
            dn::set_primitive_cache_enabled(cache);
            run_fstm(st, shape, Direction::Forward, 1);
            dn::set_primitive_cache_enabled(true);
          })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
  }
#endif
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
