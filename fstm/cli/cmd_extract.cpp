// fstm extract: faces from an FF++ tree -> aligned PNGs + an index for training and evaluation.
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/lib/progress.h"
#include "io/extract.h"

namespace fstm::cli {

namespace {

// "--methods none" (or an empty value) selects no manipulation method: only the real videos.
std::vector<std::string> method_list(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names)
    if (!n.empty() && n != "none") out.push_back(n);
  return out;
}

std::vector<io::Compression> parse_compressions(const std::vector<std::string>& names) {
  std::vector<io::Compression> out;
  for (const auto& n : names) out.push_back(io::parse_compression(n));
  return out;
}

// A progress bar over videos that prints the first `limit` problems above itself.
struct VideoProgress {
  ProgressBar bar;
  int limit = 20;
  int64_t shown = 0;

  VideoProgress(const char* label, int64_t videos) : bar(label, videos, "videos", progress_stream()) {}
  std::function<void(int64_t, int64_t, const std::vector<io::SkipRecord>&)> callback() {
    return [this](int64_t, int64_t, const std::vector<io::SkipRecord>& problems) {
      for (const auto& p : problems) {
        if (shown >= limit) break;
        bar.note("skipped " + p.path + (p.frame >= 0 ? " frame " + std::to_string(p.frame) : "") + ": " + p.reason);
        if (++shown == limit) bar.note("(further problems are not printed; all are listed in the index)");
      }
      bar.add();
    };
  }
};

}  // namespace

Command make_extract_command() {
  struct Flags {
    std::string data, out, landmarks, splits, index = "index.json", align = "landmarks";
    int frames = 32, size = 224, upsample = 1, detect_size = 0, jobs = 2;
    float face_width = 0, scale = 0.9f, context = 1.0f, box_enlarge = 1.3f;
    std::vector<std::string> compressions{"raw", "c23", "c40"};
    std::vector<std::string> methods = io::ffpp_methods();
    bool no_originals = false, no_ground_truth = false;
    double max_bad_fraction = io::kDefaultMaxBadFraction;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    CLI::App* s = app.add_subcommand("extract", "Extract aligned faces from a FaceForensics++ tree into PNGs and an index");
    s->add_option("--data", f->data, "FF++ root (original_sequences/, manipulated_sequences/, splits/)")->required();
    s->add_option("--out", f->out, "Output folder for the face PNGs, index.json and ldm.json")->required();
    s->add_option("--frames", f->frames, "Frames per video, evenly spaced (0 = all)")->capture_default_str();
    s->add_option("--size", f->size, "Output face size in pixels (the alignment canvas)")->capture_default_str();
    s->add_option("--align", f->align, "landmarks: 5-point alignment (FST-Matching); box: FF++ crop (dlib box x1.3)")
        ->check(CLI::IsMember({"landmarks", "box"}))
        ->capture_default_str();
    s->add_option("--compression", f->compressions, "Compressions to extract (comma-separated)")
        ->delimiter(',')
        ->check(CLI::IsMember({"raw", "c23", "c40"}))
        ->capture_default_str();
    s->add_option("--methods", f->methods, "Manipulation methods (comma-separated; none = only the real videos)")
        ->delimiter(',')
        ->capture_default_str();
    s->add_flag("--no-originals", f->no_originals, "Leave out the real videos");
    s->add_flag("--no-ground-truth", f->no_ground_truth,
                "Do not write the fakes' aligned masks and pristine faces (X.mask.png, X.pristine.png)");
    s->add_option("--landmarks", f->landmarks, "ldm.json with the landmarks to use instead of the dlib detector");
    s->add_option("--max-bad-fraction", f->max_bad_fraction,
                  "Share of the videos that may be unusable (each is reported and skipped) before extract fails")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    s->add_option("--splits", f->splits, "Folder with train/val/test.json (default: DATA/splits)");
    s->add_option("--index", f->index, "Index file name inside --out")->capture_default_str();
    s->add_option("--face-width", f->face_width,
                  "Alignment face width w in pixels (r = w / (0.34967 size)); default 80 * size / 224, the "
                  "authors' framing at any size");
    s->add_option("--scale", f->scale, "Alignment template scale")->capture_default_str();
    s->add_option("--context", f->context, "Save context around the face: PNGs are size*context wide (>= 1)")
        ->capture_default_str();
    s->add_option("--box-enlarge", f->box_enlarge, "Box crop: enlargement of the dlib box")->capture_default_str();
    s->add_option("--upsample", f->upsample, "dlib detector upsampling (0 is ~4x faster, misses faces under 80 px)")
        ->capture_default_str();
    s->add_option("--detect-size", f->detect_size,
                  "Detect faces on frames scaled to this longer side, e.g. 640 (0 = full size; landmarks "
                  "always use the full frame)")
        ->capture_default_str();
    s->add_option("--jobs", f->jobs, "Videos processed in parallel")->capture_default_str();
    return s;
  };
  c.run = [f] {
    io::ExtractOptions o;
    o.data = f->data;
    o.out = f->out;
    o.index_name = f->index;
    o.frames = f->frames;
    o.align = f->align;
    o.alignment.canvas = f->size;
    // The template's face width is in pixels: keep the authors' 80-of-224 framing at other sizes.
    o.alignment.face_width = f->face_width > 0 ? f->face_width : 80.0f * float(f->size) / 224.0f;
    o.alignment.scale = f->scale;
    o.alignment.context = f->context;
    o.box_enlarge = f->box_enlarge;
    o.landmarks = f->landmarks;
    o.upsample = f->upsample;
    o.detect_size = f->detect_size;
    o.jobs = f->jobs;
    o.ground_truth = !f->no_ground_truth;
    o.max_bad_fraction = f->max_bad_fraction;
    o.scan.methods = method_list(f->methods);
    o.scan.originals = !f->no_originals;
    o.scan.compressions = parse_compressions(f->compressions);
    o.scan.splits_dir = f->splits;

    const io::ScanResult preview = io::scan_ffpp(o.data, o.scan);
    for (const auto& n : preview.notes) std::cerr << "note: " << n << "\n";
    VideoProgress progress("extract", int64_t(preview.videos.size()));
    o.on_video = progress.callback();
    const io::ExtractReport r = io::extract_faces(o);
    progress.bar.finish();
    std::cout << "extracted " << r.frames << " faces from " << r.videos << " videos in "
              << ProgressBar::format_duration(r.seconds) << " (" << (r.seconds > 0 ? r.frames / r.seconds : 0.0)
              << " faces/s)\n";
    std::cout << "skipped: " << r.bad_videos << " unusable videos, " << r.index.skipped_frames() << " frames, "
              << r.bad_landmarks << " malformed landmark entries (each listed with its reason under \"skipped\" in "
              << "the index)\n";
    std::cout << "identities: " << r.index.identities.size() << "\n";
    std::cout << "index: " << r.index_path << "\n";
    if (!r.landmarks_path.empty()) std::cout << "landmarks: " << r.landmarks_path << "\n";
    return 0;
  };
  return c;
}

