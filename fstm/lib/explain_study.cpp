#include "fstm/lib/explain_study.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

#include "io/loader.h"

namespace fstm {

namespace fs = std::filesystem;

namespace {

// The same frame of the same fake video at every compression: compression -> frames index.
std::map<std::string, int64_t> frame_at_every_compression(const io::FaceIndex& index, const io::IndexVideo& v,
                                                          int64_t frame) {
  std::map<std::string, int64_t> at;
  for (size_t f = 0; f < index.frames.size(); ++f) {
    const io::IndexVideo& w = index.videos[size_t(index.frames[f].video)];
    if (w.method == v.method && w.video_id == v.video_id && index.frames[f].frame == frame)
      at[io::compression_name(w.compression)] = int64_t(f);
  }
  return at;
}

// The first raw frame of every test fake video, per method, in index order.
std::map<std::string, std::vector<size_t>> first_test_frames(const io::FaceIndex& index) {
  std::map<std::string, std::vector<size_t>> by_method;
  std::set<std::string> seen;
  for (size_t f = 0; f < index.frames.size(); ++f) {
    const io::IndexVideo& v = index.videos[size_t(index.frames[f].video)];
    if (v.split != "test" || !v.det || v.compression != io::Compression::raw) continue;
    if (seen.insert(v.method + "/" + v.video_id).second) by_method[v.method].push_back(f);
  }
  return by_method;
}

}  // namespace

std::vector<StudyFace> pick_test_fakes(const io::FaceIndex& index, int count) {
  const std::map<std::string, std::vector<size_t>> by_method = first_test_frames(index);
  const std::vector<std::string>& methods = io::ffpp_methods();
  std::vector<StudyFace> faces;
  std::set<std::pair<std::string, size_t>> used;  // (method, position in its list)
  for (size_t round = 0; int(faces.size()) < count; ++round) {
    bool any = false;
    for (size_t k = 0; k < methods.size() && int(faces.size()) < count; ++k) {
      auto it = by_method.find(methods[k]);
      if (it == by_method.end() || round >= it->second.size()) continue;
      any = true;
      // Method k starts at its k-th video, so that one round shows several test pairs; the first
      // position not taken yet from there on.
      const size_t n = it->second.size();
      size_t pos = (k + round * methods.size()) % n;
      while (used.count({methods[k], pos})) pos = (pos + 1) % n;
      used.insert({methods[k], pos});
      const io::IndexFrame& f = index.frames[it->second[pos]];
      const io::IndexVideo& v = index.videos[size_t(f.video)];
      StudyFace face{v.video_id, methods[k], v.source_id, f.frame, v.source, v.target,
                     frame_at_every_compression(index, v, f.frame)};
      if (face.frame_at.size() == 3) faces.push_back(face);
    }
    if (!any) break;
  }
  return faces;
}

AlignedTruth aligned_truth(const io::FaceIndex& index, int64_t frame_index, int size) {
  AlignedTruth t;
  const io::IndexFrame& f = index.frames[size_t(frame_index)];
  if (f.mask_png.empty() || f.pristine_png.empty()) {
    t.why_not = f.png + ": the index has no aligned mask and pristine face for it (fstm extract writes them when "
                "the data set has mask videos)";
    return t;
  }
  t.mask = io::fit_face(io::load_image(index.path_of(f.mask_png)), index, f, size);
  t.pristine = io::fit_face(io::load_image(index.path_of(f.pristine_png)), index, f, size);
  return t;
}

io::Image replace_manipulated(const io::Image& fake, const io::Image& pristine, const io::Image& mask) {
  FSTM_CHECK(fake.width == pristine.width && fake.height == pristine.height && fake.width == mask.width &&
                 fake.height == mask.height,
             "replace_manipulated: fake ", fake.width, "x", fake.height, ", pristine ", pristine.width, "x",
             pristine.height, " and mask ", mask.width, "x", mask.height, " differ");
  io::Image out = fake;
  for (int y = 0; y < fake.height; ++y)
    for (int x = 0; x < fake.width; ++x) {
      const uint8_t* m = mask.at(x, y);
      if (std::max({m[0], m[1], m[2]}) < 128) continue;
      std::copy(pristine.at(x, y), pristine.at(x, y) + 3, out.at(x, y));
    }
  return out;
}

namespace {
template <typename Get>
MeanCi over(const std::vector<FaceStudy>& faces, Get get) {
  std::vector<double> v;
  for (const FaceStudy& f : faces) v.push_back(get(f));
  return mean_ci95(v);
}

template <typename Map>
std::map<std::string, MeanCi> over_keys(const std::vector<FaceStudy>& faces, Map FaceStudy::*member) {
  std::map<std::string, MeanCi> out;
  std::set<std::string> keys;
  for (const FaceStudy& f : faces)
    for (const auto& [k, _] : f.*member) keys.insert(k);
  for (const std::string& k : keys)
    out[k] = over(faces, [&](const FaceStudy& f) {
      auto it = (f.*member).find(k);
      return it == (f.*member).end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
    });
  return out;
}
}  // namespace

StudySummary summarize_study(const std::vector<FaceStudy>& faces) {
  StudySummary s;
  s.faces = int(faces.size());
  s.q_eq1 = over(faces, [](const FaceStudy& f) { return f.q_eq1; });
  s.q_authors = over(faces, [](const FaceStudy& f) { return f.q_authors; });
  s.delta = over_keys(faces, &FaceStudy::delta);
  s.control_lift = over_keys(faces, &FaceStudy::control_lift);
  s.baseline_lift = over_keys(faces, &FaceStudy::baseline_lift);
  s.identity_lift = over_keys(faces, &FaceStudy::identity_lift);
  s.lift = over(faces, [](const FaceStudy& f) { return f.det.lift; });
  s.lift_over_ceiling = over(faces, [](const FaceStudy& f) { return f.det.lift / f.det.lift_ceiling; });
  s.share_inside = over(faces, [](const FaceStudy& f) { return f.det.positive_share_inside; });
  s.area_share = over(faces, [](const FaceStudy& f) { return f.det.area_share; });
  s.lift_ceiling = over(faces, [](const FaceStudy& f) { return f.det.lift_ceiling; });
  s.margin_fake = over(faces, [](const FaceStudy& f) { return f.margin_fake; });
  s.margin_replaced = over(faces, [](const FaceStudy& f) { return f.margin_replaced; });
  s.margin_pristine = over(faces, [](const FaceStudy& f) { return f.margin_pristine; });
  s.v_input = over(faces, [](const FaceStudy& f) { return f.v_input; });
  s.v_baseline = over(faces, [](const FaceStudy& f) { return f.v_baseline; });
  return s;
}

bool StudySummary::beats_controls() const {
  if (control_lift.empty() || lift.n < 2) return false;
  for (const auto& [name, c] : control_lift)
    if (!(c.n >= 2 && lift.lo > c.hi)) return false;
  return true;
}

}  // namespace fstm
