// The CUDA backend itself: device discovery without a GPU, copies, the caching allocator, dtype
// conversion on the device, pinned buffers, events and CUDA graphs. Tests that need a GPU start
// with FSTM_REQUIRE_CUDA() and are reported as skipped (with the reason) without one.
#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/ops.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda_options.h"
#include "tensor/cuda_api.h"
#include "tensor/cuda_host.h"
#include "tests/test_support.h"

using namespace fstm;

namespace {

Device gpu() { return Device::cuda(0); }

bool same_bits_or_both_nan(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

// ---- runs on every machine ------------------------------------------------------------------------

TEST(CudaRuntime, StartsAndReportsDevicesOrWhyNot) {
  if (!cuda_compiled()) {
    EXPECT_EQ(cuda_backend(), nullptr);
    EXPECT_EQ(cuda_device_count(), 0);
    return;
  }
  ASSERT_NE(cuda_backend(), nullptr) << "the CUDA backend did not register itself at load time";
  const std::string status = cuda_backend()->status();
  EXPECT_NE(status.find("cuDNN"), std::string::npos) << status;
  EXPECT_NE(cuda::library_versions().find("runtime"), std::string::npos) << cuda::library_versions();
  if (cuda_device_count() == 0) {
    // The reason comes first: "no CUDA driver ...", "no CUDA-capable device", an old driver or GPU.
    const bool explained = status.rfind("no CUDA", 0) == 0 || status.find("driver") != std::string::npos ||
                           status.find("compute capability") != std::string::npos;
    EXPECT_TRUE(explained) << status;
    EXPECT_THROW(Device::parse("cuda"), Error);
    EXPECT_THROW(Tensor::empty(Shape{4}, DType::f32, gpu()), Error);
    EXPECT_THROW(kernels::cuda::CudaGraph graph(gpu()), Error);
    EXPECT_THROW(cuda::Event event(0), Error);
    // Queries and controls are harmless without a device.
    EXPECT_EQ(cuda::memory_stats(0).allocations, 0u);
    EXPECT_EQ(cuda::device_memory(0).total, 0u);
    EXPECT_NO_THROW(cuda::empty_cache(0));
    EXPECT_NO_THROW(cuda::synchronize(0));
  } else {
    EXPECT_FALSE(cuda_backend()->device_name(0).empty());
    EXPECT_NE(status.find("device(s)"), std::string::npos) << status;
    EXPECT_GT(cuda::device_memory(0).total, 0u);
  }
}

TEST(CudaRuntime, MissingDeviceIsNamedInTheError) {
  if (cuda_device_count() > 7) GTEST_SKIP() << "this machine has a cuda:7";
  try {
    Device::parse("cuda:7");
    FAIL() << "cuda:7 accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cuda:7"), std::string::npos) << what;
    if (cuda_compiled()) {
      EXPECT_NE(what.find("device(s) visible"), std::string::npos) << what;
    }
  }
}

TEST(CudaRuntime, Tf32IsOffUnlessAskedFor) {
  EXPECT_FALSE(kernels::cuda::allow_tf32());
  kernels::cuda::set_allow_tf32(true);
  EXPECT_TRUE(kernels::cuda::allow_tf32());
  kernels::cuda::set_allow_tf32(false);
  EXPECT_FALSE(kernels::cuda::allow_tf32());
}

TEST(CudaRuntime, PinnedBufferIntoHostTensorWorksEverywhere) {
  PinnedBuffer buffer(10 * sizeof(float) + 8);
  EXPECT_EQ(buffer.pinned(), cuda_device_count() > 0);
  float* p = buffer.data_as<float>();
  for (int i = 0; i < 10; ++i) p[i] = float(i) + 0.5f;
  Tensor dst = Tensor::empty(Shape{8});
  copy_to_device_async(buffer, dst, 2 * sizeof(float));
  EXPECT_EQ(dst.to_vector(), (std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f, 8.5f, 9.5f}));
  Tensor too_big = Tensor::empty(Shape{13});  // 52 bytes from a 48-byte buffer
  EXPECT_THROW(copy_to_device_async(buffer, too_big), Error);
  PinnedBuffer moved = std::move(buffer);
  EXPECT_EQ(moved.size(), 10 * sizeof(float) + 8);
  EXPECT_EQ(buffer.size(), 0u);
}

