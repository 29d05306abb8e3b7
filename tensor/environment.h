// Every environment variable fstm reads, in one struct, read once at first use. Library code asks
// environment() and nothing else calls getenv, so the list below is the whole story (`fstm info`
// prints it). Each flag keeps the form it has always had:
//
//   FSTM_REFERENCE_KERNELS    set, not empty and not "0": the CPU runs the reference kernels
//   FSTM_INFERENCE_REFERENCE  "1": inference plans run op by op with the eager kernels
//   FSTM_CONV_WINOGRAD        "1": oneDNN may pick Winograd convolutions (not bit-stable)
//   FSTM_CUDA_GRAPHS          "0": the CUDA executor does not capture CUDA graphs
//   FSTM_CUDNN_FUSED          "0": the CUDA executor does not use cuDNN's fused conv+bias+act
//   FSTM_PROGRESS             "0": no progress bars
//   FSTM_FFMPEG_LOG           set, not empty and not "0": FFmpeg's log lines are echoed to stderr
//   FSTM_DLIB_LANDMARKS       the dlib 68-point model (default: Debian's libdlib-data file)
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace fstm {

struct Environment {
  bool reference_kernels = false;
  bool inference_reference = false;
  bool conv_winograd = false;
  bool cuda_graphs = true;
  bool cudnn_fused = true;
  bool progress = true;
  bool ffmpeg_log = false;
  std::string dlib_landmarks = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

  // From a lookup that returns a variable's value or nullptr when unset (getenv, or a test's map).
  static Environment read(const std::function<const char*(const char*)>& lookup);
  // (variable, its effect as read) for every variable above, in the order above.
  std::vector<std::pair<std::string, std::string>> describe() const;
};

// The process's environment, read on first use.
const Environment& environment();

}  // namespace fstm
