// DataLoader: shapes, labels and normalisation; epochs; determinism by seed (whatever the number
// of workers); resuming mid-epoch; real/fake balancing; buffers the caller still holds; bad files;
// clean shutdown.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/loader.h"
#include "tests/test_support.h"

namespace fstm::io {
namespace {

namespace fs = std::filesystem;

// An index of n_real + n_fake one-frame videos; frame i's PNG is `size` square with red = i,
// green = 200 for fakes, a gradient in blue, and the 5 points on the template.
std::string make_index(const std::string& dir, int n_real, int n_fake, int size = 32,
                       const std::string& split = "train") {
  FaceIndex ix;
  ix.settings.size = size;
  ix.settings.face_width = 80.0f * size / 224;
  AlignOptions a;
  a.canvas = size;
  a.face_width = ix.settings.face_width;
  const FivePoints tpl = alignment_template(a);
  for (int i = 0; i < n_real + n_fake; ++i) {
    const bool fake = i >= n_real;
    const std::string id = std::to_string(100 + i), other = std::to_string(100 + (i + 1) % (n_real + n_fake));
    IndexVideo v;
    v.video = (fake ? "manipulated_sequences/Deepfakes/c23/videos/" + id + "_" + other
                    : "original_sequences/youtube/c23/videos/" + id) + ".mp4";
    v.video_id = fake ? id + "_" + other : id;
    v.method = fake ? "Deepfakes" : "original";
    v.split = split;
    v.det = fake;
    v.source_id = id;
    v.target_id = fake ? other : id;
    ix.videos.push_back(v);
    Image im = Image::blank(size, size);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) im.at(x, y)[0] = uint8_t(i), im.at(x, y)[1] = fake ? 200 : 20, im.at(x, y)[2] = uint8_t(4 * x + y);
    const std::string png = "f" + std::to_string(i) + ".png";
    save_image(im, dir + "/" + png);
    ix.frames.push_back({int32_t(i), 0, png, true, tpl, {}, {}});
  }
  ix.assign_identities();
  ix.save(dir + "/index.json");
  return dir + "/index.json";
}

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

// All batches of one epoch.
std::vector<Batch> epoch(DataLoader& dl) {
  std::vector<Batch> out;
  Batch b;
  while (dl.next(b)) {
    Batch copy = b;
    copy.images = b.images.clone();  // keep the pixels
    out.push_back(copy);
  }
  return out;
}

TEST(Loader, ShapesLabelsAndNormalisation) {
  const std::string dir = test::temp_dir("loader");
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  DataLoader dl(make_index(dir, 5, 7), o);
  EXPECT_EQ(dl.selection().size(), 12u);
  EXPECT_EQ(dl.batches_per_epoch(), 3);
  EXPECT_EQ(dl.class_counts()[0], 5);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.images.shape(), (Shape{4, 32, 32, 3}));
  EXPECT_EQ(b.images.dtype(), DType::f32);
  EXPECT_EQ(b.det.shape(), (Shape{4}));
  EXPECT_EQ(b.det.dtype(), DType::i64);
  EXPECT_EQ(b.source.dtype(), DType::i64);
  const auto det = b.det.to_vector_i64(), src = b.source.to_vector_i64(), tgt = b.target.to_vector_i64();
  const std::vector<float> px = values(b.images);
  const Normalization n;
  for (int i = 0; i < 4; ++i) {
    const IndexFrame& f = dl.index().frames[size_t(b.frames[size_t(i)])];
    const IndexVideo& v = dl.index().videos[size_t(f.video)];
    EXPECT_EQ(det[size_t(i)], v.det);
    EXPECT_EQ(src[size_t(i)], v.source);
    EXPECT_EQ(tgt[size_t(i)], v.target);
    EXPECT_EQ(dl.index().identities[size_t(src[size_t(i)])], v.source_id);
    // pixel (x 3, y 5) of frame i: red = frame number, blue = 4x + y
    const float* p = &px[((size_t(i) * 32 + 5) * 32 + 3) * 3];
    EXPECT_NEAR(p[0], (float(b.frames[size_t(i)]) / 255 - n.mean[0]) / n.std[0], 1e-5);
    EXPECT_NEAR(p[1], (20.0f / 255 - n.mean[1]) / n.std[1], 1e-5);
    EXPECT_NEAR(p[2], (17.0f / 255 - n.mean[2]) / n.std[2], 1e-5);
  }
  EXPECT_EQ(b.frames, (std::vector<int64_t>{0, 1, 2, 3}));  // no shuffle: index order
  EXPECT_EQ(b.weight.to_vector(), (std::vector<float>{1, 1, 1, 1}));
}

