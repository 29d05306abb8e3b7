// Every input a fuzzer once crashed on (tests/fuzz/regressions/<target>/) and every seed
// (tests/fuzz/corpus/<target>/), through the same target code libFuzzer runs. A target turns a bad
// file into an fstm::Error; any other exception fails the test here, and a memory error fails the
// suite's AddressSanitizer phase. So a fixed parser bug stays fixed without a fuzzing build.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <vector>

#include "io/fs.h"
#include "fuzz/fuzz_support.h"
#include "test_support.h"

namespace fstm::fuzz {
namespace {

struct Target {
  const char* name;
  void (*run)(const uint8_t*, size_t);
};

const Target kTargets[] = {{"safetensors", safetensors}, {"checkpoint_metadata", checkpoint_metadata},
                           {"face_index", face_index},   {"landmarks", landmarks},
                           {"image", image},             {"video", video},
                           {"ffpp_scan", ffpp_scan}};

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `target` over the files of tests/fuzz/<folder>/<target>; returns how many it ran.
size_t replay(const Target& target, const std::string& folder) {
  const std::string dir = test::source_dir() + "/tests/fuzz/" + folder + "/" + target.name;
  const std::vector<std::string> files = files_in(dir);
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    const std::vector<uint8_t> bytes = io::read_file(f);
    EXPECT_NO_THROW(target.run(bytes.data(), bytes.size()));
  }
  return files.size();
}

TEST(FuzzInputs, EverySeedCorpusIsPresentAndParsesWithoutEscapes) {
  for (const Target& t : kTargets) {
    SCOPED_TRACE(t.name);
    EXPECT_GE(replay(t, "corpus"), 1u) << "tests/fuzz/corpus/" << t.name << " holds no seed";
  }
}

TEST(FuzzInputs, RegressionInputsStayFixed) {
  size_t total = 0;
  for (const Target& t : kTargets) total += replay(t, "regressions");
  // The inputs the fuzzers found while the targets were written (tests/fuzz/README.md).
  EXPECT_GE(total, 6u);
}

}  // namespace
}  // namespace fstm::fuzz
