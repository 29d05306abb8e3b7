// fstm demo: the whole method on the embedded synthetic data (fstm/lib/demo.h), the README's main
// job. Ctrl-C (SIGINT) or SIGTERM saves the training in progress and exits with 128 + the signal;
// running the same command again continues where it stopped.
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/cli/stop_signal.h"
#include "fstm/lib/demo.h"
#include "fstm/lib/progress.h"

namespace fstm::cli {

Command make_demo_command() {
  struct Flags {
    std::string out = "demo_out";
    bool quick = false, progress = true;
    int threads = 0;
    uint64_t seed = 0;
    int explain_faces = 0, explain_grid = 0;  // 0: the demo's setting
    int64_t explain_samples = 0;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    CLI::App* s = app.add_subcommand(
        "demo", "Synthetic FF++ -> train v_d, v_s, v_t and FST-Matching -> evaluate raw/c23/c40 -> explain -> report");
    s->add_option("--out", f->out, "Output folder (data, runs, metrics.json, report.html); reused when run again")
        ->capture_default_str();
    s->add_flag("--quick", f->quick, "Tiny settings (well under a minute), for tests");
    s->add_option("--threads", f->threads, "CPU threads (0: all)")->check(CLI::NonNegativeNumber);
    s->add_option("--seed", f->seed, "Seed of the data, the training and the explanations")->capture_default_str();
    s->add_flag("--progress,!--no-progress", f->progress, "Progress bars and step messages on stderr");
    s->add_option("--explain-faces", f->explain_faces,
                  "Test fakes explained (default 6; 30 or more for intervals a reader can rely on; the training is reused)")
        ->check(CLI::PositiveNumber);
    s->add_option("--explain-grid", f->explain_grid, "L of the L x L Shapley grid (default 8; the paper: 16)")
        ->check(CLI::Range(2, 32));
    s->add_option("--explain-samples", f->explain_samples, "T, permutations per map (default 16; the paper: >= 100)")
        ->check(CLI::PositiveNumber);
    return s;
  };
  c.run = [f] {
    DemoOptions o = demo_options(f->quick);
    o.out = f->out;
    o.threads = f->threads;
    o.seed = f->seed;
    o.progress = f->progress;
    if (f->explain_faces > 0) o.explain_faces = f->explain_faces;
    if (f->explain_grid > 0) o.explain_grid = f->explain_grid;
    if (f->explain_samples > 0) o.explain_samples = f->explain_samples;
    install_stop_handlers();
    o.stop = &stop_signal();
    const nlohmann::json s = demo_settings_json(o);
    const TrainingRecipe& t = o.training;
    std::cout << "fstm demo" << (o.quick ? " --quick" : "") << ": " << o.data.identities << " identities, "
              << o.data.frames << " frames of " << o.data.video_size << "x" << o.data.video_size << " per video, "
              << o.data.faces_per_video << " faces of " << o.data.face_size << "x" << o.data.face_size
              << " per video; ResNet-18 epochs v_d " << t.epochs_det << ", FST " << t.epochs_fst << ", v_s "
              << t.epochs_encoders << ", v_t " << t.epochs_target << " (AdamW lr " << t.lr << ", " << LrSchedule::kind_name(t.schedule)
              << ", batch " << t.batch
              << "); explain " << o.explain_faces << " faces, " << o.explain_grid << "x" << o.explain_grid << " grid, "
              << o.explain_samples << " permutations -> " << o.out << "/\n"
              << std::flush;
    const DemoResult r = run_demo(o);
    if (r.stopped_by_signal) {
      std::cerr << "fstm demo: stopped by signal " << r.stopped_by_signal << " (" << r.stopped_in
                << "); finished steps are kept, continue with: fstm demo --out " << o.out << (o.quick ? " --quick" : "")
                << "\n";
      return 128 + r.stopped_by_signal;
    }
    std::cout << demo_summary(r.metrics);
    std::cout << "wall time " << ProgressBar::format_duration(r.metrics["seconds"].get<double>()) << "\n";
    std::cout << "metrics: " << r.metrics_path << "\nreport:  " << r.report_path << "\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
