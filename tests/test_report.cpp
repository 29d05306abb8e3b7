#include <fstream>

#include "fstm/lib/report.h"
#include "tests/test_support.h"

using namespace fstm;

TEST(Report, EscapesTextAndEmbedsEverything) {
  HtmlReport r("Results <draft>");
  r.heading("H1 & H2");
  r.paragraph("a < b");
  r.table({{"method", "AUC"}, {"Deepfakes", format_number(0.98765, 3)}, {"<x>", format_number(NAN)}}, "Table 1");
  r.line_chart({{"loss", {0, 1, 2}, {1.0, 0.5, 0.25}}}, {"Training", "epoch", "loss"});
  r.image_png({0x89, 'P', 'N', 'G'}, "tiny");
  const std::string html = r.html();
  EXPECT_NE(html.find("Results &lt;draft&gt;"), std::string::npos);
  EXPECT_NE(html.find("H1 &amp; H2"), std::string::npos);
  EXPECT_NE(html.find("<td>0.988</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>-</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>&lt;x&gt;</td>"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,iVBORw=="), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);  // self-contained
  const std::string path = test::temp_dir("report") + "/r.html";
  r.save(path);
  std::ifstream f(path);
  std::string read((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(read, html);
}

TEST(Report, Base64MatchesRfc4648Vectors) {
  auto enc = [](const std::string& s) { return base64(std::vector<unsigned char>(s.begin(), s.end())); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
}