// ---- need a GPU -----------------------------------------------------------------------------------

TEST(CudaRuntime, HostDeviceCopiesRoundTrip) {
  FSTM_REQUIRE_CUDA();
  Rng rng(11);
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(1000003)}) {
    Tensor host = test::random_tensor(Shape{n}, rng);
    Tensor dev = host.to(gpu());
    EXPECT_TRUE(dev.is_cuda());
    Tensor copy = dev.clone();  // device to device
    EXPECT_TRUE(copy.is_cuda());
    EXPECT_FALSE(copy.shares_storage(dev));
    EXPECT_EQ(copy.to_vector(), host.to_vector()) << n;
  }
  // Views keep their offset on the device.
  Tensor m = test::random_tensor(Shape{5, 7}, rng);
  Tensor dm = m.to(gpu());
  EXPECT_EQ(dm.slice(2, 4).to_vector(), m.slice(2, 4).to_vector());
  Tensor part = Tensor::empty(Shape{2, 7}, DType::f32, gpu());
  part.copy_(dm.slice(1, 3));
  EXPECT_EQ(part.to_vector(), m.slice(1, 3).to_vector());
  // Integer tensors and fills.
  Tensor labels = Tensor::from_vector_i64({3, -1, 1LL << 40}, Shape{3}, gpu());
  EXPECT_EQ(labels.to_vector_i64(), (std::vector<int64_t>{3, -1, 1LL << 40}));
  Tensor z = Tensor::full(Shape{257}, 5.0f, DType::f32, gpu());
  z.slice(0, 100).zero_();
  const std::vector<float> zv = z.to_vector();
  EXPECT_EQ(zv[99], 0.0f);
  EXPECT_EQ(zv[100], 5.0f);
  EXPECT_FLOAT_EQ(Tensor::full(Shape{}, 2.5f, DType::f32, gpu()).item(), 2.5f);
}

TEST(CudaRuntime, CachingAllocatorReusesFreedBlocks) {
  FSTM_REQUIRE_CUDA();
  { Tensor warm = Tensor::empty(Shape{1000, 1000}, DType::f32, gpu()); }
  const cuda::MemoryStats before = cuda::memory_stats(0);
  for (int i = 0; i < 20; ++i) {
    Tensor t = Tensor::empty(Shape{1000, 1000}, DType::f32, gpu());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 256, 0u);
  }
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.allocations - before.allocations, 20u);
  EXPECT_EQ(after.cache_hits - before.cache_hits, 20u);
  EXPECT_EQ(after.device_mallocs, before.device_mallocs);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);

  // Size classes: 1000 bytes take 1024; 5 MiB + 1 byte takes 5.5 MiB (8 classes per power of two).
  {
    Tensor small = Tensor::empty(Shape{1000}, DType::u8, gpu());
    EXPECT_EQ(cuda::memory_stats(0).bytes_in_use - after.bytes_in_use, 1024u);
  }
  {
    Tensor large = Tensor::empty(Shape{(5 << 20) + 1}, DType::u8, gpu());
    EXPECT_EQ(cuda::memory_stats(0).bytes_in_use - after.bytes_in_use, size_t(11) << 19);
  }
  cuda::reset_peak_memory(0);
  {
    Tensor a = Tensor::empty(Shape{1 << 20}, DType::f32, gpu());
    EXPECT_GE(cuda::memory_stats(0).peak_bytes_in_use, after.bytes_in_use + (size_t(4) << 20));
  }
  EXPECT_GT(cuda::memory_stats(0).bytes_cached, 0u);
  const uint64_t frees = cuda::memory_stats(0).device_frees;
  cuda::empty_cache(0);
  EXPECT_EQ(cuda::memory_stats(0).bytes_cached, 0u);
  EXPECT_GT(cuda::memory_stats(0).device_frees, frees);
  // A block freed and reused keeps working (stream order makes the reuse safe).
  Tensor x = Tensor::full(Shape{4096}, 1.0f, DType::f32, gpu());
  x = Tensor::full(Shape{4096}, 2.0f, DType::f32, gpu());
  EXPECT_EQ(x.to_vector()[4095], 2.0f);
}

