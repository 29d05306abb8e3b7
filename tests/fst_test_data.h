// A tiny FST-labelled face index for the method's tests (tests/test_fst*.cpp): identity pairs
// (a, b) give the reals a, b and the Deepfakes a_b, b_a. A frame of video s_t shows the scene of s
// (background colour by s) with the face of t (a centre patch coloured by t); fakes carry a faint
// checkerboard on the face. Labels come from the file names through io::parse_video_labels.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/dataset.h"
#include "io/image.h"
#include "tensor/random.h"

namespace fstm::test {

struct FstIndexSpec {
  std::vector<std::pair<int, int>> train_pairs = {{100, 101}, {102, 103}};
  std::vector<std::pair<int, int>> val_pairs = {{104, 105}};
  std::vector<std::pair<int, int>> test_pairs;
  std::vector<std::string> methods = {"Deepfakes"};
  std::vector<std::string> compressions = {"c23"};
  int frames = 2;  // per video
  int size = 32;
  uint64_t seed = 7;
};

inline io::Image fst_test_frame(int scene_id, int face_id, bool fake, int size, Rng& rng) {
  io::Image im = io::Image::blank(size, size);
  const auto colour = [](int id, int c) { return uint8_t((id * 53 + c * 97) % 200 + 30); };
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const bool face = std::abs(x - size / 2) < size / 4 && std::abs(y - size / 2) < size / 3;
      const int id = face ? face_id : scene_id;
      for (int c = 0; c < 3; ++c) {
        int v = colour(id, c) + int(rng.below(21)) - 10;
        if (face && fake && ((x + y) % 2 == 0)) v += 24;
        im.at(x, y)[c] = uint8_t(std::clamp(v, 0, 255));
      }
    }
  return im;
}

// Writes the PNGs and DIR/index.json; returns the index path.
inline std::string make_fst_index(const std::string& dir, const FstIndexSpec& spec = {}) {
  io::FaceIndex ix;
  ix.settings.size = spec.size;
  ix.settings.align = "box";
  Rng rng(spec.seed);
  auto add_video = [&](const std::string& method, const std::string& comp, const std::string& stem,
                       const std::string& split) {
    const bool original = method == io::kOriginal;
    io::IndexVideo v;
    v.video_id = stem;
    v.method = method;
    v.split = split;
    v.compression = io::parse_compression(comp);
    v.det = original ? 0 : 1;
    io::parse_video_labels(stem, original, v.source_id, v.target_id);
    v.video = (original ? "original_sequences/youtube/" : "manipulated_sequences/" + method + "/") + comp +
              "/videos/" + stem + ".mp4";
    v.frame_count = spec.frames;
    v.fps = 25;
    const int32_t vi = int32_t(ix.videos.size());
    ix.videos.push_back(v);
    for (int k = 0; k < spec.frames; ++k) {
      const std::string png = method + "_" + comp + "_" + stem + "_" + std::to_string(k) + ".png";
      io::save_image(fst_test_frame(std::stoi(v.source_id), std::stoi(v.target_id), !original, spec.size, rng),
                     dir + "/" + png);
      ix.frames.push_back({vi, k, png, false, {}, {}, {}});
    }
  };
  const std::vector<std::pair<const std::vector<std::pair<int, int>>*, std::string>> splits = {
      {&spec.train_pairs, "train"}, {&spec.val_pairs, "val"}, {&spec.test_pairs, "test"}};
  for (const std::string& comp : spec.compressions)
    for (const auto& [pairs, split] : splits)
      for (const auto& [a, b] : *pairs) {
        const std::string sa = std::to_string(a), sb = std::to_string(b);
        add_video(io::kOriginal, comp, sa, split);
        add_video(io::kOriginal, comp, sb, split);
        for (const std::string& m : spec.methods) {
          add_video(m, comp, sa + "_" + sb, split);
          add_video(m, comp, sb + "_" + sa, split);
        }
      }
  ix.assign_identities();
  ix.save(dir + "/index.json");
  return dir + "/index.json";
}

}  // namespace fstm::test
