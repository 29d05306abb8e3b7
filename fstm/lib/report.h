// Self-contained HTML reports: headings, prose, tables, line charts (inline SVG) and images
// (PNG embedded as base64), in one file with no external assets, so a report can be mailed or
// archived as it is. Used by `fstm demo` and `fstm hypothesis`.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace fstm {

struct Series {
  std::string label;
  std::vector<double> x, y;
};

struct ChartOptions {
  std::string title, x_label, y_label;
  int width = 560, height = 320;
  bool y_from_zero = false;
};

class HtmlReport {
 public:
  explicit HtmlReport(std::string title);

  void heading(const std::string& text, int level = 2);
  void paragraph(const std::string& text);          // escaped
  void note(const std::string& text);               // a highlighted remark, escaped
  void raw_html(const std::string& html);           // trusted markup
  // rows of cells; the first row is the header. Cells are escaped.
  void table(const std::vector<std::vector<std::string>>& rows, const std::string& caption = "");
  void line_chart(const std::vector<Series>& series, const ChartOptions& options);
  void image_png(const std::vector<unsigned char>& png, const std::string& caption, int width = 0);
  // Several images side by side with a caption under each.
  void image_row(const std::vector<std::pair<std::vector<unsigned char>, std::string>>& images, int width = 160);

  std::string html() const;
  void save(const std::string& path) const;  // atomic write

 private:
  std::string title_;
  std::string body_;
};

std::string html_escape(const std::string& text);
std::string base64(const std::vector<unsigned char>& bytes);
// Formats a metric for tables: fixed decimals, "-" for NaN.
std::string format_number(double v, int decimals = 3);

}  // namespace fstm
