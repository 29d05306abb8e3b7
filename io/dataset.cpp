#include "io/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/fs.h"
#include "io/json_file.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace fstm::io {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kOriginal = "original";

const std::vector<std::string>& ffpp_methods() {
  static const std::vector<std::string> m = {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"};
  return m;
}

const std::vector<std::string>& split_names() {
  static const std::vector<std::string> s = {"train", "val", "test"};
  return s;
}

namespace {

bool valid_id(const std::string& id) {
  if (id.empty()) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
  return true;
}

std::string id_text(const json& v, const std::string& file) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) {  // 35 -> "035": FF++ ids are three digits
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%03lld", static_cast<long long>(v.get<int64_t>()));
    return buf;
  }
  throw Error(detail::concat(file, ": ids must be strings such as \"035\""));
}

// A JSON number as the type fstm stores, refusing what would not fit: nlohmann converts 5.6e64 to
// an int with a plain cast, which is undefined behaviour (found by tests/fuzz/fuzz_face_index).
int64_t int_of(const json& v, const char* key) {
  FSTM_CHECK(v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(INT64_MAX)), "\"",
             key, "\" must be an integer, not ", v.dump());
  return v.get<int64_t>();
}
int int32_of(const json& v, const char* key) {
  const int64_t x = int_of(v, key);
  FSTM_CHECK(x >= INT32_MIN && x <= INT32_MAX, "\"", key, "\" is out of range: ", x);
  return int(x);
}
double double_of(const json& v, const char* key) {
  FSTM_CHECK(v.is_number() && std::isfinite(v.get<double>()) && std::abs(v.get<double>()) < 1e30, "\"", key,
             "\" must be a finite number, not ", v.dump());
  return v.get<double>();
}
// Optional fields of an object.
int int32_field(const json& o, const char* key, int fallback) {
  return o.contains(key) ? int32_of(o.at(key), key) : fallback;
}
int64_t int_field(const json& o, const char* key, int64_t fallback) {
  return o.contains(key) ? int_of(o.at(key), key) : fallback;
}
double double_field(const json& o, const char* key, double fallback) {
  return o.contains(key) ? double_of(o.at(key), key) : fallback;
}

std::string pair_key(const std::string& a, const std::string& b) { return a < b ? a + "|" + b : b + "|" + a; }

// 0.9f as 0.9 in the JSON, not 0.8999999761581421
double tidy(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.7g", double(v));
  return std::strtod(buf, nullptr);
}

}  // namespace

bool method_shows_target_identity(const std::string& method) {
  return method != "Face2Face" && method != "NeuralTextures";
}

void parse_video_labels(const std::string& stem, bool original, std::string& source_id, std::string& target_id) {
  if (original) {
    FSTM_CHECK(valid_id(stem), "'", stem, "' is not a real video name (expected an id such as 035)");
    source_id = target_id = stem;
    return;
  }
  const size_t us = stem.find('_');
  FSTM_CHECK(us != std::string::npos && stem.find('_', us + 1) == std::string::npos, "'", stem,
             "' is not a fake video name (expected source_target, such as 035_036)");
  source_id = stem.substr(0, us);
  target_id = stem.substr(us + 1);
  FSTM_CHECK(valid_id(source_id) && valid_id(target_id), "'", stem,
             "' is not a fake video name (expected source_target, such as 035_036)");
}

std::map<std::string, std::string> load_ffpp_splits(const std::string& dir) {
  std::map<std::string, std::string> split_of;
  for (const std::string& split : split_names()) {
    const std::string path = (fs::path(dir) / (split + ".json")).string();
    const json j = read_json_file(path, "split file");
    FSTM_CHECK(j.is_array(), path, ": expected a list of id pairs [[\"071\", \"054\"], ...]");
    for (const json& pair : j) {
      FSTM_CHECK(pair.is_array() && pair.size() == 2, path, ": every entry must be a pair [a, b], got ", pair.dump());
      const std::string a = id_text(pair[0], path), b = id_text(pair[1], path);
      for (const std::string& id : {a, b, a + "_" + b, b + "_" + a}) {
        auto [it, fresh] = split_of.emplace(id, split);
        FSTM_CHECK(fresh || it->second == split, path, ": '", id, "' is in both ", it->second, " and ", split);
      }
    }
  }
  return split_of;
}

