// The synthetic dataset: the generator object (identities and scripts from the seed), the FF++
// layout writer (videos, masks, ldm.json, splits, synth.json) and the documentation contact sheet.
#include "io/synth.h"

#include "io/dataset.h"

#include "io/face.h"
#include "io/fs.h"
#include "io/json_file.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/synth_model.h"
#include "io/video.h"
#include "tensor/error.h"

#ifndef FSTM_VERSION
#define FSTM_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;

namespace fstm::io {

// ---- names -----------------------------------------------------------------------------------------

const char* synth_method_name(SynthMethod m) {
  switch (m) {
    case SynthMethod::deepfakes: return "Deepfakes";
    case SynthMethod::face2face: return "Face2Face";
    case SynthMethod::faceswap: return "FaceSwap";
    case SynthMethod::neural_textures: return "NeuralTextures";
    case SynthMethod::faceshifter: return "FaceShifter";
  }
  return "?";
}

std::vector<std::string> synth_method_names(const std::vector<SynthMethod>& methods) {
  std::vector<std::string> names;
  for (SynthMethod m : methods) names.push_back(synth_method_name(m));
  return names;
}

const std::vector<SynthMethod>& all_synth_methods() {
  static const std::vector<SynthMethod> all = {SynthMethod::deepfakes, SynthMethod::face2face, SynthMethod::faceswap,
                                               SynthMethod::neural_textures, SynthMethod::faceshifter};
  return all;
}

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}
}  // namespace

SynthMethod parse_synth_method(const std::string& s) {
  for (SynthMethod m : all_synth_methods())
    if (lower(s) == lower(synth_method_name(m))) return m;
  throw Error("unknown manipulation method '" + s +
              "' (expected Deepfakes, Face2Face, FaceSwap, NeuralTextures or FaceShifter)");
}

void SynthOptions::validate() const {
  FSTM_CHECK(identities >= 2 && identities % 2 == 0 && identities <= 1000,
             "synth: --identities must be even, between 2 and 1000 (got ", identities, ")");
  FSTM_CHECK(frames >= 1 && frames <= 100000, "synth: --frames must be between 1 and 100000 (got ", frames, ")");
  FSTM_CHECK(size >= 32 && size <= 2048 && size % 2 == 0, "synth: --size must be even, between 32 and 2048 (got ", size,
             ")");
  FSTM_CHECK(fps > 0 && fps <= 240, "synth: fps must be in (0, 240] (got ", fps, ")");
  FSTM_CHECK(swap_colour_match >= 0 && swap_colour_match <= 1,
             "synth: --swap-colour-match must be between 0 and 1 (got ", swap_colour_match, ")");
  FSTM_CHECK(threads >= 1 && threads <= 256, "synth: --threads must be between 1 and 256 (got ", threads, ")");
  FSTM_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
             "synth: validation and test fractions must be >= 0 and sum to less than 1");
  for (size_t i = 0; i < methods.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      FSTM_CHECK(methods[i] != methods[j], "synth: method ", synth_method_name(methods[i]), " listed twice");
}

// ---- the generator -----------------------------------------------------------------------------------

namespace synth {

World::World(SynthOptions o) : options(std::move(o)) {
  options.validate();
  for (int i = 0; i < options.identities; ++i) {
    Rng id_rng(stream_seed(options.seed, Stream::identity, uint64_t(i)));
    traits.push_back(sample_traits(id_rng));
    Rng scene_rng(stream_seed(options.seed, Stream::scene, uint64_t(i)));
    scenes.push_back(sample_scene(scene_rng, options.frames));
  }
}

FaceRender World::real_render(int identity, int scene, int t) const {
  const SceneScript& s = scenes[scene];
  FaceRender r;
  r.outer = r.inner = &traits[identity];
  r.scene = &s;
  r.skin = traits[identity].skin;
  r.pose = scene_pose(s, options.size, t);
  r.expr = scene_expression(s, t);
  r.light = scene_lighting(s, t);
  return r;
}

}  // namespace synth

struct SynthGenerator::Impl {
  synth::World world;
};

