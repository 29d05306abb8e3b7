// Shared by the libFuzzer targets (tests/fuzz/README.md). A target hands the fuzzer's bytes to one
// of fstm's parsers exactly as a user's file would reach it. An fstm::Error is the expected answer
// to a bad file; anything else that escapes (another exception, a crash, a sanitizer report, a
// leak, a hang, a huge allocation) is a bug, and libFuzzer stops with the input that caused it.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/limits.h"
#include "tensor/error.h"

namespace fstm::fuzz {

// A private folder on tmpfs for the files a target writes, made once per process and removed at
// exit. (The path is never destroyed: the exit handler runs after static destructors would.)
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    std::error_code ec;
    const std::string base =
        std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    auto* d = new std::string(base + "/fstm-fuzz-" + std::to_string(::getpid()));
    std::filesystem::remove_all(*d, ec);
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code e;
      std::filesystem::remove_all(scratch_dir(), e);
    });
    return d;
  }();
  return *dir;
}

// Writes the input to scratch_dir()/name and returns the path.
inline std::string write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// Smaller input limits than fstm's defaults (io/limits.h), set once per process: the fuzzer then
// meets the limit checks often, and does not spend its time decoding 100-megapixel images.
// (Not in the unit suite, whose other tests share the process and its limits.)
inline void fuzzing_limits() {
#ifdef FSTM_FUZZ_NO_ENTRY
  return;
#endif
  static const bool set = [] {
    io::InputLimits l;
    l.max_image_pixels = 1 << 20;
    l.max_video_pixels = 1 << 20;
    l.max_video_frames = 10000;
    io::set_input_limits(l);
    return true;
  }();
  (void)set;
}

// Runs a parser; fstm::Error (a clear refusal) is fine, anything else propagates to libFuzzer.
template <class F>
void expect_clean(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

// The targets, one per file fuzz_<name>.cpp. The unit tests call them too, over every regression
// input and seed (tests/test_fuzz_inputs.cpp), so that a bug a fuzzer once found stays fixed in
// the plain and sanitizer builds of the suite.
void safetensors(const uint8_t* data, size_t size);
void checkpoint_metadata(const uint8_t* data, size_t size);
void face_index(const uint8_t* data, size_t size);
void landmarks(const uint8_t* data, size_t size);
void image(const uint8_t* data, size_t size);
void video(const uint8_t* data, size_t size);
void ffpp_scan(const uint8_t* data, size_t size);

}  // namespace fstm::fuzz

// libFuzzer's entry point for a target (left out where the unit tests compile the targets).
#ifdef FSTM_FUZZ_NO_ENTRY
#define FSTM_FUZZ_ENTRY(name)
#else
#define FSTM_FUZZ_ENTRY(name)                                                  \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    fstm::fuzz::name(data, size);                                              \
    return 0;                                                                  \
  }
#endif
