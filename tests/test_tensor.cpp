#include <cmath>
#include <map>
#include <string>

#include "tensor/allocator.h"
#include "tensor/environment.h"
#include "tensor/tensor.h"
#include "tests/test_support.h"

using namespace fstm;

TEST(Tensor, FactoriesShapesAndViews) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, Shape{2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.size(-1), 3);
  Tensor r = t.reshape(Shape{3, 2});
  EXPECT_TRUE(r.shares_storage(t));
  r.data<float>()[5] = 60;
  EXPECT_EQ(t.to_vector()[5], 60);
  Tensor row = t.slice(1, 2);
  EXPECT_EQ(row.shape(), (Shape{1, 3}));
  EXPECT_EQ(row.to_vector(), (std::vector<float>{4, 5, 60}));
  EXPECT_THROW(t.reshape(Shape{4}), Error);
  EXPECT_THROW(t.slice(1, 3), Error);
  EXPECT_THROW(t.data<int64_t>(), Error);
  Tensor c = t.clone();
  c.fill_(7);
  EXPECT_EQ(t.to_vector()[0], 1);
  EXPECT_EQ(c.to_vector()[0], 7);
}

TEST(Tensor, ShapesUpToFiveDimensions) {
  Tensor t = Tensor::zeros(Shape{1, 2, 3, 4, 5});
  EXPECT_EQ(t.numel(), 120);
  EXPECT_THROW(Shape({1, 2, 3, 4, 5, 6}), Error);
}

TEST(Tensor, Bf16AndF16RoundTrip) {
  std::vector<float> v = {0.0f, 1.0f, -2.5f, 3.14159f, 1e-3f, 65504.0f, -1e-6f};
  Tensor t = Tensor::from_vector(v, Shape{7});
  std::vector<float> b = t.to(DType::bf16).to(DType::f32).to_vector();
  std::vector<float> h = t.to(DType::f16).to(DType::f32).to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(b[i], v[i], std::abs(v[i]) * 4e-3f + 1e-30f) << i;
    EXPECT_NEAR(h[i], v[i], std::abs(v[i]) * 1e-3f + 1e-7f) << i;
  }
  // Round to nearest even on the exact halfway case: 1 + 2^-8 is halfway between bf16 1 and 1+2^-7.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1e5f)), INFINITY);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Allocator, ReusesFreedBlocks) {
  const AllocatorStats before = cpu_allocator_stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty(Shape{1024, 1024});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  }
  const AllocatorStats after = cpu_allocator_stats();
  EXPECT_EQ(after.allocations - before.allocations, 10u);
  EXPECT_GE(after.cache_hits - before.cache_hits, 9u);
}

TEST(Device, ParseAndErrors) {
  EXPECT_TRUE(Device::parse("cpu").is_cpu());
  EXPECT_THROW(Device::parse("tpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
  if (cuda_device_count() == 0) {
    try {
      Device::parse("cuda:0");
      FAIL() << "cuda:0 accepted without a GPU";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos);
    }
  }
  EXPECT_THROW(Device::parse("cuda:99"), Error);
}

namespace fstm {
namespace {

// Every variable fstm reads is parsed in one place (tensor/environment.h), each in its own form.
TEST(Environment, EachVariableKeepsItsForm) {
  auto read = [](std::map<std::string, std::string> vars) {
    return Environment::read([vars](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  const Environment unset = read({});
  EXPECT_FALSE(unset.reference_kernels || unset.inference_reference || unset.conv_winograd || unset.ffmpeg_log);
  EXPECT_TRUE(unset.cuda_graphs && unset.cudnn_fused && unset.progress);
  EXPECT_EQ(unset.dlib_landmarks, "/usr/share/dlib/shape_predictor_68_face_landmarks.dat");
  // "set, not empty and not 0"
  EXPECT_TRUE(read({{"FSTM_REFERENCE_KERNELS", "yes"}}).reference_kernels);
  EXPECT_FALSE(read({{"FSTM_REFERENCE_KERNELS", "0"}}).reference_kernels);
  EXPECT_FALSE(read({{"FSTM_REFERENCE_KERNELS", ""}}).reference_kernels);
  EXPECT_TRUE(read({{"FSTM_FFMPEG_LOG", "1"}}).ffmpeg_log);
  EXPECT_FALSE(read({{"FSTM_FFMPEG_LOG", "0"}}).ffmpeg_log);
  // exactly "1"
  EXPECT_TRUE(read({{"FSTM_INFERENCE_REFERENCE", "1"}}).inference_reference);
  EXPECT_FALSE(read({{"FSTM_INFERENCE_REFERENCE", "yes"}}).inference_reference);
  EXPECT_TRUE(read({{"FSTM_CONV_WINOGRAD", "1"}}).conv_winograd);
  // exactly "0" turns off
  EXPECT_FALSE(read({{"FSTM_CUDA_GRAPHS", "0"}}).cuda_graphs);
  EXPECT_TRUE(read({{"FSTM_CUDA_GRAPHS", "off"}}).cuda_graphs);
  EXPECT_FALSE(read({{"FSTM_CUDNN_FUSED", "0"}}).cudnn_fused);
  EXPECT_FALSE(read({{"FSTM_PROGRESS", "0"}}).progress);
  EXPECT_EQ(read({{"FSTM_DLIB_LANDMARKS", "/m.dat"}}).dlib_landmarks, "/m.dat");
  EXPECT_EQ(read({{"FSTM_DLIB_LANDMARKS", ""}}).dlib_landmarks, unset.dlib_landmarks);
  EXPECT_EQ(unset.describe().size(), 8u);
}

// fstm info prints the environment as read (the test runner sets FSTM_PROGRESS=0).
TEST(Environment, InfoPrintsWhatWasRead) {
  const std::string dir = test::temp_dir("env_info");
  const test::CommandResult r = test::run_fstm("info", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("env FSTM_PROGRESS: progress bars off"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env FSTM_REFERENCE_KERNELS: "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace fstm