TEST(CudaRuntime, OutOfMemoryIsAClearErrorAndRecoverable) {
  FSTM_REQUIRE_CUDA();
  const cuda::DeviceMemory memory = cuda::device_memory(0);
  { Tensor cached = Tensor::empty(Shape{1 << 20}, DType::f32, gpu()); }  // something to give back first
  ASSERT_GT(cuda::memory_stats(0).bytes_cached, 0u);
  try {
    Tensor huge = Tensor::empty(Shape{int64_t(memory.total / 2)}, DType::f32, gpu());  // twice the device
    FAIL() << "allocated twice the device memory";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory on cuda:0"), std::string::npos) << what;
    EXPECT_NE(what.find("tried to allocate"), std::string::npos) << what;
    EXPECT_NE(what.find("GiB"), std::string::npos) << what;
  }
  EXPECT_EQ(cuda::memory_stats(0).bytes_cached, 0u) << "the cache should be emptied before giving up";
  Tensor small = Tensor::zeros(Shape{10}, DType::f32, gpu());
  EXPECT_EQ(small.to_vector()[9], 0.0f);
}

TEST(CudaRuntime, DtypeConversionOnDeviceMatchesHostBits) {
  FSTM_REQUIRE_CUDA();
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 3.14159265f, 65504.0f, 65520.0f, 1e5f, -1e-3f,
                          1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                          6e-8f, 3e-8f, 2.98023224e-8f, 1e-6f, 1e-40f, 3.4e38f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()};
  Rng rng(5);
  for (int i = 0; i < 4000; ++i) v.push_back(rng.normal() * std::pow(10.0f, float(int(rng.below(12)) - 6)));
  const Shape shape{int64_t(v.size())};
  Tensor host = Tensor::from_vector(v, shape);
  Tensor dev = host.to(gpu());
  for (DType half : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(half));
    Tensor on_host = host.to(half);
    Tensor on_dev = dev.to(half);
    ASSERT_TRUE(on_dev.is_cuda());
    Tensor back = on_dev.to(Device::cpu());
    const uint16_t* a = on_host.data<uint16_t>();
    const uint16_t* b = back.data<uint16_t>();
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(a[i], b[i]) << "value " << v[i] << " at " << i;
    // And back to f32 on the device.
    Tensor widened_host = on_host.to(DType::f32);
    Tensor widened_dev = on_dev.to(DType::f32).to(Device::cpu());
    for (size_t i = 0; i < v.size(); ++i)
      ASSERT_TRUE(same_bits_or_both_nan(widened_dev.data<float>()[i], widened_host.data<float>()[i])) << i;
  }
  // Integer conversions (values in range).
  Tensor ints = Tensor::from_vector({-7.9f, -0.5f, 0.0f, 2.7f, 254.6f, 300.0f}, Shape{6}, gpu());
  EXPECT_EQ(ints.to(DType::i64).to_vector_i64(), (std::vector<int64_t>{-7, 0, 0, 2, 254, 300}));
  EXPECT_EQ(ints.to(DType::i32).to(Device::cpu()).to(DType::i64).to_vector_i64(),
            (std::vector<int64_t>{-7, 0, 0, 2, 254, 300}));
  Tensor bytes = ints.to(DType::u8).to(Device::cpu());
  EXPECT_EQ(std::vector<uint8_t>(bytes.data<uint8_t>(), bytes.data<uint8_t>() + 6),
            (std::vector<uint8_t>{0, 0, 0, 2, 254, 255}));
  Tensor labels = Tensor::from_vector_i64({5, -3, 1 << 20}, Shape{3}, gpu());
  EXPECT_EQ(labels.to(DType::f32).to_vector(), (std::vector<float>{5.0f, -3.0f, float(1 << 20)}));
}

TEST(CudaRuntime, PinnedBufferCopiesAsynchronously) {
  FSTM_REQUIRE_CUDA();
  const int64_t n = 100003;
  PinnedBuffer buffer(size_t(2 * n) * sizeof(float));
  ASSERT_TRUE(buffer.pinned());
  float* p = buffer.data_as<float>();
  for (int64_t i = 0; i < 2 * n; ++i) p[i] = float(i % 977) - 400.0f;
  Tensor a = Tensor::empty(Shape{n}, DType::f32, gpu());
  Tensor b = Tensor::empty(Shape{n}, DType::f32, gpu());
  copy_to_device_async(buffer, a);
  copy_to_device_async(buffer, b, size_t(n) * sizeof(float));
  // data() waits for both copies, so overwriting afterwards cannot change a or b.
  float* again = buffer.data_as<float>();
  for (int64_t i = 0; i < 2 * n; ++i) again[i] = -1.0f;
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(va[size_t(i)], float(i % 977) - 400.0f) << i;
    ASSERT_EQ(vb[size_t(i)], float((i + n) % 977) - 400.0f) << i;
  }
  // A kernel queued after the copy sees the data without any synchronisation by the caller.
  copy_to_device_async(buffer, a);
  Tensor doubled = ops::scale(a, 2.0f);
  EXPECT_EQ(doubled.to_vector()[0], -2.0f);
}

