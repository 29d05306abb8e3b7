// The GPU tests' selection (tests/gpu_tests.txt): bench/gpu_check.sh runs exactly the tests it
// names on the GPU machine, and FSTM_REQUIRE_CUDA() fails any GPU test outside it, on every machine.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tests/test_support.h"

namespace fstm::test {
namespace {

TEST(GpuSelection, FilterMatchingFollowsGoogleTest) {
  EXPECT_TRUE(matches_test_filter("CudaOps.Conv2d", "Cuda*"));
  EXPECT_TRUE(matches_test_filter("ShapleyMask.CudaEqualsReference", "Foo.*:*.Cuda*"));
  EXPECT_TRUE(matches_test_filter("Loader.BatchesOnTheGpu", "*Gpu*"));
  EXPECT_TRUE(matches_test_filter("A.b", "?.?"));
  EXPECT_TRUE(matches_test_filter("A.b", "A.b"));
  EXPECT_FALSE(matches_test_filter("A.bc", "A.b")) << "a pattern matches the whole name";
  EXPECT_FALSE(matches_test_filter("XCudaOps.Conv2d", "Cuda*"));
  EXPECT_FALSE(matches_test_filter("Loader.BatchesOnDevice", "Cuda*:*.Cuda*:*Gpu*"));
  EXPECT_FALSE(matches_test_filter("Loader.Batches", ""));
  EXPECT_TRUE(matches_test_filter("a*b.c", "a*b.c"));
}

TEST(GpuSelection, GpuTestsOutsideTheListAreRejectedWithTheFix) {
  // The compiled-in list is the repository's, and it holds the GPU tests that exist today.
  for (const char* name : {"CudaOps.Conv2dAndLinearAreExactF32ByDefault", "BackendOps.CudaMatchesReference",
                           "ShapleyMask.CudaEqualsReferenceBitExact", "Loader.BatchesOnTheGpu"})
    EXPECT_EQ(gpu_selection_error(name), "") << name;
  const std::string e = gpu_selection_error("Loader.BatchesOnTheDevice");
  EXPECT_NE(e.find("Loader.BatchesOnTheDevice"), std::string::npos) << e;
  EXPECT_NE(e.find("tests/gpu_tests.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("gpu_check.sh"), std::string::npos) << e;
}

// The check script reads the same file: what it would pass to --gtest_filter equals the list
// compiled into this binary.
TEST(GpuSelection, CheckScriptRunsTheSameList) {
  const std::string cmd = "bash " + source_dir() + "/bench/gpu_check.sh --print-filter 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  EXPECT_EQ(out, gpu_test_filter());
}

}  // namespace
}  // namespace fstm::test