SynthGenerator::SynthGenerator(SynthOptions options) : impl_(std::make_unique<Impl>(Impl{synth::World(std::move(options))})) {}

SynthGenerator::~SynthGenerator() = default;
SynthGenerator::SynthGenerator(SynthGenerator&&) noexcept = default;
SynthGenerator& SynthGenerator::operator=(SynthGenerator&&) noexcept = default;

const SynthOptions& SynthGenerator::options() const { return impl_->world.options; }

SynthFrame SynthGenerator::render(int identity, int scene, int t) const {
  const synth::World& w = impl_->world;
  const int n = w.options.identities;
  FSTM_CHECK(identity >= 0 && identity < n && scene >= 0 && scene < n, "synth: identity ", identity, " / scene ",
             scene, " out of range [0, ", n, ")");
  FSTM_CHECK(t >= 0, "synth: negative frame index ", t);
  const synth::FaceRender r = w.real_render(identity, scene, t);
  synth::Canvas canvas(w.options.size);
  synth::render_frame(r, canvas);
  SynthFrame f;
  f.image = synth::quantize(canvas, w.scenes[scene].noise,
                            synth::stream_seed(w.options.seed, synth::Stream::noise, uint64_t(scene), uint64_t(identity),
                                               uint64_t(t)));
  f.landmarks = synth::face_landmarks(r);
  return f;
}

SynthFake SynthGenerator::render_fake(SynthMethod method, int a, int b, int t, const Image& source_frame) const {
  const synth::World& w = impl_->world;
  const int n = w.options.identities;
  FSTM_CHECK(a >= 0 && a < n && b >= 0 && b < n && a != b, "synth: fake ", a, "_", b, ": ids must differ and be in [0, ",
             n, ")");
  FSTM_CHECK(t >= 0, "synth: negative frame index ", t);
  return synth::make_fake(w, method, a, b, t, source_frame);
}

namespace {

// The identities of train, val and test: the shuffled identities cut into groups of whole pairs,
// at least one val and one test pair once there are three pairs.
std::vector<std::vector<int>> split_groups(const SynthOptions& o) {
  std::vector<int> ids(o.identities);
  for (int i = 0; i < o.identities; ++i) ids[i] = i;
  Rng rng(synth::stream_seed(o.seed, synth::Stream::pairs));
  for (int i = o.identities - 1; i > 0; --i) std::swap(ids[i], ids[rng.below(uint64_t(i) + 1)]);
  const int n = o.identities / 2;  // pairs
  int n_test = int(std::lround(n * o.test_fraction)), n_val = int(std::lround(n * o.val_fraction));
  if (n >= 3) {
    n_test = std::max(n_test, o.test_fraction > 0 ? 1 : 0);
    n_val = std::max(n_val, o.val_fraction > 0 ? 1 : 0);
  }
  n_test = std::min(n_test, std::max(0, n - 1));
  n_val = std::min(n_val, std::max(0, n - 1 - n_test));
  const int n_train = n - n_val - n_test;
  const auto at = [&](int pair) { return ids.begin() + 2 * pair; };
  return {std::vector<int>(at(0), at(n_train)), std::vector<int>(at(n_train), at(n_train + n_val)),
          std::vector<int>(at(n_train + n_val), ids.end())};
}

// Method k's fakes in one group (SynthSplits): place i -> place i + 1 + (k mod (n - 1)).
void group_fakes(const std::vector<int>& group, int k, std::vector<std::array<int, 2>>& out) {
  const int n = int(group.size());
  if (n < 2) return;
  const int shift = 1 + k % (n - 1);
  for (int i = 0; i < n; ++i) out.push_back({group[size_t(i)], group[size_t((i + shift) % n)]});
}

int method_place(SynthMethod m) {
  const auto& all = all_synth_methods();
  return int(std::find(all.begin(), all.end(), m) - all.begin());
}

}  // namespace

std::vector<std::array<int, 2>> SynthGenerator::fakes(SynthMethod method) const {
  std::vector<std::array<int, 2>> out;
  for (const std::vector<int>& g : split_groups(impl_->world.options)) group_fakes(g, method_place(method), out);
  return out;
}