TEST(CudaRuntime, EventsTimeTheComputeStream) {
  FSTM_REQUIRE_CUDA();
  cuda::Event start(0), stop(0);
  start.record();
  Tensor x = Tensor::full(Shape{1 << 22}, 1.0f, DType::f32, gpu());
  Tensor y = ops::add(x, x);
  stop.record();
  stop.synchronize();
  EXPECT_TRUE(stop.query());
  EXPECT_GE(stop.elapsed_ms_since(start), 0.0f);
  EXPECT_EQ(y.to_vector()[12345], 2.0f);
}

namespace {
// conv -> relu -> global average pool -> linear, all on the device.
Tensor small_network(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& fw, const Tensor& fb) {
  kernels::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  p.stride_h = p.stride_w = 2;
  return ops::linear(ops::global_avg_pool(ops::relu(ops::conv2d(x, w, b, p))), fw, fb);
}
}  // namespace

TEST(CudaRuntime, GraphReplayEqualsEager) {
  FSTM_REQUIRE_CUDA();
  Rng rng(21);
  Tensor w = test::random_tensor(Shape{8, 3, 3, 3}, rng).to(gpu());
  Tensor b = test::random_tensor(Shape{8}, rng).to(gpu());
  Tensor fw = test::random_tensor(Shape{5, 8}, rng).to(gpu());
  Tensor fb = test::random_tensor(Shape{5}, rng).to(gpu());
  Tensor input = test::random_tensor(Shape{2, 9, 11, 3}, rng).to(gpu());  // static input of the graph
  const Tensor warm = small_network(input, w, b, fw, fb);                   // picks cuDNN algorithms

  const size_t reserved_before = cuda::memory_stats(0).bytes_in_graph_pools;
  Tensor out;
  {
    kernels::cuda::CudaGraph graph(gpu());
    EXPECT_FALSE(graph.captured());
    graph.capture([&] { out = small_network(input, w, b, fw, fb); });
    ASSERT_TRUE(graph.captured());
    // The intermediates freed during the capture stay reserved for the replays.
    EXPECT_GT(cuda::memory_stats(0).bytes_in_graph_pools, reserved_before);
    for (int round = 0; round < 3; ++round) {
      SCOPED_TRACE(round);
      input.copy_(test::random_tensor(input.shape(), rng));
      graph.replay();
      const Tensor eager = small_network(input, w, b, fw, fb);  // allocates while the graph lives
      FSTM_EXPECT_CLOSE(out, eager, 1e-6f, 1e-6f);
    }
    EXPECT_THROW(graph.capture([] {}), Error);  // one capture per graph
  }
  EXPECT_EQ(cuda::memory_stats(0).bytes_in_graph_pools, reserved_before) << "destroying the graph frees its pool";
  EXPECT_EQ(out.shape(), (Shape{2, 5}));  // still a valid tensor after the graph is gone
}

TEST(CudaRuntime, GraphCaptureRejectsHostCopies) {
  FSTM_REQUIRE_CUDA();
  Tensor x = Tensor::full(Shape{16}, 3.0f, DType::f32, gpu());
  EXPECT_EQ(ops::scale(x, 2.0f).to_vector()[0], 6.0f);  // eager first: the kernel is loaded
  kernels::cuda::CudaGraph graph(gpu());
  try {
    graph.capture([&] { (void)ops::scale(x, 2.0f).to_vector(); });
    FAIL() << "a host copy was captured";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("capture"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(graph.captured());
  EXPECT_THROW(graph.replay(), Error);
  // The device and its stream still work.
  EXPECT_EQ(ops::scale(x, 2.0f).to_vector()[15], 6.0f);
}