TEST(Loader, EpochsEndWithFalseAndCoverEveryFrameOnce) {
  const std::string dir = test::temp_dir("loader");
  LoaderOptions o;
  o.batch_size = 5;
  o.drop_last = false;
  o.seed = 3;
  DataLoader dl(make_index(dir, 6, 7), o);
  EXPECT_EQ(dl.batches_per_epoch(), 3);
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> seen;
    Batch b;
    int n = 0;
    while (dl.next(b)) {
      EXPECT_EQ(b.epoch, e);
      EXPECT_EQ(b.batch, n);
      EXPECT_EQ(b.images.size(0), n < 2 ? 5 : 3);  // the last one is partial
      seen.insert(seen.end(), b.frames.begin(), b.frames.end());
      ++n;
    }
    EXPECT_EQ(n, 3);
    EXPECT_EQ(b.size(), 0);  // cleared at the end of the epoch
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(13);
    for (int i = 0; i < 13; ++i) all[size_t(i)] = i;
    EXPECT_EQ(seen, all) << "epoch " << e;
  }
}

TEST(Loader, SameSeedSameBatchesWhateverTheWorkers) {
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 8, 8);
  auto run = [&](int workers, uint64_t seed) {
    LoaderOptions o;
    o.batch_size = 4;
    o.workers = workers;
    o.prefetch = 3;
    o.seed = seed;
    o.augment = true;  // every augmentation at the authors' probabilities
    DataLoader dl(index, o);
    std::vector<Batch> a = epoch(dl), b = epoch(dl);
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const auto one = run(1, 7), two = run(2, 7), other = run(2, 8);
  ASSERT_EQ(one.size(), 8u);
  ASSERT_EQ(two.size(), 8u);
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_EQ(one[k].frames, two[k].frames) << "batch " << k;
    EXPECT_EQ(values(one[k].images), values(two[k].images)) << "batch " << k;
  }
  EXPECT_NE(one[0].frames, one[4].frames);  // epochs are shuffled differently
  bool differs = false;
  for (size_t k = 0; k < one.size(); ++k) differs |= values(one[k].images) != values(other[k].images);
  EXPECT_TRUE(differs) << "another seed gives other batches";
  // augmentation changed the pixels (vs the plain image of the same frame)
  LoaderOptions plain;
  plain.batch_size = 4;
  plain.seed = 7;
  DataLoader dl(index, plain);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.frames, one[0].frames);  // same order: augmentation does not touch the shuffle
  EXPECT_NE(values(b.images), values(one[0].images));
}

TEST(Loader, ResumesMidEpochExactly) {
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 6, 10);
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 11;
  o.augment = true;
  DataLoader a(index, o);
  std::vector<Batch> full = epoch(a);
  const std::vector<Batch> e1 = epoch(a);
  full.insert(full.end(), e1.begin(), e1.end());
  ASSERT_EQ(full.size(), 10u);  // 5 per epoch
  EXPECT_EQ(a.position(), (LoaderPosition{2, 0}));

  DataLoader b(index, o);  // a "restarted" run
  Batch x;
  ASSERT_TRUE(b.next(x));  // some prefetching happens, then:
  b.seek({1, 2});
  EXPECT_EQ(b.position(), (LoaderPosition{1, 2}));
  for (size_t k = 7; k < 10; ++k) {
    ASSERT_TRUE(b.next(x));
    EXPECT_EQ(x.epoch, 1);
    EXPECT_EQ(x.frames, full[k].frames) << "batch " << k;
    EXPECT_EQ(values(x.images), values(full[k].images)) << "batch " << k;
  }
  EXPECT_FALSE(b.next(x));  // end of epoch 1
  EXPECT_EQ(b.position(), (LoaderPosition{2, 0}));
  EXPECT_THROW(b.seek({0, 5}), Error);
}

TEST(Loader, OversamplingBalancesRealAndFake) {
  const std::string dir = test::temp_dir("loader");
  LoaderOptions o;
  o.batch_size = 6;
  o.balance = Balance::oversample;
  o.seed = 5;
  DataLoader dl(make_index(dir, 4, 12), o);
  EXPECT_EQ(dl.samples_per_epoch(), 24);
  EXPECT_EQ(dl.batches_per_epoch(), 4);
  for (int e = 0; e < 2; ++e) {
    std::map<int64_t, int> count;
    int reals = 0;
    Batch b;
    while (dl.next(b)) {
      const auto det = b.det.to_vector_i64();
      for (size_t i = 0; i < det.size(); ++i) reals += det[i] == 0, ++count[b.frames[i]];
    }
    EXPECT_EQ(reals, 12) << "epoch " << e;
    for (int64_t f = 0; f < 4; ++f) EXPECT_EQ(count[f], 3) << "real frame " << f;   // evenly repeated
    for (int64_t f = 4; f < 16; ++f) EXPECT_EQ(count[f], 1) << "fake frame " << f;
  }
}

