// fstm bench: images per second and peak memory of inference or a training step, for comparing
// with PyTorch (bench/gpu_bench.py runs both on a GPU). The data are on the device before the
// clock starts, and every timed iteration ends with the device idle (synchronised).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "fstm/cli/commands.h"
#include "fstm/lib/models.h"
#include "kernels/backend.h"
#include "kernels/conv2d.h"
#include "layers/classifier.h"
#include "layers/inference.h"
#include "layers/optim.h"
#include "tensor/allocator.h"
#include "tensor/cuda_api.h"

namespace fstm::cli {

namespace {

struct BenchOptions {
  std::string arch = "resnet18", mode = "infer", dtype = "f32", device = "cpu";
  std::string model = "classifier";  // classifier (--classes outputs), or fst (--classes identities)
  std::string fst_head = "mlp";
  int batch = 64, size = 224, threads = 0, iterations = 5, warmup = 1, classes = 1000;
  bool json = false;
  bool fast_conv = false;
};

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

int run_bench(const BenchOptions& o) {
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  if (o.fast_conv) kernels::set_fast_conv(true);
  const Device device = Device::parse(o.device);
  const DType dtype = parse_dtype(o.dtype);
  FSTM_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16, "--dtype must be f32, bf16 or f16");
  FSTM_CHECK(dtype != DType::f16 || device.is_cuda(), "--dtype f16 runs on CUDA only");
  FSTM_CHECK(o.batch >= 1 && o.size >= 32 && o.iterations >= 1, "--batch >= 1, --size >= 32, --iterations >= 1");
  const bool fst = o.model == "fst";
  std::unique_ptr<ImageClassifier> model;
  if (fst) {
    ModelConfig c;
    c.type = ModelType::fst;
    c.arch = o.arch;
    c.identities = o.classes;
    c.fst_head = parse_fst_head(o.fst_head);
    model = build_network(c, 1);
  } else {
    FSTM_CHECK(o.model == "classifier", "--model must be classifier or fst, got '", o.model, "'");
    model = make_classifier(o.arch, o.classes, 1);
  }
  model->to(device);
  Rng rng(2);
  Tensor x = Tensor::empty(Shape{o.batch, o.size, o.size, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  x = x.to(device);

  std::function<void()> step;
  std::unique_ptr<InferencePlan> plan;
  std::unique_ptr<Optimizer> optimizer;
  Tensor labels;
  std::string backend;
  if (o.mode == "infer") {
    model->eval();
    plan = std::make_unique<InferencePlan>([&](const Tensor& in) { return model->forward(in); }, x.shape(), dtype,
                                           device);
    plan->input_buffer().copy_(dtype == DType::f32 ? x : x.to(dtype));
    backend = plan->backend();
    step = [&] { plan->run_input_buffer(); };
  } else if (o.mode == "train") {
    FSTM_CHECK(dtype == DType::f32, "training runs in f32");
    model->train();
    auto random_labels = [&](int64_t k) {
      std::vector<int64_t> l(size_t(o.batch));
      for (auto& v : l) v = int64_t(rng.below(uint64_t(k)));
      return Tensor::from_vector_i64(l, Shape{o.batch}, device);
    };
    labels = random_labels(o.classes);
    backend = std::string("eager ") + device.str() + (kernels::use_reference() ? " reference" : " fast");
    if (fst) {
      // the FST-Matching step as fstm train runs it: AdamW (the authors' lr and weight decay) on
      // CE(det) + 0.5 CE(source) + CE(target) + 100 L_int
      const Tensor det = random_labels(2), target = random_labels(o.classes);
      AdamWOptions ao;
      ao.lr = 1e-5f;
      ao.weight_decay = 4e-3f;
      optimizer = std::make_unique<AdamW>(model->named_parameters(), ao);
      step = [&, det, target] {
        optimizer->zero_grad();
        const Losses L = compute_losses(*model, ModelType::fst, x, det, labels, target);
        backward(L.total);
        optimizer->step();
      };
    } else {
      SgdOptions so;
      so.lr = 0.01f;
      so.momentum = 0.9f;
      optimizer = std::make_unique<SGD>(model->named_parameters(), so);
      step = [&] {
        optimizer->zero_grad();
        Tensor loss = ops::cross_entropy(model->forward(x), labels);
        backward(loss);
        optimizer->step();
      };
    }
  } else {
    throw Error("--mode must be infer or train, got '" + o.mode + "'");
  }
  for (int i = 0; i < o.warmup; ++i) step();
  if (device.is_cuda()) cuda_backend()->synchronize(device.index);
  const uint64_t system_allocations_before = cpu_allocator_stats().system_allocations;
  std::vector<double> seconds;
  for (int i = 0; i < o.iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    if (device.is_cuda()) cuda_backend()->synchronize(device.index);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  nlohmann::json r = {{"arch", o.arch},       {"model", o.model},      {"mode", o.mode},        {"dtype", o.dtype},
                      {"batch", o.batch},     {"size", o.size},        {"threads", kernels::num_threads()},
                      {"device", o.device},   {"backend", backend},    {"iterations", o.iterations},
                      {"median_s", median},   {"images_per_s", o.batch / median}, {"peak_rss_mb", peak_rss_mb()},
                      {"fast_conv", kernels::fast_conv()}};
  if (!device.is_cuda()) {  // what of the peak RSS is tensors: live at most, and what the allocator holds
    const AllocatorStats a = cpu_allocator_stats();
    r["tensor_peak_mb"] = double(a.peak_bytes_in_use) / (1 << 20);
    r["tensor_reserved_mb"] = double(a.bytes_reserved) / (1 << 20);
    // Segments asked of the system per timed iteration: 0 when the allocator's memory is reused.
    r["system_allocations_per_iteration"] = double(a.system_allocations - system_allocations_before) / o.iterations;
  }
  // Device memory: the most the caching allocator handed out at once (model, data, activations,
  // plan buffers and workspaces; not its cache or cuBLAS's workspace), like torch.cuda.max_memory_allocated.
  double gpu_peak_mb = 0;
  if (device.is_cuda()) {
    gpu_peak_mb = double(cuda::memory_stats(device.index).peak_bytes_in_use) / (1024.0 * 1024.0);
    r["gpu_peak_mb"] = gpu_peak_mb;
    r["gpu"] = cuda_backend()->device_name(device.index);
  }
  if (o.json) {
    std::cout << r.dump() << "\n";
  } else {
    std::cout << (fst ? "fst " : "") << o.arch << " " << o.mode << " " << o.dtype << " batch " << o.batch << " " << o.size << "x" << o.size
              << " on " << backend << ": " << o.batch / median << " img/s (median of " << o.iterations
              << "), peak RSS " << peak_rss_mb() << " MB";
    if (device.is_cuda()) std::cout << ", GPU peak " << gpu_peak_mb << " MB";
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

Command make_bench_command() {
  auto o = std::make_shared<BenchOptions>();
  Command c;
  c.add = [o](CLI::App& app) {
    CLI::App* s = app.add_subcommand("bench", "Measure inference or training throughput and peak memory");
    s->add_option("--arch", o->arch, "Architecture")->capture_default_str();
    s->add_option("--model", o->model, "classifier, or fst (the FST-Matching model; --classes identities)")
        ->check(CLI::IsMember({"classifier", "fst"}))
        ->capture_default_str();
    s->add_option("--fst-head", o->fst_head, "fst: mlp or linear")->check(CLI::IsMember({"mlp", "linear"}))->capture_default_str();
    s->add_option("--mode", o->mode, "infer or train")->check(CLI::IsMember({"infer", "train"}))->capture_default_str();
    s->add_option("--batch", o->batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--size", o->size, "Image size (square)")->capture_default_str()->check(CLI::Range(32, 4096));
    s->add_option("--dtype", o->dtype, "f32, bf16 or f16 (inference; f16 on CUDA only)")
        ->check(CLI::IsMember({"f32", "bf16", "f16"}))
        ->capture_default_str();
    s->add_option("--threads", o->threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
    s->add_option("--iterations", o->iterations, "Timed iterations")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--warmup", o->warmup, "Untimed iterations first")->capture_default_str()->check(CLI::NonNegativeNumber);
    s->add_option("--classes", o->classes, "Classes of the head")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--device", o->device, "cpu or cuda[:N]")->capture_default_str();
    s->add_flag("--fast-conv", o->fast_conv, "CPU: oneDNN's Winograd convolutions (as fstm train --fast-conv)");
    s->add_flag("--json", o->json, "Print one JSON object");
    return s;
  };
  c.run = [o] { return run_bench(*o); };
  return c;
}

}  // namespace fstm::cli
