#include "fstm/lib/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "tensor/environment.h"

namespace fstm {

std::ostream* progress_stream() {
  return environment().progress ? &std::cerr : nullptr;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, std::ostream* out)
    : label_(std::move(label)), unit_(std::move(unit)), out_(out), total_(std::max<int64_t>(total, 0)) {
  start_ = last_draw_ = Clock::now();
  tty_ = out_ == &std::cerr && isatty(STDERR_FILENO);
  std::lock_guard<std::mutex> lock(mu_);
  draw_locked(true);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::add(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  draw_locked(false);
}

void ProgressBar::set_total(int64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = std::max<int64_t>(total, 0);
  draw_locked(true);
}

void ProgressBar::note(const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!out_) return;
  if (tty_) *out_ << "\r\033[K";  // clear the bar, print the message, draw the bar again
  *out_ << message << "\n";
  if (tty_ && !finished_) draw_locked(true);
  out_->flush();
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (!out_) return;
  if (!tty_ && last_logged_percent_ == 100 && done_ >= total_) return;  // the 100% line was the last
  if (tty_) *out_ << "\r\033[K";
  *out_ << render_locked(80) << "\n";
  out_->flush();
}

int64_t ProgressBar::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

int64_t ProgressBar::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(std::llround(seconds));
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof(buf), "%llds", (long long)s);
  else if (s < 3600) std::snprintf(buf, sizeof(buf), "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  return buf;
}

std::string ProgressBar::render(int width) const {
  std::lock_guard<std::mutex> lock(mu_);
  return render_locked(width);
}

std::string ProgressBar::render_locked(int width) const {
  const double t = elapsed_seconds();
  const double rate = t > 0 ? done_ / t : 0;
  std::ostringstream tail;
  tail << " " << done_ << "/" << total_ << " " << unit_;
  if (total_ > 0) tail << " " << int(100.0 * std::min(done_, total_) / total_) << "%";
  char r[32];
  std::snprintf(r, sizeof(r), "%.3g", rate);
  tail << " " << r << " " << unit_ << "/s";
  if (finished_ || (total_ > 0 && done_ >= total_)) {
    tail << " in " << format_duration(t);
  } else if (rate > 0 && total_ > 0) {
    tail << " ETA " << format_duration((total_ - done_) / rate);
  } else {
    tail << " ETA ?";
  }
  const std::string head = label_ + " ";
  const int bar = std::max(10, width - int(head.size()) - int(tail.str().size()) - 2);
  const int filled = total_ > 0 ? int(double(bar) * std::min(done_, total_) / total_) : 0;
  return head + "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "]" + tail.str();
}

void ProgressBar::draw_locked(bool force) {
  if (!out_ || finished_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_) {
    if (!force && since < 0.2 && done_ < total_) return;
    *out_ << "\r" << render_locked(80) << "\033[K";
    out_->flush();
  } else {  // a log file: a line per 10% or every 30 s
    const int64_t percent = total_ > 0 ? 100 * std::min(done_, total_) / total_ : 0;
    const bool step = percent / 10 != last_logged_percent_ / 10;
    if (!force && !step && since < 30) return;
    if (!force || last_logged_percent_ < 0) {
      *out_ << render_locked(80) << "\n";
      out_->flush();
    }
    last_logged_percent_ = percent;
  }
  last_draw_ = now;
}

}  // namespace fstm
