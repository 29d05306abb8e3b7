// A progress bar with rate and ETA on stderr, safe to advance from several threads.
//
//   ProgressBar bar("extract", videos.size(), "videos");
//   ... bar.add();                 // from any thread
//   bar.note("skipped x.mp4: ...") // a message line above the bar
//   bar.finish();                  // final line with the total time (also done by the destructor)
//
// On a terminal the bar redraws in place at most 5 times a second; when stderr is a file or a
// pipe (CI logs) it prints a plain line every 10% or 30 s instead. FSTM_PROGRESS=0 silences it.
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <string>

namespace fstm {

class ProgressBar {
 public:
  // out == nullptr: silent (the counters still work).
  ProgressBar(std::string label, int64_t total, std::string unit = "items", std::ostream* out = nullptr);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(int64_t n = 1);
  void set_total(int64_t total);
  void note(const std::string& message);
  void finish();

  int64_t done() const;
  int64_t total() const;
  double elapsed_seconds() const;

  // "42s", "3:07", "1:02:03"
  static std::string format_duration(double seconds);
  // The line as it would be drawn now (without the terminal control characters); for tests.
  std::string render(int width = 80) const;

 private:
  void draw_locked(bool force);
  std::string render_locked(int width) const;

  using Clock = std::chrono::steady_clock;
  std::string label_, unit_;
  std::ostream* out_;
  bool tty_ = false;
  bool finished_ = false;
  int64_t total_, done_ = 0;
  Clock::time_point start_, last_draw_;
  int64_t last_logged_percent_ = -1;
  mutable std::mutex mu_;
};

// std::cerr when progress output is wanted (FSTM_PROGRESS unset or not 0), else nullptr.
std::ostream* progress_stream();

}  // namespace fstm
