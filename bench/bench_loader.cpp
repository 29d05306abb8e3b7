// Data pipeline speed: the loader's augmented 224x224 batches (images/s) and face extraction
// (faces/s) from FF++-like 640x480 H.264 videos, with a landmark file and with dlib.
//
//   build/bench/bench_loader --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// The data is generated under $TMPDIR/fstm_bench_loader from scikit-image's astronaut.png (real
// face pixels; Debian python3-skimage) or, without it, a synthetic pattern. Target: the loader at
// >= 3x a ResNet-18 training step on 2 cores (~20 img/s), i.e. >= 60 img/s.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "io/extract.h"
#include "io/loader.h"

using namespace fstm;
using namespace fstm::io;
namespace fs = std::filesystem;

namespace {

const char* kAstronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";

std::string work_dir() {
  const char* tmp = std::getenv("TMPDIR");
  return (fs::path(tmp && *tmp ? tmp : "/tmp") / "fstm_bench_loader").string();
}

Image source_image() {
  if (fs::exists(kAstronaut)) return load_image(kAstronaut);
  Image im = Image::blank(512, 512);
  for (int y = 0; y < 512; ++y)
    for (int x = 0; x < 512; ++x)
      im.at(x, y)[0] = uint8_t(x / 2), im.at(x, y)[1] = uint8_t(y / 2), im.at(x, y)[2] = uint8_t((x * y) >> 10);
  return im;
}

// The astronaut's 5 face points (dlib), used as the landmark file's entries.
const FivePoints kAstronautFace = {Point2{203.2f, 101.7f}, Point2{246.5f, 104.2f}, Point2{225.0f, 127.0f},
                                   Point2{200.0f, 139.0f}, Point2{245.0f, 141.0f}};

// 64 aligned 224x224 faces (slightly different crops) and their index.
const std::string& loader_index() {
  static const std::string path = [] {
    const std::string dir = work_dir() + "/faces";
    fs::create_directories(dir);
    const Image src = source_image();
    FaceIndex ix;
    ix.settings.size = 224;
    for (int i = 0; i < 64; ++i) {
      FivePoints p = kAstronautFace;
      for (auto& q : p) q.x += float(i % 8) - 4, q.y += float(i / 8) - 4;
      Mat3 m;
      const Image face = align_face(src, p, {}, &m);
      const std::string png = "f" + std::to_string(i) + ".png";
      save_image(face, dir + "/" + png);
      IndexVideo v;
      v.video = "v" + std::to_string(i);
      v.video_id = std::to_string(100 + i);
      v.method = i % 2 ? "Deepfakes" : "original";
      v.det = i % 2;
      v.split = "train";
      v.source_id = v.video_id;
      v.target_id = v.det ? std::to_string(100 + (i + 1) % 64) : v.video_id;
      ix.videos.push_back(v);
      IndexFrame f{int32_t(i), 0, png, true, {}};
      for (int k = 0; k < 5; ++k) f.points[size_t(k)] = m.apply(p[size_t(k)]);
      ix.frames.push_back(f);
    }
    ix.assign_identities();
    ix.save(dir + "/index.json");
    return dir + "/index.json";
  }();
  return path;
}

void BM_Loader(benchmark::State& state) {
  LoaderOptions o;
  o.batch_size = 32;
  o.workers = int(state.range(0));
  o.augment = state.range(1) != 0;
  o.prefetch = 4;
  DataLoader dl(loader_index(), o);
  Batch b;
  while (!dl.next(b)) {
  }  // first batch (the queue fills while we wait, as in training)
  int64_t images = 0;
  for (auto _ : state) {
    while (!dl.next(b)) {
    }
    images += b.size();
  }
  state.SetItemsProcessed(images);
  state.counters["img/s"] = benchmark::Counter(double(images), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Loader)->ArgNames({"workers", "augment"})->Args({2, 1})->Args({1, 1})->Args({2, 0})
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// An FF++ tree of 4 real + 4 fake 640x480 c23 videos of 64 frames (the head drifts), and an
// ldm.json of its raw-geometry landmarks.
struct Tree {
  std::string root, ldm;
};
const Tree& extract_tree() {
  static const Tree tree = [] {
    Tree t;
    t.root = work_dir() + "/ffpp";
    fs::remove_all(t.root);
    const Image src = source_image();
    std::ofstream ldm(work_dir() + "/ldm.json");
    ldm << "{";
    bool first = true;
    for (int v = 0; v < 8; ++v) {
      const bool fake = v >= 4;
      const std::string id = "00" + std::to_string(v);
      const std::string rel = fake ? "manipulated_sequences/Deepfakes/c23/videos/" + id + "_00" + std::to_string(v - 4) + ".mp4"
                                   : "original_sequences/youtube/c23/videos/" + id + ".mp4";
      std::vector<Image> frames;
      for (int k = 0; k < 64; ++k) {
        const int ox = 64 + (k + 8 * v) % 48, oy = 0;  // where the 512x512 photo sits in the frame
        Image f = Image::blank(640, 480, 30);
        for (int y = 0; y < 480; ++y)
          for (int x = 0; x < 512 && ox + x < 640; ++x) std::copy_n(src.at(x, y + oy), 3, f.at(ox + x, y));
        frames.push_back(std::move(f));
        ldm << (first ? "" : ",") << "\"" << landmark_key(rel, k) << "\": {\"landmark\": [";
        for (int p = 0; p < 5; ++p)
          ldm << (p ? "," : "") << "[" << kAstronautFace[size_t(p)].x + ox << "," << kAstronautFace[size_t(p)].y + oy << "]";
        ldm << "]}";
        first = false;
      }
      encode_video(frames, 25, Compression::c23, t.root + "/" + rel);
    }
    ldm << "}";
    t.ldm = work_dir() + "/ldm.json";
    return t;
  }();
  return tree;
}

void BM_Extract(benchmark::State& state) {
  const Tree& t = extract_tree();
  const bool dlib = state.range(0) != 0;
  if (dlib && !face_detection_supported()) {
    state.SkipWithError("built without dlib");
    return;
  }
  int64_t faces = 0;
  for (auto _ : state) {
    ExtractOptions o;
    o.data = t.root;
    o.out = work_dir() + "/out";
    o.frames = 32;
    o.scan.compressions = {Compression::c23};
    o.scan.methods = {"Deepfakes"};
    o.jobs = 2;
    if (dlib) {
      o.upsample = int(state.range(1));
      o.detect_size = int(state.range(2));
    } else {
      o.landmarks = t.ldm;
    }
    const ExtractReport r = extract_faces(o);
    faces += r.frames;
    if (r.frames != 8 * 32) state.SkipWithError("faces were skipped");
  }
  state.counters["faces/s"] = benchmark::Counter(double(faces), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Extract)->ArgNames({"dlib", "upsample", "detect_size"})->Args({0, 0, 0})->Args({1, 0, 0})
    ->Args({1, 1, 0})->Args({1, 1, 320})
    ->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