ScanResult scan_ffpp(const std::string& root, const ScanOptions& options) {
  std::error_code ec;
  FSTM_CHECK(fs::is_directory(root, ec), root, ": not a folder");
  const fs::path r(root);
  FSTM_CHECK(fs::is_directory(r / "original_sequences", ec) || fs::is_directory(r / "manipulated_sequences", ec), root,
             ": not a FaceForensics++ tree (no original_sequences/ or manipulated_sequences/ folder)");
  ScanResult out;

  std::map<std::string, std::string> split_of;
  const std::string splits_dir = options.splits_dir.empty() ? (r / "splits").string() : options.splits_dir;
  if (fs::is_directory(splits_dir, ec)) {
    split_of = load_ffpp_splits(splits_dir);
  } else {
    FSTM_CHECK(options.splits_dir.empty(), options.splits_dir, ": no such splits folder");
    out.notes.push_back(splits_dir + ": no splits folder; every video gets split \"\"");
  }

  struct Source {
    std::string method;
    fs::path dir;  // holds {raw,c23,c40}/videos
  };
  std::vector<Source> sources;
  if (options.originals) sources.push_back({kOriginal, r / "original_sequences" / "youtube"});
  for (const std::string& m : options.methods) sources.push_back({m, r / "manipulated_sequences" / m});

  for (const Source& s : sources) {
    const bool original = s.method == kOriginal;
    for (Compression c : options.compressions) {
      const fs::path dir = s.dir / compression_name(c) / "videos";
      if (!fs::is_directory(dir, ec)) {
        out.notes.push_back(dir.string() + ": missing, skipped");
        continue;
      }
      for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".mp4") continue;
        VideoEntry v;
        v.path = e.path().string();
        v.relative = fs::relative(e.path(), r).generic_string();
        v.method = s.method;
        v.compression = c;
        v.video_id = e.path().stem().string();
        v.det = original ? 0 : 1;
        try {
          parse_video_labels(v.video_id, original, v.source_id, v.target_id);
        } catch (const Error& err) {
          out.skipped.push_back({v.path, -1, err.what()});
          continue;
        }
        auto it = split_of.find(v.video_id);
        if (it != split_of.end()) v.split = it->second;
        out.videos.push_back(std::move(v));
      }
    }
  }
  std::sort(out.videos.begin(), out.videos.end(),
            [](const VideoEntry& a, const VideoEntry& b) { return a.relative < b.relative; });
  return out;
}

// ==== the index ===================================================================================

std::string mask_video_path(const std::string& root, const std::string& method, const std::string& video_id) {
  return (fs::path(root) / "manipulated_sequences" / method / "masks" / "videos" / (video_id + ".mp4")).string();
}

std::string pristine_video_path(const std::string& root, Compression compression, const std::string& source_id) {
  return (fs::path(root) / "original_sequences" / "youtube" / compression_name(compression) / "videos" /
          (source_id + ".mp4"))
      .string();
}

std::string FaceIndex::png_path(const IndexFrame& f) const { return path_of(f.png); }
std::string FaceIndex::path_of(const std::string& relative) const { return (fs::path(root) / relative).string(); }

int64_t FaceIndex::skipped_count(const std::string& category) const {
  return std::count_if(skipped.begin(), skipped.end(), [&](const SkipRecord& s) { return s.category() == category; });
}

