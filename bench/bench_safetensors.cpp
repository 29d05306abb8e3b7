// Checkpoint I/O on a ResNet-18-sized state dict (11.7 M f32 parameters, 46.8 MB): reading should
// run at memcpy / plain read() speed, loading into a model at memcpy speed plus dtype conversion.
// Baselines in the same run: memcpy of the same bytes and io::read_file (one read() into a vector).
// The file stays in the page cache, so this measures fstm's own work, not the disk.
//
//   build/bench/bench_safetensors --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/fs.h"
#include "io/safetensors.h"

using namespace fstm;

namespace {

// torchvision ResNet-18 parameter and buffer shapes, under their names.
io::StateDict resnet18_like(DType float_type) {
  io::StateDict sd;
  auto add = [&](const std::string& name, const Shape& shape) {
    Tensor t = Tensor::empty(shape, float_type);
    std::memset(t.raw_data(), 0x3c, t.nbytes());
    sd.add(name, t);
  };
  auto bn = [&](const std::string& p, int64_t c) {
    for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"}) add(p + s, Shape{c});
    sd.add(p + ".num_batches_tracked", Tensor::from_vector_i64({100}, Shape{}));
  };
  add("conv1.weight", Shape{64, 3, 7, 7});
  bn("bn1", 64);
  int64_t in = 64;
  const int64_t widths[] = {64, 128, 256, 512};
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t out = widths[layer];
    for (int block = 0; block < 2; ++block) {
      const std::string p = "layer" + std::to_string(layer + 1) + "." + std::to_string(block);
      const int64_t cin = block == 0 ? in : out;
      add(p + ".conv1.weight", Shape{out, cin, 3, 3});
      bn(p + ".bn1", out);
      add(p + ".conv2.weight", Shape{out, out, 3, 3});
      bn(p + ".bn2", out);
      if (block == 0 && (layer > 0)) {
        add(p + ".downsample.0.weight", Shape{out, cin, 1, 1});
        bn(p + ".downsample.1", out);
      }
    }
    in = out;
  }
  add("fc.weight", Shape{1000, 512});
  add("fc.bias", Shape{1000});
  return sd;
}

// f32 targets with the same names and shapes (a model), i64 for the counters.
io::StateDict targets_for(const io::StateDict& sd) {
  io::StateDict out;
  for (const auto& [name, t] : sd)
    out.add(name, Tensor::empty(t.shape(), t.dtype() == DType::i64 ? DType::i64 : DType::f32));
  return out;
}

std::string checkpoint(DType float_type) {
  const std::string dir = (std::filesystem::temp_directory_path() / "fstm_bench_safetensors").string();
  io::ensure_dir(dir);
  const std::string path = dir + "/resnet18_" + dtype_name(float_type) + ".safetensors";
  if (!std::filesystem::exists(path)) io::write_safetensors(path, resnet18_like(float_type));
  return path;
}

void BM_Memcpy(benchmark::State& state) {
  const size_t bytes = std::filesystem::file_size(checkpoint(DType::f32));
  std::vector<char> src(bytes, 1), dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * bytes));
}

void BM_ReadFile(benchmark::State& state) {
  const std::string path = checkpoint(DType::f32);
  for (auto _ : state) benchmark::DoNotOptimize(io::read_file(path).data());
  state.SetBytesProcessed(int64_t(state.iterations() * std::filesystem::file_size(path)));
}

void BM_ReadSafetensors(benchmark::State& state) {
  const std::string path = checkpoint(DType::f32);
  for (auto _ : state) benchmark::DoNotOptimize(io::read_safetensors(path).tensors.size());
  state.SetBytesProcessed(int64_t(state.iterations() * std::filesystem::file_size(path)));
}

// Read + copy into an f32 model; arg 0: f32 file (memcpy), arg 1: bf16 file (conversion).
void BM_LoadStateDict(benchmark::State& state) {
  const std::string path = checkpoint(state.range(0) ? DType::bf16 : DType::f32);
  const io::StateDict model = targets_for(resnet18_like(DType::f32));
  for (auto _ : state) benchmark::DoNotOptimize(io::load_state_dict(io::read_safetensors(path), model).loaded.size());
  state.SetBytesProcessed(int64_t(state.iterations() * std::filesystem::file_size(path)));
}

// Includes fsync and rename: what a training loop pays per checkpoint.
void BM_WriteSafetensors(benchmark::State& state) {
  const io::StateDict sd = resnet18_like(DType::f32);
  const std::string path = checkpoint(DType::f32) + ".out";
  for (auto _ : state) io::write_safetensors(path, sd);
  state.SetBytesProcessed(int64_t(state.iterations() * std::filesystem::file_size(path)));
  std::filesystem::remove(path);
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadFile)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadSafetensors)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LoadStateDict)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteSafetensors)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
