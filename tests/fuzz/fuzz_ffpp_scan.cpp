// The FF++ directory scan: folder layout, names such as 035_036.mp4, the splits JSON files.
// The input describes a tree, one entry per line: "path" makes an empty file, "path=text" a file
// holding text (with "\n" for new lines), "path/" a folder. Paths stay inside the tree.
#include "fuzz_support.h"
#include "io/dataset.h"

namespace {

bool safe_relative(const std::string& p) {
  if (p.empty() || p.size() > 200 || p[0] == '/') return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\0') return false;
    if (p.compare(i, 2, "..") == 0) return false;
  }
  return true;
}

void build_tree(const std::string& root, const std::string& spec) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root);
  size_t start = 0, entries = 0;
  while (start < spec.size() && entries++ < 64) {
    size_t end = spec.find('\n', start);
    if (end == std::string::npos) end = spec.size();
    std::string line = spec.substr(start, end - start), text;
    start = end + 1;
    const size_t eq = line.find('=');
    if (eq != std::string::npos) {
      text = line.substr(eq + 1);
      line.resize(eq);
      for (size_t i = 0; (i = text.find("\\n", i)) != std::string::npos;) text.replace(i, 2, "\n");
    }
    if (!safe_relative(line)) continue;
    const fs::path p = fs::path(root) / line;
    if (line.back() == '/') {
      fs::create_directories(p, ec);
      continue;
    }
    fs::create_directories(p.parent_path(), ec);
    std::ofstream(p, std::ios::binary) << text;
  }
}

}  // namespace

void fstm::fuzz::ffpp_scan(const uint8_t* data, size_t size) {
  const std::string root = fstm::fuzz::scratch_dir() + "/ffpp";
  build_tree(root, std::string(reinterpret_cast<const char*>(data), size));
  fstm::fuzz::expect_clean([&] {
    const fstm::io::ScanResult scan = fstm::io::scan_ffpp(root);
    for (const fstm::io::VideoEntry& v : scan.videos) (void)fstm::io::landmark_key(v.relative, 0);
  });
}

FSTM_FUZZ_ENTRY(ffpp_scan)