TEST(Loader, WeightBalancing) {
  const std::string dir = test::temp_dir("loader");
  LoaderOptions o;
  o.batch_size = 16;
  o.balance = Balance::weight;
  DataLoader dl(make_index(dir, 4, 12), o);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  const auto det = b.det.to_vector_i64();
  const auto w = b.weight.to_vector();
  double real_total = 0, fake_total = 0;
  for (size_t i = 0; i < det.size(); ++i) {
    EXPECT_NEAR(w[i], det[i] ? 16.0 / 24 : 16.0 / 8, 1e-6);
    (det[i] ? fake_total : real_total) += w[i];
  }
  EXPECT_NEAR(real_total, fake_total, 1e-4);  // both classes weigh the same in the loss
  EXPECT_EQ(parse_balance("oversample"), Balance::oversample);
  EXPECT_THROW(parse_balance("undersample"), Error);
}

TEST(Loader, HeldBatchesAreNotOverwritten) {
  const std::string dir = test::temp_dir("loader");
  LoaderOptions o;
  o.batch_size = 2;
  o.prefetch = 2;
  o.seed = 1;
  DataLoader dl(make_index(dir, 6, 6), o);
  Batch first;
  ASSERT_TRUE(dl.next(first));
  const Tensor kept = first.images;  // the caller keeps the batch
  const std::vector<float> snapshot = values(kept);
  Batch b;
  for (int k = 0; k < 5 && dl.next(b); ++k) {
  }
  EXPECT_EQ(values(kept), snapshot);
}

TEST(Loader, FiltersAndResize) {
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 3, 5, 48, "val");
  LoaderOptions o;
  o.splits = {"val"};
  o.methods = {"original"};
  o.batch_size = 3;
  o.size = 32;  // the index has 48 px faces: re-aligned to 32
  DataLoader dl(index, o);
  EXPECT_EQ(dl.selection().size(), 3u);
  EXPECT_EQ(dl.image_size(), 32);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  EXPECT_EQ(b.images.shape(), (Shape{3, 32, 32, 3}));
  EXPECT_EQ(b.det.to_vector_i64(), (std::vector<int64_t>{0, 0, 0}));
  o.splits = {"train"};
  EXPECT_THROW(DataLoader(index, o), Error);  // nothing selected
  o.splits = {};
  o.methods = {};
  o.compressions = {"c40"};
  EXPECT_THROW(DataLoader(index, o), Error);
  o.compressions = {};
  o.batch_size = 100;
  EXPECT_THROW(DataLoader(index, o), Error);  // no full batch
}

TEST(Loader, UnreadablePngIsReplacedAndCounted) {
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 4, 4);
  std::ofstream(dir + "/f2.png") << "not a png";
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 2;
  DataLoader dl(index, o);
  Batch b;
  int batches = 0;
  while (dl.next(b)) {
    ++batches;
    EXPECT_EQ(b.size(), 4);
    for (int64_t f : b.frames) EXPECT_NE(f, 2);
  }
  EXPECT_EQ(batches, 2);
  EXPECT_EQ(dl.bad_files(), 1);
}

TEST(Loader, StopsCleanlyMidEpoch) {
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 20, 20);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    LoaderOptions o;
    o.batch_size = 4;
    o.prefetch = 6;
    o.augment = true;
    DataLoader dl(index, o);
    Batch b;
    ASSERT_TRUE(dl.next(b));
  }  // destroyed with workers busy filling
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(Loader, BatchesOnTheGpu) {
  FSTM_REQUIRE_CUDA();
  const std::string dir = test::temp_dir("loader");
  const std::string index = make_index(dir, 4, 4);
  LoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  DataLoader cpu(index, o);
  o.device = Device::cuda();
  DataLoader gpu(index, o);
  Batch a, b;
  ASSERT_TRUE(cpu.next(a));
  ASSERT_TRUE(gpu.next(b));
  EXPECT_TRUE(b.images.is_cuda());
  EXPECT_TRUE(b.det.is_cuda());
  EXPECT_EQ(values(a.images), values(b.images));
  EXPECT_EQ(a.det.to_vector_i64(), b.det.to_vector_i64());
}

}  // namespace
}  // namespace fstm::io