void FaceIndex::assign_identities() {
  // each identity goes to the first split (train, val, test, none) it appears in
  const std::vector<std::string> order = {"train", "val", "test", ""};
  std::map<std::string, size_t> rank_of;  // id -> best split rank
  for (const IndexVideo& v : videos) {
    const size_t rank = size_t(std::find(order.begin(), order.end(), v.split) - order.begin());
    for (const std::string& id : {v.source_id, v.target_id}) {
      auto [it, fresh] = rank_of.emplace(id, rank);
      if (!fresh) it->second = std::min(it->second, rank);
    }
  }
  identities.clear();
  identity_splits.clear();
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const int begin = int(identities.size());
    for (const auto& [id, r] : rank_of)  // std::map: sorted ids
      if (r == rank) identities.push_back(id);
    if (int(identities.size()) > begin) identity_splits[order[rank].empty() ? "none" : order[rank]] = {begin, int(identities.size())};
  }
  std::map<std::string, int> index_of;
  for (size_t i = 0; i < identities.size(); ++i) index_of[identities[i]] = int(i);
  for (IndexVideo& v : videos) {
    v.source = index_of.at(v.source_id);
    v.target = index_of.at(v.target_id);
  }
}

void FaceIndex::save(const std::string& path) {
  const fs::path p = fs::absolute(path);
  const fs::path new_root = p.parent_path();
  if (!root.empty() && fs::path(root).lexically_normal() != new_root.lexically_normal()) {
    // saved somewhere else (a subset): keep the PNG paths pointing at the same files
    auto moved = [&](std::string& rel) {
      if (!rel.empty()) rel = (fs::path(root) / rel).lexically_normal().lexically_relative(new_root).generic_string();
    };
    for (IndexFrame& f : frames)
      for (std::string* rel : {&f.png, &f.mask_png, &f.pristine_png}) moved(*rel);
  }
  root = new_root.string();
  json j;
  j["format"] = "fstm-face-index";
  j["version"] = 1;
  const IndexSettings& s = settings;
  j["settings"] = {{"data", s.data},
                   {"frames", s.frames},
                   {"size", s.size},
                   {"align", s.align},
                   {"scale", tidy(s.scale)},
                   {"face_width", tidy(s.face_width)},
                   {"context", tidy(s.context)},
                   {"box_enlarge", tidy(s.box_enlarge)},
                   {"upsample", s.upsample},
                   {"detect_size", s.detect_size},
                   {"landmarks", s.landmarks},
                   {"methods", s.methods},
                   {"compressions", s.compressions},
#ifdef FSTM_VERSION
                   {"fstm", FSTM_VERSION}
#else
                   {"fstm", "unknown"}
#endif
  };
  j["identities"] = identities;
  json ranges = json::object();
  for (const auto& [split, range] : identity_splits) ranges[split] = {range.first, range.second};
  j["identity_splits"] = ranges;

  std::vector<json> vids(videos.size());
  for (size_t i = 0; i < videos.size(); ++i) {
    const IndexVideo& v = videos[i];
    vids[i] = {{"video", v.video},   {"video_id", v.video_id}, {"method", v.method},
               {"compression", compression_name(v.compression)}, {"split", v.split},
               {"det", v.det},       {"source", v.source},     {"target", v.target},
               {"source_id", v.source_id}, {"target_id", v.target_id}, {"target_visible", v.target_visible},
               {"frame_count", v.frame_count}, {"fps", v.fps}, {"frames", json::array()}};
  }
  for (const IndexFrame& f : frames) {
    FSTM_CHECK(f.video >= 0 && size_t(f.video) < videos.size(), path, ": frame refers to video ", f.video,
               " of ", videos.size());
    json jf = {{"frame", f.frame}, {"png", f.png}};
    if (f.has_points) {
      json pts = json::array();
      for (const Point2& q : f.points) pts.push_back({tidy(q.x), tidy(q.y)});
      jf["points"] = pts;
    }
    if (!f.mask_png.empty()) jf["mask_png"] = f.mask_png;
    if (!f.pristine_png.empty()) jf["pristine_png"] = f.pristine_png;
    vids[size_t(f.video)]["frames"].push_back(std::move(jf));
  }
  j["videos"] = std::move(vids);
  json sk = json::array();
  for (const SkipRecord& r : skipped)
    sk.push_back({{"path", r.path}, {"frame", r.frame}, {"reason", r.reason}, {"kind", r.category()}});
  j["skipped"] = sk;
  j["counts"] = {{"videos", videos.size()},
                 {"frames", frames.size()},
                 {"skipped_videos", skipped_videos()},
                 {"skipped_frames", skipped_frames()},
                 {"skipped_landmarks", skipped_count("landmarks")},
                 {"without_ground_truth", skipped_count("ground truth")}};

  if (!p.parent_path().empty()) fs::create_directories(p.parent_path());
  // Never a half-written index under the real name; large indexes compact (FF++: ~200k frames).
  write_file_atomic(p.string(), frames.size() > 10000 ? j.dump() : j.dump(1));
}

