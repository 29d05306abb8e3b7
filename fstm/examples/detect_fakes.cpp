// detect_fakes: a product that embeds fstm with its video and faces components (fstm::video,
// fstm::faces). Scores aligned face images and videos (faces found, aligned and scored) with a
// detector checkpoint and prints one line per input. score_faces.cpp is the images-only product.
//
//   detect_fakes CHECKPOINT FILE...
#include <fstm/detector.h>  // the installed headers keep the source tree layout
#include <tensor/error.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: detect_fakes CHECKPOINT FILE...\n";
    return 2;
  }
  try {
    fstm::Detector detector = fstm::Detector::load(argv[1]);
    int failed = 0;
    for (int i = 2; i < argc; ++i) {
      const std::string path = argv[i];
      try {
        const bool video = path.size() > 4 && path.substr(path.size() - 4) == ".mp4";
        const float p = video ? detector.score_video(path).fake_probability
                              : detector.score_face(fstm::io::load_image(path));
        std::cout << path << " " << p << "\n";
      } catch (const fstm::Error& e) {
        std::cerr << "detect_fakes: " << e.what() << "\n";
        ++failed;
      }
    }
    return failed ? 1 : 0;
  } catch (const fstm::Error& e) {
    std::cerr << "detect_fakes: " << e.what() << "\n";
    return 1;
  }
}
