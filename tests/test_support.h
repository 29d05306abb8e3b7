// Helpers shared by the unit tests: random tensors, comparisons with tolerances, and paths.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "layers/module.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fstm::test {

// Uniform in [lo, hi), f32, on the CPU.
Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f);
// n class labels uniform in [0, classes), i64 [n], on the CPU.
Tensor random_labels(int64_t n, int64_t classes, Rng& rng);
// Random BatchNorm statistics and affine parameters (running_var and weight in [0.5, 1.5), the
// rest in [-0.5, 0.5)) for every BN of a torchvision-named model ("bn" or "downsample.1" in the
// name), so that inference plans really fold something.
void randomize_batch_norm(Module& model, Rng& rng);
// Largest |a - b| / (atol + rtol * |b|); <= 1 means within tolerance.
float tolerance_ratio(const Tensor& a, const Tensor& b, float atol, float rtol);
// EXPECT-style comparison that names the worst element.
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, float atol, float rtol);
// |actual - expected| <= rel * (max|expected| + |expected|) elementwise: relative to the tensor's
// scale, so values near zero that come from cancelling sums are judged like the rest (any device).
::testing::AssertionResult close_to_scale(const Tensor& actual, const Tensor& expected, float rel);
// Fills with NaN: backward kernels must overwrite every element they assign.
void poison(Tensor& t);
// True when a CUDA device is usable; tests that need one call GTEST_SKIP with the reason.
bool have_cuda();
std::string cuda_skip_reason();
// GoogleTest's filter semantics for positive patterns: `filter` is ':'-separated, each pattern
// matches the whole "Suite.Name" with '*' (any run) and '?' (one character).
bool matches_test_filter(const std::string& full_name, const std::string& filter);
// The GPU tests' selection (tests/gpu_tests.txt, compiled in) and, for a test that needs a GPU,
// why it is wrong ("" when `full_name` is in the selection).
std::string gpu_test_filter();
std::string gpu_selection_error(const std::string& full_name);
std::string current_test_name();  // "Suite.Name" of the running test
std::string source_dir();   // the repository root
std::string binary_dir();   // the build folder (fstm, tests/, test_tmp/)
std::string temp_dir(const std::string& name);  // a fresh directory under the build tree
std::string read_text(const std::string& path);  // "" when the file cannot be read
// A randomly initialised det ResNet-18 for `input_size`-pixel faces, written to `path` with its
// metadata as fstm train writes a checkpoint.
void write_det_checkpoint(const std::string& path, int input_size, uint64_t seed);
// The message of the fstm::Error that f throws; "" when it throws none (other exceptions propagate).
std::string error_of(const std::function<void()>& f);

// Runs the built `fstm` with `args` (progress bars off), stdout and stderr captured through files in dir.
struct CommandResult {
  int exit_code;
  std::string out, err;
};
CommandResult run_fstm(const std::string& args, const std::string& dir);

}  // namespace fstm::test

#define FSTM_EXPECT_CLOSE(actual, expected, atol, rtol) \
  EXPECT_TRUE(::fstm::test::all_close((actual), (expected), (atol), (rtol)))
// A test that needs a GPU: fails when bench/gpu_check.sh would not run it (tests/gpu_tests.txt),
// skips with the reason where there is no GPU.
#define FSTM_REQUIRE_CUDA()                                                                       \
  do {                                                                                            \
    const std::string fstm_selection_ = ::fstm::test::gpu_selection_error(::fstm::test::current_test_name()); \
    if (!fstm_selection_.empty()) FAIL() << fstm_selection_;                                      \
    if (!::fstm::test::have_cuda()) GTEST_SKIP() << ::fstm::test::cuda_skip_reason();             \
  } while (0)
