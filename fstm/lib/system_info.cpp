#include "fstm/lib/system_info.h"

#include "fstm_build_config.h"
#include "io/face.h"
#include "io/video.h"
#include "kernels/backend.h"
#include "tensor/device.h"
#include "tensor/environment.h"

#if FSTM_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

namespace fstm {

std::string version() { return FSTM_VERSION; }

std::string cpu_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    unsigned eax, ebx, ecx, edx;
    // CPUID leaf 7 subleaf 1, EAX bit 5: AVX512_BF16; leaf 7 subleaf 0, EDX bit 22: AMX-BF16.
    __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
    const bool amx = (edx >> 22) & 1u;
    __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(1));
    const bool bf16 = (eax >> 5) & 1u;
    if (amx) return "avx512_amx_bf16";
    return bf16 ? "avx512_bf16" : "avx512";
  }
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse4.2";
}

std::vector<std::pair<std::string, std::string>> system_info() {
  std::vector<std::pair<std::string, std::string>> info;
  info.emplace_back("version", version());
  info.emplace_back("cpu_isa", cpu_isa());
  info.emplace_back("threads", std::to_string(kernels::num_threads()));
#if FSTM_HAVE_ONEDNN
  const dnnl_version_t* v = dnnl_version();
  info.emplace_back("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                  std::to_string(v->patch));
#else
  info.emplace_back("onednn", "not compiled (reference CPU kernels)");
#endif
  if (!cuda_compiled()) {
    info.emplace_back("cuda", "not compiled");
  } else if (DeviceBackend* b = cuda_backend()) {  // opens libfstm_cuda.so
    const int n = cuda_device_count();
    info.emplace_back("cuda", "loaded (" FSTM_CUDA_ARCHITECTURES "), " + std::to_string(n) + " device(s); " + b->status());
    for (int i = 0; i < n; ++i) info.emplace_back("cuda:" + std::to_string(i), b->device_name(i));
  } else {
    info.emplace_back("cuda", cuda_status());  // not loaded (why)
  }
  // The optional components (io/video_codec.h, io/face_engine.h): built, and linked into this program?
  auto component = [](bool built, bool linked, const char* library) {
    if (!built) return std::string("not built");
    return linked ? std::string("yes (") + library + ")" : std::string("built, not linked (") + library + ")";
  };
  info.emplace_back("ffmpeg", component(FSTM_HAVE_FFMPEG, io::video_supported(), "libfstm_video.so"));
  info.emplace_back("dlib", component(FSTM_HAVE_DLIB, io::face_detection_supported(), "libfstm_faces.so"));
  for (const auto& [variable, effect] : environment().describe()) info.emplace_back("env " + variable, effect);
  return info;
}

}  // namespace fstm
