// score_faces: the smallest product that embeds fstm. Scores aligned face images (PNG or JPEG)
// with a detector checkpoint and prints one line per image: the path and P(fake).
// It links fstm::core alone: no FFmpeg, dlib or CUDA library is loaded (detect_fakes.cpp adds
// videos, with the video and faces components).
//
//   score_faces CHECKPOINT IMAGE...
#include <fstm/detector.h>  // the installed headers keep the source tree layout
#include <tensor/error.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: score_faces CHECKPOINT IMAGE...\n";
    return 2;
  }
  try {
    fstm::Detector detector = fstm::Detector::load(argv[1]);
    int failed = 0;
    for (int i = 2; i < argc; ++i) {
      try {
        std::cout << argv[i] << " " << detector.score_face(fstm::io::load_image(argv[i])) << "\n";
      } catch (const fstm::Error& e) {  // one bad image is reported and skipped
        std::cerr << "score_faces: " << e.what() << "\n";
        ++failed;
      }
    }
    return failed ? 1 : 0;
  } catch (const fstm::Error& e) {
    std::cerr << "score_faces: " << e.what() << "\n";
    return 1;
  }
}
