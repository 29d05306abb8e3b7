// gpu_parity: the same ResNet on the CPU and on a CUDA device, compared tensor by tensor.
//
//   gpu_parity ARCH [--batch N] [--height H] [--width W] [--classes K] [--seed S]
//              [--weights W.safetensors] [--input I.safetensors] [--dump OUT.safetensors] [--device cuda:0]
//
// Without --weights the model has random weights and random BatchNorm statistics (so folding is
// exercised); without --input, a random batch and labels. Compared, each as max|a - e| <= bound *
// max|e| over the tensor (e = the CPU result):
//   - eval-mode logits (CUDA eager vs CPU eager): 1e-4
//   - train mode: logits and loss 1e-4, every parameter gradient and the BatchNorm running
//     statistics after the step 1e-3
//   - inference plans on CUDA vs the CPU eval logits: f32 1e-4, f16 1e-2, bf16 5e-2
// --dump writes every compared tensor (cpu.*, cuda.*, plan.*) for bench/gpu_parity.py, which adds
// PyTorch on the GPU as a third opinion. --device cpu is a dry run of the same steps with the
// "GPU" side on the CPU too (f16 plans skipped; bf16 plans need oneDNN), for checking the scripts
// on a machine without a GPU. Exit status: 0 all within bounds, 1 otherwise, 2 usage, 77 no CUDA
// device.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "io/safetensors.h"
#include "layers/classifier.h"
#include "layers/inference.h"
#include "tensor/cuda_api.h"

using namespace fstm;

namespace {

struct Options {
  std::string arch, weights, input, dump, device = "cuda:0";
  int64_t batch = 4, height = 64, width = 80, classes = 10;
  uint64_t seed = 1;
};

io::StateDict as_state_dict(const NamedTensors& named) {
  io::StateDict d;
  for (const auto& [name, t] : named) d.add(name, t);
  return d;
}

// Random BatchNorm statistics and affine parameters in the model's BatchNorm layers (the
// parameters of "...bn*" and "downsample.1" modules), so that eval mode and plan folding see
// something other than the identity.
void randomize_batch_norm(ImageClassifier& model, Rng& rng) {
  for (auto& [name, t] : model.state_dict()) {
    const bool bn = name.find(".bn") != std::string::npos || name.rfind("bn", 0) == 0 ||
                    name.find("downsample.1.") != std::string::npos;
    if (!bn || t.dtype() != DType::f32) continue;
    const bool scale = name.ends_with("running_var") || name.ends_with("weight");
    std::vector<float> v(size_t(t.numel()));
    for (float& e : v) e = scale ? rng.uniform(0.5f, 1.5f) : rng.uniform(-0.3f, 0.3f);
    t.copy_(Tensor::from_vector(v, t.shape()));
  }
}

class Report {
 public:
  // max|actual - expected| <= bound * max|expected| (+ 1e-7).
  void close(const std::string& name, const Tensor& actual, const Tensor& expected, double bound) {
    ++count_;
    const std::vector<float> a = actual.to_vector(), e = expected.to_vector();
    if (a.size() != e.size() || actual.shape() != expected.shape()) {
      std::printf("FAIL %s: shape %s != %s\n", name.c_str(), actual.shape().str().c_str(),
                  expected.shape().str().c_str());
      ++failures_;
      return;
    }
    double err = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::abs(double(a[i]) - double(e[i]));
      err = std::isnan(d) ? INFINITY : std::max(err, d);
      scale = std::max(scale, std::abs(double(e[i])));
    }
    const bool ok = err <= bound * scale + 1e-7;
    worst_ = std::max(worst_, scale > 0 ? err / scale / bound : (err > 1e-7 ? INFINITY : 0.0));
    if (!ok || verbose_)
      std::printf("%s %s: max err %.3g, scale %.3g, relative %.3g (bound %g)\n", ok ? "ok  " : "FAIL", name.c_str(),
                  err, scale, err / std::max(scale, 1e-30), bound);
    if (!ok) ++failures_;
  }
  void fail(const std::string& name, const std::string& why) {
    ++count_;
    ++failures_;
    std::printf("FAIL %s: %s\n", name.c_str(), why.c_str());
  }
  int count() const { return count_; }
  int failures() const { return failures_; }
  double worst() const { return worst_; }  // largest error as a fraction of its bound
  bool verbose_ = false;