SynthSplits SynthGenerator::splits() const {
  const SynthOptions& o = impl_->world.options;
  SynthSplits s;
  s.groups = split_groups(o);
  std::vector<std::array<int, 2>>* parts[] = {&s.train, &s.val, &s.test};
  for (size_t g = 0; g < 3; ++g) {
    std::set<std::array<int, 2>> seen;  // unordered pairs, each once, in the order the methods make them
    for (SynthMethod m : o.methods) {
      std::vector<std::array<int, 2>> f;
      group_fakes(s.groups[g], method_place(m), f);
      for (const auto& [a, b] : f)
        if (seen.insert({std::min(a, b), std::max(a, b)}).second) parts[g]->push_back({a, b});
    }
  }
  return s;
}

// ---- the dataset writer --------------------------------------------------------------------------------

namespace {

std::string id3(int i) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03d", i);
  return buf;
}

std::string real_path(Compression c, int id) {
  return std::string("original_sequences/youtube/") + compression_name(c) + "/videos/" + id3(id) + ".mp4";
}
std::string fake_name(int a, int b) { return id3(a) + "_" + id3(b) + ".mp4"; }
std::string fake_path(SynthMethod m, Compression c, int a, int b) {
  return std::string("manipulated_sequences/") + synth_method_name(m) + "/" + compression_name(c) + "/videos/" +
         fake_name(a, b);
}
std::string mask_path(SynthMethod m, int a, int b) {
  return std::string("manipulated_sequences/") + synth_method_name(m) + "/masks/videos/" + fake_name(a, b);
}

// Runs task(i) for i in [0, n) on `threads` threads; the first exception stops the others and is rethrown.
void parallel_for(int n, int threads, const std::function<void(int)>& task) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (int i; !failed && (i = next++) < n;) {
      try {
        task(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < std::min(threads, n); ++k) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// One ldm.json entry per frame, gathered per video and written in a fixed order.
struct LdmVideo {
  std::string relpath;  // the raw video
  int source = 0, target = 0, det = 0;
  bool target_visible = true;  // false for reenactments (io/dataset.h: method_shows_target_identity)
  std::vector<Landmarks68> frames;
};

void append_number(std::string& out, float v) {
  char buf[32];
  const double r = std::round(double(v) * 100) / 100;  // 0.01 px is far below any use
  auto res = std::to_chars(buf, buf + sizeof buf, r, std::chars_format::fixed, 2);
  std::string_view s(buf, size_t(res.ptr - buf));
  while (s.size() > 1 && s.back() == '0') s.remove_suffix(1);  // "12.50" -> "12.5", "12.00" -> "12."
  if (s.back() == '.') s.remove_suffix(1);
  if (s == "-0") s = "0";
  out.append(s);
}

void write_ldm_json(const std::vector<LdmVideo>& videos, const std::string& path) {
  std::string out = "{\n";
  bool first = true;
  for (const LdmVideo& v : videos)
    for (size_t t = 0; t < v.frames.size(); ++t) {
      if (!first) out += ",\n";
      first = false;
      out += '"';
      out += landmark_key(v.relpath, int64_t(t));
      out += "\": {\"landmark\": [";
      for (int i = 0; i < 68; ++i) {
        out += i ? ", [" : "[";
        append_number(out, v.frames[t][i][0]);
        out += ", ";
        append_number(out, v.frames[t][i][1]);
        out += "]";
      }
      out += "], \"source_label\": \"" + id3(v.source) + "\", \"target_label\": \"" + id3(v.target) +
             "\", \"det_label\": " + std::to_string(v.det);
      if (v.det) out += std::string(", \"target_visible\": ") + (v.target_visible ? "true" : "false");
      out += "}";
    }
  out += "\n}\n";
  write_file_atomic(path, out);
}

nlohmann::json pairs_json(const std::vector<std::array<int, 2>>& pairs) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : pairs) j.push_back({id3(p[0]), id3(p[1])});
  return j;
}

