#include "fstm/lib/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "io/fs.h"

namespace fstm {

namespace {
// A palette that stays readable for colour-blind readers (Okabe-Ito).
const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = bytes[i], b1 = i + 1 < bytes.size() ? bytes[i + 1] : 0, b2 = i + 2 < bytes.size() ? bytes[i + 2] : 0;
    const uint32_t v = (b0 << 16) | (b1 << 8) | b2;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? table[v & 63] : '=';
  }
  return out;
}

std::string format_number(double v, int decimals) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

HtmlReport::HtmlReport(std::string title) : title_(std::move(title)) {}

void HtmlReport::heading(const std::string& text, int level) {
  level = std::clamp(level, 1, 4);
  body_ += "<h" + std::to_string(level) + ">" + html_escape(text) + "</h" + std::to_string(level) + ">\n";
}

void HtmlReport::paragraph(const std::string& text) { body_ += "<p>" + html_escape(text) + "</p>\n"; }
void HtmlReport::note(const std::string& text) { body_ += "<p class=\"note\">" + html_escape(text) + "</p>\n"; }
void HtmlReport::raw_html(const std::string& html) { body_ += html + "\n"; }

void HtmlReport::table(const std::vector<std::vector<std::string>>& rows, const std::string& caption) {
  if (rows.empty()) return;
  std::ostringstream s;
  s << "<table>";
  if (!caption.empty()) s << "<caption>" << html_escape(caption) << "</caption>";
  for (size_t r = 0; r < rows.size(); ++r) {
    s << "<tr>";
    for (const std::string& cell : rows[r]) s << (r == 0 ? "<th>" : "<td>") << html_escape(cell) << (r == 0 ? "</th>" : "</td>");
    s << "</tr>";
  }
  s << "</table>\n";
  body_ += s.str();
}

void HtmlReport::line_chart(const std::vector<Series>& series, const ChartOptions& o) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) return;  // nothing to draw
  if (o.y_from_zero) y0 = std::min(0.0, y0);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad_l = 56, pad_r = 130, pad_t = 28, pad_b = 40;
  const double w = o.width - pad_l - pad_r, h = o.height - pad_t - pad_b;
  auto px = [&](double x) { return pad_l + (x - x0) / (x1 - x0) * w; };
  auto py = [&](double y) { return pad_t + (1 - (y - y0) / (y1 - y0)) * h; };
  std::ostringstream s;
  s << "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\"" << o.height
    << "\" font-family=\"sans-serif\" font-size=\"11\">";
  s << "<text x=\"" << pad_l << "\" y=\"16\" font-size=\"13\" font-weight=\"bold\">" << html_escape(o.title) << "</text>";
  s << "<rect x=\"" << pad_l << "\" y=\"" << pad_t << "\" width=\"" << w << "\" height=\"" << h
    << "\" fill=\"none\" stroke=\"#999\"/>";
  for (int t = 0; t <= 4; ++t) {  // ticks
    const double yv = y0 + (y1 - y0) * t / 4, xv = x0 + (x1 - x0) * t / 4;
    s << "<line x1=\"" << pad_l << "\" x2=\"" << pad_l + w << "\" y1=\"" << py(yv) << "\" y2=\"" << py(yv)
      << "\" stroke=\"#eee\"/>";
    s << "<text x=\"" << pad_l - 4 << "\" y=\"" << py(yv) + 4 << "\" text-anchor=\"end\">" << fmt(yv) << "</text>";
    s << "<text x=\"" << px(xv) << "\" y=\"" << pad_t + h + 14 << "\" text-anchor=\"middle\">" << fmt(xv) << "</text>";
  }
  s << "<text x=\"" << pad_l + w / 2 << "\" y=\"" << o.height - 6 << "\" text-anchor=\"middle\">"
    << html_escape(o.x_label) << "</text>";
  s << "<text transform=\"translate(12," << pad_t + h / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << html_escape(o.y_label) << "</text>";
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& se = series[k];
    const char* color = kColors[k % 8];
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < std::min(se.x.size(), se.y.size()); ++i)
      if (std::isfinite(se.y[i])) s << px(se.x[i]) << "," << py(se.y[i]) << " ";
    s << "\"/>";
    for (size_t i = 0; i < std::min(se.x.size(), se.y.size()); ++i)
      if (std::isfinite(se.y[i]))
        s << "<circle cx=\"" << px(se.x[i]) << "\" cy=\"" << py(se.y[i]) << "\" r=\"2.5\" fill=\"" << color << "\"/>";
    const double ly = pad_t + 12 + 16 * double(k);
    s << "<line x1=\"" << pad_l + w + 10 << "\" x2=\"" << pad_l + w + 26 << "\" y1=\"" << ly << "\" y2=\"" << ly
      << "\" stroke=\"" << color << "\" stroke-width=\"2\"/><text x=\"" << pad_l + w + 30 << "\" y=\"" << ly + 4
      << "\">" << html_escape(se.label) << "</text>";
  }
  s << "</svg></figure>\n";
  body_ += s.str();
}

void HtmlReport::image_png(const std::vector<unsigned char>& png, const std::string& caption, int width) {
  body_ += "<figure><img src=\"data:image/png;base64," + base64(png) + "\"" +
           (width > 0 ? " width=\"" + std::to_string(width) + "\"" : std::string()) + " alt=\"" + html_escape(caption) +
           "\"><figcaption>" + html_escape(caption) + "</figcaption></figure>\n";
}

void HtmlReport::image_row(const std::vector<std::pair<std::vector<unsigned char>, std::string>>& images, int width) {
  body_ += "<div class=\"row\">";
  for (const auto& [png, caption] : images)
    body_ += "<figure><img src=\"data:image/png;base64," + base64(png) + "\" width=\"" + std::to_string(width) +
             "\" alt=\"" + html_escape(caption) + "\"><figcaption>" + html_escape(caption) + "</figcaption></figure>";
  body_ += "</div>\n";
}

std::string HtmlReport::html() const {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title_) +
         "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
         "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}caption{font-weight:bold;"
         "text-align:left;padding:4px 0}figure{display:inline-block;margin:6px}figcaption{font-size:12px;"
         "text-align:center}.row{display:flex;flex-wrap:wrap}.note{background:#fff6e0;border-left:4px solid "
         "#E69F00;padding:6px 10px}img{image-rendering:pixelated}</style></head><body>\n<h1>" +
         html_escape(title_) + "</h1>\n" + body_ + "</body></html>\n";
}

void HtmlReport::save(const std::string& path) const {
  const std::string text = html();
  io::write_file_atomic(path, std::string_view(text));
}

}  // namespace fstm
