#include "tests/test_support.h"

#include "fstm/lib/models.h"
#include "io/safetensors.h"
#include "layers/basic.h"
#include "tensor/error.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace fstm::test {

Tensor random_tensor(const Shape& shape, Rng& rng, float lo, float hi) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(lo, hi);
  return t;
}

Tensor random_labels(int64_t n, int64_t classes, Rng& rng) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t& label : v) label = int64_t(rng.below(uint64_t(classes)));
  return Tensor::from_vector_i64(v, Shape{n});
}

void randomize_batch_norm(Module& model, Rng& rng) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&model)) {
    const Shape s = bn->weight.shape();
    bn->weight.copy_(random_tensor(s, rng, 0.5f, 1.5f));
    bn->bias.copy_(random_tensor(s, rng, -0.5f, 0.5f));
    bn->running_mean.copy_(random_tensor(s, rng, -0.5f, 0.5f));
    bn->running_var.copy_(random_tensor(s, rng, 0.5f, 1.5f));
  }
  for (auto& [name, child] : model.children()) randomize_batch_norm(*child, rng);
}

float tolerance_ratio(const Tensor& a, const Tensor& b, float atol, float rtol) {
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  float worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const float r = std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i]));
    if (!(r <= worst)) worst = std::isnan(r) ? std::numeric_limits<float>::infinity() : r;
  }
  return worst;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, float atol, float rtol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << actual.shape().str() << " != " << expected.shape().str();
  const std::vector<float> va = actual.to_vector(), vb = expected.to_vector();
  size_t worst = 0;
  float worst_ratio = -1;
  for (size_t i = 0; i < va.size(); ++i) {
    float r = std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i]));
    if (std::isnan(r)) r = std::numeric_limits<float>::infinity();
    if (r > worst_ratio) {
      worst_ratio = r;
      worst = i;
    }
  }
  if (va.empty() || worst_ratio <= 1.0f) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << worst << " of " << actual.describe() << ": actual "
                                       << va[worst] << ", expected " << vb[worst] << " (atol " << atol << ", rtol "
                                       << rtol << ", " << worst_ratio << "x the tolerance)";
}

::testing::AssertionResult close_to_scale(const Tensor& actual, const Tensor& expected, float rel) {
  float scale = 0;
  for (float v : expected.to_vector()) scale = std::max(scale, std::abs(v));
  return all_close(actual, expected, rel * std::max(scale, 1e-20f), rel);
}

void poison(Tensor& t) { t.fill_(std::numeric_limits<float>::quiet_NaN()); }

bool have_cuda() { return cuda_device_count() > 0; }

std::string cuda_skip_reason() {
  if (!cuda_compiled()) return "CUDA test skipped: fstm was built without CUDA";
  return "CUDA test skipped: no usable GPU (cuda: " + cuda_status() + ")";
}

bool matches_test_filter(const std::string& full_name, const std::string& filter) {
  // Classic wildcard matching with backtracking to the last '*'.
  auto glob = [](const std::string& s, const std::string& p) {
    size_t i = 0, j = 0, star = std::string::npos, mark = 0;
    while (i < s.size()) {
      if (j < p.size() && (p[j] == '?' || p[j] == s[i])) {
        ++i, ++j;
      } else if (j < p.size() && p[j] == '*') {
        star = j++, mark = i;
      } else if (star != std::string::npos) {
        j = star + 1, i = ++mark;
      } else {
        return false;
      }
    }
    while (j < p.size() && p[j] == '*') ++j;
    return j == p.size();
  };
  size_t start = 0;
  while (start <= filter.size()) {
    const size_t end = std::min(filter.find(':', start), filter.size());
    const std::string pattern = filter.substr(start, end - start);
    if (!pattern.empty() && glob(full_name, pattern)) return true;
    start = end + 1;
  }
  return false;
}

std::string gpu_test_filter() { return FSTM_GPU_TEST_FILTER; }

std::string gpu_selection_error(const std::string& full_name) {
  if (matches_test_filter(full_name, gpu_test_filter())) return "";
  return full_name + " needs a GPU but bench/gpu_check.sh would not run it: its name matches none of " +
         gpu_test_filter() + " (tests/gpu_tests.txt); rename it (Cuda* or *Gpu*) or add a pattern there";
}

std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? std::string(info->test_suite_name()) + "." + info->name() : std::string();
}

// The build's own folders, or FSTM_SOURCE_DIR / FSTM_BINARY_DIR from the environment when the
// binary was built elsewhere (bench/gpu_bundle.sh builds on one machine, gpu_check.sh runs on another).
namespace {
std::string folder(const char* variable, const char* built_in) {
  const char* v = std::getenv(variable);
  return v && *v ? std::string(v) : std::string(built_in);
}
}  // namespace

std::string source_dir() { return folder("FSTM_SOURCE_DIR", FSTM_SOURCE_DIR); }
std::string binary_dir() { return folder("FSTM_BINARY_DIR", FSTM_BINARY_DIR); }

std::string temp_dir(const std::string& name) {
  // ctest runs each test in its own process, possibly at the same time: a directory made outside a
  // test (SetUpTestSuite) is shared by every process of that suite unless it carries the pid.
  const std::string test = current_test_name();
  const std::string leaf = test.empty() ? name + ".pid" + std::to_string(::getpid()) : test + "." + name;
  std::filesystem::path p = std::filesystem::path(binary_dir()) / "test_tmp" / leaf;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_det_checkpoint(const std::string& path, int input_size, uint64_t seed) {
  ModelConfig det;
  det.type = ModelType::det;
  det.input_size = input_size;
  auto net = build_network(det, seed);
  io::StateDict sd;
  for (auto& [name, t] : net->state_dict()) sd.add(name, t);
  io::write_safetensors(path, sd, model_metadata(det));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

CommandResult run_fstm(const std::string& args, const std::string& dir) {
  const std::string cmd = std::string("FSTM_PROGRESS=0 ") + binary_dir() + "/fstm " + args + " > " + dir +
                          "/stdout.txt 2> " + dir + "/stderr.txt";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(dir + "/stdout.txt"), read_text(dir + "/stderr.txt")};
}

}  // namespace fstm::test