 private:
  int count_ = 0, failures_ = 0;
  double worst_ = 0;
};

struct Results {
  Tensor eval_logits, train_logits, loss;
  NamedTensors grads, buffers;
};

// Eval logits, then one train-mode forward and backward (no optimizer step).
Results run_model(ImageClassifier& model, const Tensor& x, const Tensor& labels) {
  Results r;
  model.eval();
  {
    NoGradGuard no_grad;
    r.eval_logits = model.forward(x).to(Device::cpu());
  }
  model.train();
  model.zero_grad();
  Tensor logits = model.forward(x);
  Tensor loss = ops::cross_entropy(logits, labels);
  backward(loss);
  r.train_logits = logits.detach().to(Device::cpu());
  r.loss = loss.detach().to(Device::cpu());
  for (const auto& [name, p] : model.named_parameters()) {
    FSTM_CHECK(p.grad().defined(), "gpu_parity: no gradient for ", name);
    r.grads.emplace_back(name, p.grad().to(Device::cpu()));
  }
  for (const auto& [name, b] : model.named_buffers())
    if (b.dtype() == DType::f32) r.buffers.emplace_back(name, b.to(Device::cpu()));
  return r;
}

int parse(int argc, char** argv, Options& o) {
  if (argc < 2) return 2;
  o.arch = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return 2;
    const std::string v = argv[++i];
    if (a == "--batch")
      o.batch = std::stoll(v);
    else if (a == "--height")
      o.height = std::stoll(v);
    else if (a == "--width")
      o.width = std::stoll(v);
    else if (a == "--classes")
      o.classes = std::stoll(v);
    else if (a == "--seed")
      o.seed = std::stoull(v);
    else if (a == "--weights")
      o.weights = v;
    else if (a == "--input")
      o.input = v;
    else if (a == "--dump")
      o.dump = v;
    else if (a == "--device")
      o.device = v;
    else
      return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (parse(argc, argv, o) != 0) {
    std::cerr << "usage: gpu_parity ARCH [--batch N] [--height H] [--width W] [--classes K] [--seed S] "
                 "[--weights W.safetensors] [--input I.safetensors] [--dump OUT.safetensors] [--device cuda:0]\n";
    return 2;
  }
  if (o.device.rfind("cuda", 0) == 0 && cuda_device_count() == 0) {
    std::cerr << "gpu_parity: no CUDA device (cuda: " << cuda_status() << ")\n";
    return 77;
  }
  try {
    const Device gpu = Device::parse(o.device);
    Rng rng(o.seed);
    auto cpu_model = make_classifier(o.arch, o.classes, o.seed);
    if (!o.weights.empty()) {
      io::load_state_dict(io::read_safetensors(o.weights), as_state_dict(cpu_model->state_dict()));
    } else {
      randomize_batch_norm(*cpu_model, rng);
    }
    auto gpu_model = make_classifier(o.arch, o.classes, o.seed);
    io::load_state_dict(as_state_dict(cpu_model->state_dict()), "the CPU model",
                        as_state_dict(gpu_model->state_dict()));
    gpu_model->to(gpu);

    Tensor x, labels;
    if (!o.input.empty()) {
      const io::SafetensorsFile in = io::read_safetensors(o.input);
      x = in.at("x").to(DType::f32);
      labels = in.at("labels").to(DType::i64);
    } else {
      std::vector<float> xs(size_t(o.batch * o.height * o.width * 3));
      for (float& v : xs) v = rng.normal();
      x = Tensor::from_vector(xs, Shape{o.batch, o.height, o.width, 3});
      std::vector<int64_t> ls(size_t(o.batch));
      for (auto& l : ls) l = int64_t(rng.below(uint64_t(o.classes)));
      labels = Tensor::from_vector_i64(ls, Shape{o.batch});
    }
    std::printf("gpu_parity %s: x %s on %s (%s)\n", o.arch.c_str(), x.shape().str().c_str(), gpu.str().c_str(),
                gpu.is_cuda() ? cuda_backend()->device_name(gpu.index).c_str() : "dry run");

    Report report;
    report.verbose_ = std::getenv("FSTM_VERBOSE") != nullptr;
    io::StateDict dump;

    // Inference plans on the GPU first (eval mode, BatchNorm statistics not yet updated by the
    // train step below), against the CPU eval logits from the same weights.
    gpu_model->eval();
    Tensor expected_eval;
    {
      NoGradGuard no_grad;
      cpu_model->eval();
      expected_eval = cpu_model->forward(x);
    }
    const std::pair<DType, double> plans[] = {{DType::f32, 1e-4}, {DType::f16, 1e-2}, {DType::bf16, 5e-2}};
    for (const auto& [dtype, bound] : plans) {
      if (gpu.is_cpu() && dtype == DType::f16) continue;  // dry run: f16 plans are CUDA only
      std::unique_ptr<InferencePlan> plan;
      Tensor logits;
      try {
        plan = std::make_unique<InferencePlan>([&](const Tensor& in) { return gpu_model->forward(in); }, x.shape(),
                                               dtype, gpu);
        logits = plan->run(x).to(Device::cpu());
      } catch (const Error& e) {
        // A plan that cannot be built or run is a failure on CUDA (the eager checks still run) and
        // expected in a CPU dry run (bf16 needs oneDNN there).
        if (gpu.is_cuda()) report.fail(std::string("plan ") + dtype_name(dtype), e.what());
        else std::printf("  plan %s skipped in the dry run: %s\n", dtype_name(dtype), e.what());
        continue;
      }
      std::printf("  plan %s: %s\n", dtype_name(dtype), plan->backend().c_str());
      report.close(std::string("plan ") + dtype_name(dtype) + " logits vs CPU eager", logits, expected_eval, bound);
      dump.add(std::string("plan.") + dtype_name(dtype), logits);
    }

    const Results cpu = run_model(*cpu_model, x, labels);
    const Results cuda = run_model(*gpu_model, x.to(gpu), labels.to(gpu));
    report.close("eval logits", cuda.eval_logits, cpu.eval_logits, 1e-4);
    report.close("train logits", cuda.train_logits, cpu.train_logits, 1e-4);
    report.close("train loss", cuda.loss, cpu.loss, 1e-4);
    FSTM_CHECK(cpu.grads.size() == cuda.grads.size(), "gpu_parity: gradient counts differ");
    for (size_t i = 0; i < cpu.grads.size(); ++i)
      report.close("grad " + cpu.grads[i].first, cuda.grads[i].second, cpu.grads[i].second, 1e-3);
    for (size_t i = 0; i < cpu.buffers.size() && i < cuda.buffers.size(); ++i)
      report.close("buffer " + cpu.buffers[i].first, cuda.buffers[i].second, cpu.buffers[i].second, 1e-3);

    std::printf("gpu_parity %s: %d/%d within bounds (%zu parameter gradients); worst error %.2f of its bound\n",
                o.arch.c_str(), report.count() - report.failures(), report.count(), cpu.grads.size(), report.worst());
    if (!o.dump.empty()) {
      auto add_results = [&](const std::string& prefix, const Results& r) {
        dump.add(prefix + "eval_logits", r.eval_logits);
        dump.add(prefix + "train_logits", r.train_logits);
        dump.add(prefix + "train_loss", r.loss);
        for (const auto& [name, g] : r.grads) dump.add(prefix + "grad." + name, g);
      };
      add_results("cpu.", cpu);
      add_results("cuda.", cuda);
      io::write_safetensors(o.dump, dump);
    }
    return report.failures() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "gpu_parity: " << e.what() << "\n";
    return 1;
  }
}