FaceIndex FaceIndex::load(const std::string& path) {
  const json j = read_json_file(path, "index");
  FaceIndex ix;
  ix.root = fs::absolute(path).parent_path().string();
  try {
    FSTM_CHECK(j.is_object() && j.contains("format") && j.at("format") == "fstm-face-index",
               "not an fstm face index (written by fstm extract)");
    const json version = j.contains("version") ? j.at("version") : json();
    FSTM_CHECK(version == 1, "index version ", version.dump(), " is not supported");
    const json& s = j.at("settings");
    IndexSettings& st = ix.settings;
    st.data = s.value("data", "");
    st.frames = int32_field(s, "frames", 32);
    st.size = int32_field(s, "size", 224);
    st.align = s.value("align", "landmarks");
    st.scale = float(double_field(s, "scale", 0.9));
    st.face_width = float(double_field(s, "face_width", 80.0));
    st.context = float(double_field(s, "context", 1.0));
    st.box_enlarge = float(double_field(s, "box_enlarge", 1.3));
    st.upsample = int32_field(s, "upsample", 1);
    st.detect_size = int32_field(s, "detect_size", 0);
    st.landmarks = s.value("landmarks", "");
    st.methods = s.value("methods", std::vector<std::string>{});
    st.compressions = s.value("compressions", std::vector<std::string>{});
    ix.identities = j.at("identities").get<std::vector<std::string>>();
    const json ranges = j.value("identity_splits", json::object());  // kept alive for the loop
    for (const auto& [split, range] : ranges.items())
      ix.identity_splits[split] = {int32_of(range.at(0), "identity_splits"), int32_of(range.at(1), "identity_splits")};
    for (const json& v : j.at("videos")) {
      IndexVideo iv;
      iv.video = v.at("video").get<std::string>();
      iv.video_id = v.at("video_id").get<std::string>();
      iv.method = v.at("method").get<std::string>();
      iv.compression = parse_compression(v.at("compression").get<std::string>());
      iv.split = v.value("split", "");
      iv.det = int32_of(v.at("det"), "det");
      iv.source = int32_of(v.at("source"), "source");
      iv.target = int32_of(v.at("target"), "target");
      iv.source_id = v.value("source_id", "");
      iv.target_id = v.value("target_id", "");
      iv.target_visible = v.value("target_visible", method_shows_target_identity(iv.method));
      iv.frame_count = int_field(v, "frame_count", 0);
      iv.fps = double_field(v, "fps", 0.0);
      FSTM_CHECK(iv.det == 0 || iv.det == 1, "video ", iv.video, ": det ", iv.det, " is not 0 or 1");
      FSTM_CHECK(iv.source >= 0 && iv.source < int(ix.identities.size()) && iv.target >= 0 &&
                     iv.target < int(ix.identities.size()),
                 "video ", iv.video, ": identity classes ", iv.source, "/", iv.target, " outside 0..",
                 ix.identities.size() - 1);
      const int32_t vi = int32_t(ix.videos.size());
      for (const json& f : v.at("frames")) {
        IndexFrame fr;
        fr.video = vi;
        fr.frame = int_of(f.at("frame"), "frame");
        fr.png = f.at("png").get<std::string>();
        if (f.contains("points")) {
          const json& pts = f["points"];
          FSTM_CHECK(pts.is_array() && pts.size() == 5, "frame ", fr.png, ": \"points\" must be 5 [x, y]");
          for (size_t i = 0; i < 5; ++i)
            fr.points[i] = {float(double_of(pts[i].at(0), "points")), float(double_of(pts[i].at(1), "points"))};
          fr.has_points = true;
        }
        fr.mask_png = f.value("mask_png", "");
        fr.pristine_png = f.value("pristine_png", "");
        ix.frames.push_back(std::move(fr));
      }
      ix.videos.push_back(std::move(iv));
    }
    for (const json& s2 : j.value("skipped", json::array()))
      ix.skipped.push_back(
          {s2.value("path", ""), int_field(s2, "frame", -1), s2.value("reason", ""), s2.value("kind", "")});
  } catch (const json::exception& e) {
    throw Error(detail::concat(path, ": malformed index (", e.what(), ")"));
  } catch (const Error& e) {
    throw Error(detail::concat(path, ": ", e.what()));
  }
  return ix;
}

