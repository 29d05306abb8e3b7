#include "tensor/environment.h"

#include <cstdlib>

namespace fstm {

namespace {
bool set_and_not_zero(const char* v) { return v && *v && std::string(v) != "0"; }
bool equals(const char* v, const char* text) { return v && std::string(v) == text; }
}  // namespace

Environment Environment::read(const std::function<const char*(const char*)>& lookup) {
  Environment e;
  e.reference_kernels = set_and_not_zero(lookup("FSTM_REFERENCE_KERNELS"));
  e.inference_reference = equals(lookup("FSTM_INFERENCE_REFERENCE"), "1");
  e.conv_winograd = equals(lookup("FSTM_CONV_WINOGRAD"), "1");
  e.cuda_graphs = !equals(lookup("FSTM_CUDA_GRAPHS"), "0");
  e.cudnn_fused = !equals(lookup("FSTM_CUDNN_FUSED"), "0");
  e.progress = !equals(lookup("FSTM_PROGRESS"), "0");
  e.ffmpeg_log = set_and_not_zero(lookup("FSTM_FFMPEG_LOG"));
  if (const char* v = lookup("FSTM_DLIB_LANDMARKS"); v && *v) e.dlib_landmarks = v;
  return e;
}

std::vector<std::pair<std::string, std::string>> Environment::describe() const {
  auto on_off = [](bool b) { return std::string(b ? "on" : "off"); };
  return {{"FSTM_REFERENCE_KERNELS", reference_kernels ? "reference CPU kernels" : "fast CPU kernels"},
          {"FSTM_INFERENCE_REFERENCE", inference_reference ? "plans run op by op" : "compiled plans"},
          {"FSTM_CONV_WINOGRAD", "Winograd " + on_off(conv_winograd)},
          {"FSTM_CUDA_GRAPHS", "CUDA graphs " + on_off(cuda_graphs)},
          {"FSTM_CUDNN_FUSED", "cuDNN fused convolutions " + on_off(cudnn_fused)},
          {"FSTM_PROGRESS", "progress bars " + on_off(progress)},
          {"FSTM_FFMPEG_LOG", "FFmpeg log echo " + on_off(ffmpeg_log)},
          {"FSTM_DLIB_LANDMARKS", dlib_landmarks}};
}

const Environment& environment() {
  static const Environment e = Environment::read([](const char* name) { return std::getenv(name); });
  return e;
}

}  // namespace fstm