const char* artifact_description(SynthMethod m) {
  switch (m) {
    case SynthMethod::deepfakes:
      return "face swap: donor's inner face mis-scaled (3-7% larger or smaller per video) and shifted, 2x down/up-sampled (blurred), imperfect colour "
             "correction with per-frame flicker, elliptic mask with a 2 px feather (visible seam)";
    case SynthMethod::face2face:
      return "reenactment: donor's mouth, smile and brows on the source face; re-rendered face resampled through a "
             "small warp (bilinear blur), mouth region 2x down/up-sampled; 3 px feather";
    case SynthMethod::faceswap:
      return "face swap: donor's inner face with the donor's skin tone barely corrected and the donor's lighting "
             "direction (colour/illumination mismatch) inside the landmark hull, 1 px feather (sharp edge)";
    case SynthMethod::neural_textures:
      return "reenactment of the mouth: donor's mouth motion on the source face, blurred mouth region with a "
             "high-frequency face-attached texture pattern; 3 px feather";
    case SynthMethod::faceshifter:
      return "face swap: donor's inner face, well colour-corrected, made at half resolution and upsampled with a "
             "periodic 2x2 (checkerboard) pattern; wide 6 px feather (soft boundary)";
  }
  return "";
}

// True when `out` holds a synth.json that says the run writing it never finished.
bool interrupted_synth(const fs::path& out) {
  try {
    return !read_json_file((out / "synth.json").string(), "synth.json").value("complete", true);
  } catch (const Error&) {
    return false;
  }
}

// Refuses to overwrite anything but a previous synthetic dataset. A dataset whose writing was
// interrupted (synth.json says "complete": false) is replaced without --force: it is ours and
// unusable as it is.
void prepare_out_dir(const fs::path& out, bool replace) {
  static const char* ours[] = {"original_sequences", "manipulated_sequences", "splits", "ldm.json", "synth.json"};
  std::error_code ec;
  if (fs::exists(out, ec)) {
    FSTM_CHECK(fs::is_directory(out, ec), out.string(), ": exists and is not a directory");
    if (!fs::is_empty(out, ec)) {
      const bool interrupted = interrupted_synth(out);
      FSTM_CHECK(replace || interrupted, out.string(),
                 ": directory is not empty (pass --force to replace a previous synthetic dataset)");
      FSTM_CHECK(fs::exists(out / "synth.json"), out.string(),
                 ": not a synthetic dataset (no synth.json); refusing to delete anything there");
      for (const char* name : ours) fs::remove_all(out / name, ec);
    }
  }
  fs::create_directories(out, ec);
  FSTM_CHECK(!ec, out.string(), ": cannot create directory (", ec.message(), ")");
  // Written first, so that a run killed at any point leaves a folder the next run knows as its own.
  write_file_atomic((out / "synth.json").string(), std::string("{\"generator\": \"fstm synth\", \"complete\": false}\n"));
}

}  // namespace

