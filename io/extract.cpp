#include "io/extract.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "io/fs.h"
#include "tensor/error.h"

namespace fstm::io {

namespace fs = std::filesystem;

namespace {

// Runs work(i) for i < n on `jobs` threads (each takes the next video when it is free). work must
// not throw: each video's problems are its own.
template <typename Work>
void for_each_video(size_t n, int jobs, Work work) {
  std::atomic<size_t> next{0};
  auto loop = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) work(i);
  };
  const int threads = std::max(1, std::min<int>(jobs, int(n)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(loop);
  loop();
  for (auto& t : pool) t.join();
}

struct VideoResult {
  bool ok = false;
  IndexVideo video;
  std::vector<IndexFrame> frames;
  std::vector<SkipRecord> skipped;
  LandmarkMap detected;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A fake's ground-truth frames at the indices its faces come from: the mask video's and the
// pristine video's (io/dataset.h). Empty when the tree lacks either, or for real videos. A bad
// ground-truth video is recorded in `skipped` and the faces are extracted without it.
struct TruthFrames {
  std::vector<Image> mask, pristine;
  bool present() const { return !mask.empty(); }
};

TruthFrames truth_frames(const std::string& root, const VideoEntry& v, const std::vector<int64_t>& idx,
                         const std::vector<Image>& faces, std::vector<SkipRecord>& skipped) {
  TruthFrames t;
  if (v.det == 0) return t;
  const std::string mask = mask_video_path(root, v.method, v.video_id);
  const std::string pristine = pristine_video_path(root, v.compression, v.source_id);
  if (!fs::exists(mask) || !fs::exists(pristine)) return t;
  for (const auto& [path, frames] : {std::pair{mask, &t.mask}, std::pair{pristine, &t.pristine}}) {
    try {
      *frames = decode_video_frames_at(path, idx);
      for (size_t k = 0; k < idx.size(); ++k)
        FSTM_CHECK((*frames)[k].width == faces[k].width && (*frames)[k].height == faces[k].height, path, ": frame ",
                   idx[k], " is ", (*frames)[k].width, "x", (*frames)[k].height, ", the fake's is ", faces[k].width,
                   "x", faces[k].height);
    } catch (const Error& e) {
      // Recorded under the fake (extracted all the same); the unreadable video is reported as itself.
      skipped.push_back({v.path, -1, std::string("no aligned mask and pristine face: ") + e.what(), "ground truth"});
      return {};
    }
  }
  return t;
}

// Writes image under `out` as `relative` (creating its folder) and returns `relative`.
std::string save_under(const std::string& out, const std::string& relative, const Image& image) {
  const fs::path path = fs::path(out) / relative;
  fs::create_directories(path.parent_path());
  save_image(image, path.string());
  return relative;
}

}  // namespace

ExtractReport extract_faces(const ExtractOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  FSTM_CHECK(!o.out.empty(), "extract: no output folder given");
  FSTM_CHECK(o.align == "landmarks" || o.align == "box", "extract: --align must be landmarks or box, not '", o.align, "'");
  FSTM_CHECK(o.alignment.canvas >= 16 && o.alignment.canvas <= 4096, "extract: size ", o.alignment.canvas,
             " is not in 16..4096");
  FSTM_CHECK(o.jobs >= 1, "extract: jobs must be >= 1");
  const int size = aligned_size(o.alignment);

  const ScanResult scan = scan_ffpp(o.data, o.scan);
  FSTM_CHECK(!scan.videos.empty(), o.data, ": no videos found for the chosen methods and compressions");
  // A run killed earlier in this folder left temporary files of the PNGs it was writing.
  if (fs::is_directory(o.out)) remove_stale_temp_files(o.out, /*recursive=*/true);
  FSTM_CHECK(o.max_bad_fraction >= 0 && o.max_bad_fraction <= 1, "extract: max_bad_fraction ", o.max_bad_fraction,
             " is not in [0, 1]");
  LandmarkMap given;
  std::vector<SkipRecord> bad_entries;  // malformed ldm.json entries, skipped
  std::unique_ptr<FaceDetector> detector;
  if (!o.landmarks.empty()) {
    given = load_landmarks(o.landmarks, &bad_entries);
  } else {
    detector = std::make_unique<FaceDetector>(default_landmark_model(), o.upsample, o.detect_size);
  }

  std::vector<VideoResult> results(scan.videos.size());
  std::mutex report_mu;
  int64_t done = 0;

  for_each_video(scan.videos.size(), o.jobs, [&](size_t i) {
    const VideoEntry& v = scan.videos[i];
    VideoResult& res = results[i];
    res.video.video = v.relative;
    res.video.video_id = v.video_id;
    res.video.method = v.method;
    res.video.split = v.split;
    res.video.compression = v.compression;
    res.video.det = v.det;
    res.video.source_id = v.source_id;
    res.video.target_id = v.target_id;
    res.video.target_visible = v.det == 0 || method_shows_target_identity(v.method);
    try {
      VideoInfo info;
      std::vector<int64_t> idx;
      std::vector<Image> images = decode_video_frames(v.path, o.frames, &info, &idx);
      res.video.frame_count = info.frame_count;
      res.video.fps = info.fps;
      const TruthFrames truth = o.ground_truth ? truth_frames(o.data, v, idx, images, res.skipped) : TruthFrames{};
      for (size_t k = 0; k < images.size(); ++k) {
        const Image& im = images[k];
        const int64_t fi = idx[k];
        const std::string key = landmark_key(v.relative, fi);
        try {
          std::vector<Point2> ld;
          std::optional<FaceBox> box;
          if (detector) {
            auto face = detector->detect_largest(im);
            if (!face) {
              res.skipped.push_back({v.path, fi, "no face found"});
              continue;
            }
            ld = face->landmarks;
            box = face->box;
            res.detected[key] = {ld, v.source_id, v.target_id, v.det};
          } else {
            const LandmarkEntry* e = find_landmarks(given, v.relative, fi);
            if (!e) {
              res.skipped.push_back({v.path, fi, "no entry '" + key + "' in " + o.landmarks});
              continue;
            }
            ld = e->landmark;
          }
          const FivePoints p5 = five_points(ld);
          if (o.align == "box" && !box) {
            if (ld.size() == 5) {
              res.skipped.push_back({v.path, fi, "--align box needs 68/81 landmarks or the detector, '" + key +
                                                     "' has 5 points"});
              continue;
            }
            box = landmark_box(ld);
          }
          // the face, and its ground truth placed exactly like it
          Mat3 to_face;
          auto place = [&](const Image& frame) {
            if (o.align == "landmarks") return align_face(frame, p5, o.alignment, &to_face);
            return crop_face(frame, ffpp_crop(*box, frame.width, frame.height, o.box_enlarge), size, &to_face);
          };
          IndexFrame f;
          f.frame = fi;
          f.png = save_under(o.out, key + ".png", place(im));
          f.has_points = true;
          for (int p = 0; p < 5; ++p) f.points[size_t(p)] = to_face.apply(p5[size_t(p)]);
          if (truth.present()) {
            f.mask_png = save_under(o.out, key + ".mask.png", place(truth.mask[k]));
            f.pristine_png = save_under(o.out, key + ".pristine.png", place(truth.pristine[k]));
          }
          res.frames.push_back(std::move(f));
        } catch (const Error& e) {
          res.skipped.push_back({v.path, fi, e.what()});
        }
      }
      if (res.frames.empty()) res.skipped.push_back({v.path, -1, "no usable frame (see the frames above)"});
      res.ok = !res.frames.empty();
    } catch (const std::exception& e) {  // the video itself: missing, corrupt, truncated, no video stream
      res.skipped.push_back({v.path, -1, e.what()});
    }
    std::lock_guard<std::mutex> lock(report_mu);
    ++done;
    if (o.on_video) o.on_video(done, int64_t(scan.videos.size()), res.skipped);
  });

  ExtractReport rep;
  FaceIndex& ix = rep.index;
  IndexSettings& s = ix.settings;
  s.data = fs::absolute(o.data).string();
  s.frames = o.frames;
  s.size = o.alignment.canvas;
  s.align = o.align;
  s.scale = o.alignment.scale;
  s.face_width = o.alignment.face_width;
  s.context = o.alignment.context;
  s.box_enlarge = o.box_enlarge;
  s.upsample = o.upsample;
  s.detect_size = o.detect_size;
  s.landmarks = o.landmarks.empty() ? "" : fs::absolute(o.landmarks).string();
  s.methods = o.scan.methods;
  if (o.scan.originals) s.methods.insert(s.methods.begin(), kOriginal);
  for (Compression c : o.scan.compressions) s.compressions.push_back(compression_name(c));
  for (const SkipRecord& r : scan.skipped) ix.skipped.push_back(r);
  for (const SkipRecord& r : bad_entries) ix.skipped.push_back(r);
  rep.bad_landmarks = int64_t(bad_entries.size());
  rep.bad_videos = int64_t(scan.skipped.size());
  LandmarkMap detected;
  for (VideoResult& r : results) {
    for (SkipRecord& sk : r.skipped) ix.skipped.push_back(std::move(sk));
    if (!r.ok) ++rep.bad_videos;
    if (!r.ok) continue;
    const int32_t vi = int32_t(ix.videos.size());
    ix.videos.push_back(std::move(r.video));
    for (IndexFrame& f : r.frames) {
      f.video = vi;
      ix.frames.push_back(std::move(f));
    }
    detected.merge(r.detected);
  }
  ix.assign_identities();
  rep.index_path = (fs::path(o.out) / o.index_name).string();
  ix.save(rep.index_path);
  if (detector) {
    rep.landmarks_path = (fs::path(o.out) / "ldm.json").string();
    save_landmarks(detected, rep.landmarks_path);
  }
  rep.videos = int64_t(ix.videos.size());
  rep.frames = int64_t(ix.frames.size());
  rep.seconds = seconds_since(t0);
  const int64_t total = int64_t(scan.videos.size() + scan.skipped.size());
  FSTM_CHECK(double(rep.bad_videos) <= o.max_bad_fraction * double(total), o.data, ": ", rep.bad_videos, " of ", total,
             " videos could not be used, more than --max-bad-fraction ", o.max_bad_fraction,
             ": the tree looks broken. Each is listed with its reason under \"skipped\" in ", rep.index_path);
  return rep;
}

CompressReport compress_ffpp(const CompressOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  FSTM_CHECK(!o.targets.empty(), "compress: no target compression");
  for (Compression c : o.targets)
    FSTM_CHECK(c != Compression::raw, "compress: raw is the source; the targets are c23 and/or c40");
  ScanOptions scan_opt = o.scan;
  scan_opt.compressions = {Compression::raw};
  const ScanResult scan = scan_ffpp(o.data, scan_opt);
  FSTM_CHECK(!scan.videos.empty(), o.data, ": no raw videos found (expected .../raw/videos/*.mp4)");

  CompressReport rep;
  for (const SkipRecord& r : scan.skipped) rep.failed.push_back(r);
  std::mutex mu;
  int64_t done = 0;
  for_each_video(scan.videos.size(), o.jobs, [&](size_t i) {
    const VideoEntry& v = scan.videos[i];
    std::vector<SkipRecord> problems;
    int64_t written = 0, existing = 0;
    // .../<method>/raw/videos/X.mp4 -> .../<method>/<c>/videos/X.mp4
    const fs::path videos_dir = fs::path(v.path).parent_path();
    const fs::path method_dir = videos_dir.parent_path().parent_path();
    std::vector<Compression> todo;
    std::vector<fs::path> dst;
    for (Compression c : o.targets) {
      const fs::path d = method_dir / compression_name(c) / "videos" / fs::path(v.path).filename();
      if (fs::exists(d) && !o.overwrite) {
        ++existing;
        continue;
      }
      todo.push_back(c);
      dst.push_back(d);
    }
    if (!todo.empty()) {
      try {
        VideoReader reader(v.path);
        const VideoInfo& info = reader.info();
        FSTM_CHECK(info.fps > 0, v.path, ": unknown frame rate");
        std::vector<std::unique_ptr<VideoWriter>> writers;
        for (size_t k = 0; k < todo.size(); ++k)
          writers.push_back(std::make_unique<VideoWriter>(dst[k].string() + ".partial", info.width, info.height,
                                                          info.fps, todo[k]));
        Image frame;
        while (reader.read(&frame))
          for (auto& w : writers) w->write(frame);
        for (size_t k = 0; k < todo.size(); ++k) {
          writers[k]->finish();
          fs::rename(dst[k].string() + ".partial", dst[k]);  // complete files only under the real name
          ++written;
        }
      } catch (const std::exception& e) {
        problems.push_back({v.path, -1, e.what()});
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    rep.written += written;
    rep.existing += existing;
    for (auto& p : problems) rep.failed.push_back(p);
    ++done;
    if (o.on_video) o.on_video(done, int64_t(scan.videos.size()), problems);
  });
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace fstm::io