Command make_compress_command() {
  struct Flags {
    std::string data, splits;
    std::vector<std::string> targets{"c23", "c40"};
    std::vector<std::string> methods = io::ffpp_methods();
    bool no_originals = false, overwrite = false;
    int jobs = 2;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    CLI::App* s = app.add_subcommand("compress", "Write the c23/c40 versions of an FF++ tree's raw videos (libx264 CRF 23/40)");
    s->add_option("--data", f->data, "FF++ root with .../raw/videos/*.mp4")->required();
    s->add_option("--compression", f->targets, "Targets (comma-separated)")
        ->delimiter(',')
        ->check(CLI::IsMember({"c23", "c40"}))
        ->capture_default_str();
    s->add_option("--methods", f->methods, "Manipulation methods (comma-separated; none = only the real videos)")
        ->delimiter(',')
        ->capture_default_str();
    s->add_flag("--no-originals", f->no_originals, "Leave out the real videos");
    s->add_flag("--overwrite", f->overwrite, "Re-encode videos that already exist");
    s->add_option("--jobs", f->jobs, "Videos encoded in parallel")->capture_default_str();
    return s;
  };
  c.run = [f] {
    io::CompressOptions o;
    o.data = f->data;
    o.targets = parse_compressions(f->targets);
    o.scan.methods = method_list(f->methods);
    o.scan.originals = !f->no_originals;
    o.overwrite = f->overwrite;
    o.jobs = f->jobs;
    io::ScanOptions raw_only = o.scan;
    raw_only.compressions = {io::Compression::raw};
    const io::ScanResult preview = io::scan_ffpp(o.data, raw_only);
    VideoProgress progress("compress", int64_t(preview.videos.size()));
    o.on_video = progress.callback();
    const io::CompressReport r = io::compress_ffpp(o);
    progress.bar.finish();
    std::cout << "wrote " << r.written << " videos, " << r.existing << " already there, " << r.failed.size()
              << " failed, in " << ProgressBar::format_duration(r.seconds) << "\n";
    return r.failed.empty() ? 0 : 1;
  };
  return c;
}

Command make_subsets_command() {
  struct Flags {
    std::string index, out, split = "train";
    int identities = 40;
    uint64_t seed = 0;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    CLI::App* s = app.add_subcommand(
        "subsets", "Hypothesis 2: paired and unpaired training indexes of N identities from an extracted index");
    s->add_option("--index", f->index, "index.json written by fstm extract")->required();
    s->add_option("--out", f->out, "Folder for paired.json and unpaired.json")->required();
    s->add_option("--identities", f->identities, "Real identities per subset (even)")->capture_default_str();
    s->add_option("--seed", f->seed, "Seed of the pair choice")->capture_default_str();
    s->add_option("--split", f->split, "Split to draw from")->capture_default_str();
    return s;
  };
  c.run = [f] {
    const io::FaceIndex ix = io::FaceIndex::load(f->index);
    io::H2Subsets h = io::build_h2_subsets(ix, f->identities, f->seed, f->split);
    const std::string paired = f->out + "/paired.json", unpaired = f->out + "/unpaired.json";
    h.paired.save(paired);
    h.unpaired.save(unpaired);
    auto describe = [](const io::FaceIndex& s) {
      int64_t reals = 0, fakes = 0;
      for (const auto& v : s.videos) (v.det ? fakes : reals)++;
      return std::to_string(reals) + " real and " + std::to_string(fakes) + " fake videos, " +
             std::to_string(s.frames.size()) + " frames, " + std::to_string(s.identities.size()) + " identities";
    };
    std::cout << "paired:   " << paired << ": " << describe(h.paired) << "\n";
    std::cout << "unpaired: " << unpaired << ": " << describe(h.unpaired) << "\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