// ==== hypothesis 2 ================================================================================

H2Subsets build_h2_subsets(const FaceIndex& index, int identities, uint64_t seed, const std::string& split) {
  FSTM_CHECK(identities >= 2 && identities % 2 == 0, "H2 subsets: the number of identities must be even and >= 2, got ",
             identities);
  std::set<std::string> reals;
  std::map<std::string, std::set<std::string>> fake_dirs;  // pair key -> {"a_b", "b_a"} present
  for (const IndexVideo& v : index.videos) {
    if (v.split != split) continue;
    if (v.det == 0) reals.insert(v.source_id);
    else fake_dirs[pair_key(v.source_id, v.target_id)].insert(v.source_id + "_" + v.target_id);
  }
  // pairs with fakes in both directions, in a seeded random order
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [key, dirs] : fake_dirs) {
    if (dirs.size() < 2) continue;
    const size_t bar = key.find('|');
    pairs.emplace_back(key.substr(0, bar), key.substr(bar + 1));
  }
  Rng rng(seed);
  for (size_t i = pairs.size(); i > 1; --i) std::swap(pairs[i - 1], pairs[rng.below(i)]);

  const size_t want = size_t(identities / 2);
  std::set<std::string> used;
  std::vector<std::pair<std::string, std::string>> p, q;
  for (const auto& pr : pairs) {  // P: both reals present, identities not yet used
    if (p.size() == want) break;
    if (reals.count(pr.first) && reals.count(pr.second) && !used.count(pr.first) && !used.count(pr.second)) {
      p.push_back(pr);
      used.insert(pr.first);
      used.insert(pr.second);
    }
  }
  for (const auto& pr : pairs) {  // Q: fakes only, disjoint from P and from each other
    if (q.size() == want) break;
    if (!used.count(pr.first) && !used.count(pr.second)) {
      q.push_back(pr);
      used.insert(pr.first);
      used.insert(pr.second);
    }
  }
  FSTM_CHECK(p.size() == want && q.size() == want, "H2 subsets: the ", split, " split has ", pairs.size(),
             " identity pairs with fakes in both directions; ", p.size(), " usable as paired and ", q.size(),
             " as unpaired, but ", want, " of each are needed for ", identities, " identities");

  std::set<std::string> real_ids, p_keys, q_keys;
  for (const auto& pr : p) real_ids.insert(pr.first), real_ids.insert(pr.second), p_keys.insert(pair_key(pr.first, pr.second));
  for (const auto& pr : q) q_keys.insert(pair_key(pr.first, pr.second));
  auto in = [&](const std::set<std::string>& fake_keys) {
    return [&, fake_keys](const IndexVideo& v) {
      if (v.split != split) return false;
      if (v.det == 0) return real_ids.count(v.source_id) > 0;
      return fake_keys.count(pair_key(v.source_id, v.target_id)) > 0;
    };
  };
  H2Subsets out;
  out.paired = index.subset(in(p_keys));
  out.unpaired = index.subset(in(q_keys));
  out.real_pairs = p;
  out.unpaired_fake_pairs = q;
  return out;
}

}  // namespace fstm::io