SynthSummary write_synth_dataset(const SynthOptions& options, const std::string& out_dir, bool replace,
                                 const SynthProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  FSTM_CHECK(!options.methods.empty(), "synth: no manipulation methods selected");
  FSTM_CHECK(video_supported(), "synth: this fstm was built without FFmpeg and cannot encode videos");
  const fs::path out(out_dir);
  prepare_out_dir(out, replace);

  const SynthGenerator gen(options);
  const SynthSplits splits = gen.splits();
  std::vector<Compression> comps = {Compression::raw};
  if (options.compress) comps.insert(comps.end(), {Compression::c23, Compression::c40});
  for (Compression c : comps) {
    fs::create_directories(out / fs::path(real_path(c, 0)).parent_path());
    for (SynthMethod m : options.methods) fs::create_directories(out / fs::path(fake_path(m, c, 0, 1)).parent_path());
  }
  for (SynthMethod m : options.methods) fs::create_directories(out / fs::path(mask_path(m, 0, 1)).parent_path());
  fs::create_directories(out / "splits");

  const int n = options.identities, F = options.frames;
  struct FakeVideo {
    SynthMethod method;
    int a, b;
  };
  std::vector<FakeVideo> fakes;  // method by method, split by split
  for (SynthMethod m : options.methods)
    for (const auto& [a, b] : gen.fakes(m)) fakes.push_back({m, a, b});
  const int total = n + int(fakes.size());
  std::atomic<int> done{0};
  std::mutex progress_mutex;
  auto report = [&](const std::string& what) {
    const int k = ++done;
    if (!progress) return;
    std::lock_guard<std::mutex> lock(progress_mutex);
    progress(k, total, what);
  };

  // Real videos first: every fake needs its source video's frames.
  std::vector<std::vector<Image>> real_frames(n);
  std::vector<LdmVideo> ldm_real(n);
  parallel_for(n, options.threads, [&](int i) {
    LdmVideo& l = ldm_real[i];
    l.source = l.target = i;
    for (int t = 0; t < F; ++t) {
      SynthFrame f = gen.render_real(i, t);
      real_frames[i].push_back(std::move(f.image));
      l.frames.push_back(f.landmarks);
    }
    for (Compression c : comps) encode_video(real_frames[i], options.fps, c, (out / real_path(c, i)).string());
    l.relpath = real_path(Compression::raw, i);
    report(real_path(Compression::raw, i));
  });

  std::vector<LdmVideo> ldm_fake(fakes.size());
  parallel_for(int(ldm_fake.size()), options.threads, [&](int k) {
    const auto [m, a, b] = fakes[size_t(k)];
    LdmVideo& l = ldm_fake[k];
    l.source = a;
    l.target = b;
    l.det = 1;
    l.target_visible = method_shows_target_identity(synth_method_name(m));
    std::vector<Image> frames, masks;
    for (int t = 0; t < F; ++t) {
      SynthFake f = gen.render_fake(m, a, b, t, real_frames[a][t]);
      frames.push_back(std::move(f.image));
      Image mask = Image::blank(options.size, options.size);
      for (size_t i = 0; i < f.mask.size(); ++i) mask.rgb[3 * i] = mask.rgb[3 * i + 1] = mask.rgb[3 * i + 2] = f.mask[i];
      masks.push_back(std::move(mask));
      l.frames.push_back(f.landmarks);
    }
    for (Compression c : comps) encode_video(frames, options.fps, c, (out / fake_path(m, c, a, b)).string());
    l.relpath = fake_path(m, Compression::raw, a, b);
    encode_video(masks, options.fps, Compression::raw, (out / mask_path(m, a, b)).string());
    report(fake_path(m, Compression::raw, a, b));
  });

  std::vector<LdmVideo> all = std::move(ldm_real);
  all.insert(all.end(), ldm_fake.begin(), ldm_fake.end());
  write_ldm_json(all, (out / "ldm.json").string());

  write_file_atomic((out / "splits" / "train.json").string(), pairs_json(splits.train).dump() + "\n");
  write_file_atomic((out / "splits" / "val.json").string(), pairs_json(splits.val).dump() + "\n");
  write_file_atomic((out / "splits" / "test.json").string(), pairs_json(splits.test).dump() + "\n");

  nlohmann::json meta;
  meta["generator"] = "fstm synth";
  meta["format_version"] = 1;
  meta["fstm_version"] = FSTM_VERSION;
  meta["seed"] = options.seed;
  meta["identities"] = n;
  meta["frames"] = F;
  meta["size"] = options.size;
  meta["fps"] = options.fps;
  meta["swap_colour_match"] = options.swap_colour_match;
  nlohmann::json methods = nlohmann::json::array(), artifacts = nlohmann::json::object();
  for (SynthMethod m : options.methods) {
    methods.push_back(synth_method_name(m));
    artifacts[synth_method_name(m)] = artifact_description(m);
  }
  meta["methods"] = methods;
  meta["artifacts"] = artifacts;
  nlohmann::json cj = nlohmann::json::array();
  for (Compression c : comps) cj.push_back(compression_name(c));
  meta["compressions"] = cj;
  meta["splits"] = {{"train", pairs_json(splits.train)}, {"val", pairs_json(splits.val)}, {"test", pairs_json(splits.test)}};
  meta["masks"] =
      "manipulated_sequences/<Method>/masks/videos/A_B.mp4: lossless (raw) video, grey 0-255 = weight of the "
      "manipulated content in each pixel; 0 = the source video's pixel, unchanged";
  meta["ldm_key"] = "raw video path with /videos/ -> /frames/, no .mp4, + /frame_<index>, e.g. " +
                    landmark_key(fake_path(options.methods[0], Compression::raw, 3, 10), 7) +
                    "; c23/c40 frames share the raw entries";
  meta["pairing"] =
      "every identity is the source of one fake per method; its target is another identity of its split, a "
      "different one for each method where the split has enough identities (io/synth.h: SynthSplits)";
  meta["labels"] = "real NNN: det 0, source NNN, target NNN; fake A_B: det 1, source A (the video), target B (the donor)";
  meta["complete"] = true;  // written last: every video and file above is in place
  write_file_atomic((out / "synth.json").string(), meta.dump(2) + "\n");

  SynthSummary s;
  s.real_videos = n * int(comps.size());
  s.fake_videos = int(ldm_fake.size()) * int(comps.size());
  for (const auto& e : fs::recursive_directory_iterator(out))
    if (e.is_regular_file()) {
      ++s.files;
      s.bytes += int64_t(e.file_size());
    }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

// ---- contact sheet ------------------------------------------------------------------------------------

Image synth_contact_sheet(const SynthOptions& options, int t) {
  const SynthGenerator gen(options);
  const SynthSplits sp = gen.splits();
  const std::array<int, 2> pair = !sp.test.empty() ? sp.test[0] : sp.train[0];
  const int a = pair[0], b = pair[1], S = options.size, gap = 2;
  const int cols = 1 + int(options.methods.size()), rows = 4;
  Image sheet = Image::blank(cols * S + (cols - 1) * gap, rows * S + (rows - 1) * gap, 255);
  auto put = [&](const Image& im, int col, int row) {
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int ch = 0; ch < 3; ++ch)
          sheet.at(col * (S + gap) + x, row * (S + gap) + y)[ch] = im.at(x, y)[ch];
  };
  // A 2x nearest zoom of the face around the landmarks' centre.
  auto zoom = [&](const Image& im, const Landmarks68& l) {
    float cx = 0, cy = 0;
    for (const auto& p : l) cx += p[0] / 68, cy += p[1] / 68;
    Image z = Image::blank(S, S);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const int sx = std::clamp(int(cx) - S / 4 + x / 2, 0, S - 1), sy = std::clamp(int(cy) - S / 4 + y / 2, 0, S - 1);
        for (int ch = 0; ch < 3; ++ch) z.at(x, y)[ch] = im.at(sx, sy)[ch];
      }
    return z;
  };
  const SynthFrame real = gen.render_real(a, t);
  put(real.image, 0, 0);
  put(zoom(real.image, real.landmarks), 0, 1);
  put(gen.render_real(b, t).image, 0, 2);  // the donor
  for (size_t k = 0; k < options.methods.size(); ++k) {
    const SynthFake f = gen.render_fake(options.methods[k], a, b, t, real.image);
    put(f.image, int(k) + 1, 0);
    put(zoom(f.image, real.landmarks), int(k) + 1, 1);
    Image mask = Image::blank(S, S), diff = Image::blank(S, S);
    for (size_t i = 0; i < f.mask.size(); ++i)
      for (int ch = 0; ch < 3; ++ch) {
        mask.rgb[3 * i + ch] = f.mask[i];
        diff.rgb[3 * i + ch] = uint8_t(std::min(255, 4 * std::abs(int(f.image.rgb[3 * i + ch]) - int(real.image.rgb[3 * i + ch]))));
      }
    put(mask, int(k) + 1, 2);
    put(diff, int(k) + 1, 3);
  }
  return sheet;
}

}  // namespace fstm::io
