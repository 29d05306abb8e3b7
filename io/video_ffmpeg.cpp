// The video component: VideoReader / VideoWriter on FFmpeg 5.1 (send/receive API), built into
// libfstm_video.so and registered with libfstm when it is loaded (io/video_codec.h). See io/video.h.
//
// FFmpeg's own log is captured instead of printed: the last error line of the calling thread is
// appended to our error messages ("moov atom not found"), so a user sees one clear line per bad
// file. Set FSTM_FFMPEG_LOG=1 to see FFmpeg's warnings on stderr as well.
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "io/limits.h"
#include "io/video.h"
#include "io/video_codec.h"
#include "tensor/error.h"
#include "tensor/environment.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace fstm::io {

namespace {

thread_local std::string t_last_ffmpeg_error;
bool g_echo_log = false;

void log_callback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  char line[1024];
  int print_prefix = 1;
  va_list copy;
  va_copy(copy, args);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof(line), &print_prefix);
  va_end(copy);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (level <= AV_LOG_ERROR && !text.empty()) t_last_ffmpeg_error = text;
  if (g_echo_log) std::fprintf(stderr, "%s\n", text.c_str());
}

void install_log_callback() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_echo_log = environment().ffmpeg_log;
    av_log_set_callback(log_callback);
  });
}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// "Invalid data found when processing input; FFmpeg: moov atom not found"
std::string reason(int code) {
  std::string r = av_error_text(code);
  if (!t_last_ffmpeg_error.empty()) {
    // Drop the "[mov,mp4,... @ 0x...] " prefix: the address means nothing to a user.
    std::string last = t_last_ffmpeg_error;
    if (!last.empty() && last[0] == '[') {
      const size_t close = last.find("] ");
      if (close != std::string::npos) last = last.substr(close + 2);
    }
    r += "; FFmpeg: " + last;
  }
  return r;
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int code) {
  throw Error(detail::concat(path, ": ", what, " (", reason(code), ")"));
}

// Colour matrix for a YUV frame: the tagged one (BT.709 for HD sources), BT.601 when untagged.
void set_yuv_to_rgb_details(SwsContext* sws, const AVFrame* f) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(AVPixelFormat(f->format));
  if (!d || (d->flags & AV_PIX_FMT_FLAG_RGB) || d->nb_components < 3) return;
  // The tags come from the file: FFmpeg stores whatever number the bitstream holds in its enum
  // fields (a fuzzed file gave colorspace 66), and loading such a value as the enum is undefined
  // behaviour. Read the bytes as int and keep only the values the enums define.
  static_assert(sizeof(AVColorSpace) == sizeof(int) && sizeof(AVColorRange) == sizeof(int));
  int space = 0, range = 0;
  std::memcpy(&space, &f->colorspace, sizeof space);
  std::memcpy(&range, &f->color_range, sizeof range);
  if (space <= 0 || space >= int(AVCOL_SPC_NB) || space == int(AVCOL_SPC_UNSPECIFIED)) space = SWS_CS_DEFAULT;
  const int src_full = range == int(AVCOL_RANGE_JPEG) ? 1 : 0;
  int* inv_table = nullptr;
  int* table = nullptr;
  int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
  if (sws_getColorspaceDetails(sws, &inv_table, &src_range, &table, &dst_range, &brightness, &contrast,
                               &saturation) < 0)
    return;
  // yuvj* formats are full range whatever the tag says
  sws_setColorspaceDetails(sws, sws_getCoefficients(space), src_full || src_range, table, 1, brightness, contrast,
                           saturation);
}

// x264's AVX-512 routines make its output depend on memory contents: with x264 core 164 on a Zen 4
// the same frames gave different bytes from one encode to the next (not so with AVX2, nor under
// valgrind). x264 is therefore capped at AVX2, found by our own CPU check because x264's "asm"
// option sets its instruction sets rather than masking the detected ones.
const char* x264_asm_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
    return "asm=AVX2";
  if (__builtin_cpu_supports("avx")) return "asm=AVX";
  if (__builtin_cpu_supports("sse4.2")) return "asm=SSE4.2";
  if (__builtin_cpu_supports("ssse3")) return "asm=SSSE3";
  if (__builtin_cpu_supports("sse2")) return "asm=SSE2";
#endif
  return nullptr;  // other architectures: x264's own detection
}

// ==== VideoReader =================================================================================

struct FfmpegReader final : VideoReader::Impl {
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  AVPacket* pkt = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* rgb = nullptr;  // padded RGB target for swscale, copied into the Image row by row
  SwsContext* sws = nullptr;
  int stream = -1;
  int64_t header_frames = 0;  // the container's sample count, 0 when unknown
  int64_t packets = 0;        // video packets demuxed so far
  bool demux_done = false;
  bool finished = false;

  ~FfmpegReader() override {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_frame_free(&rgb);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }

  void open_format() {
    t_last_ffmpeg_error.clear();
    int rc = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr);
    if (rc < 0) fail(path, "cannot open as a video: the file is corrupt, truncated or not a video", rc);
    rc = avformat_find_stream_info(fmt, nullptr);
    if (rc < 0) fail(path, "cannot read the stream information (corrupt or truncated file)", rc);
    // FFmpeg opens a still image (PNG, JPEG, ...) as a one-frame "video" through its image
    // demuxers; a dataset's video file holding an image is a wrong file, not a short video.
    const std::string demuxer = fmt->iformat && fmt->iformat->name ? fmt->iformat->name : "";
    FSTM_CHECK(demuxer != "image2" && (demuxer.size() < 5 || demuxer.compare(demuxer.size() - 5, 5, "_pipe") != 0),
               path, ": not a video but a still image (FFmpeg reads it as ", demuxer, ")");
  }

  void open() {
    namespace fs = std::filesystem;
    std::error_code ec;
    FSTM_CHECK(fs::exists(path, ec), path, ": no such file");
    FSTM_CHECK(fs::is_regular_file(path, ec), path, ": not a regular file");
    FSTM_CHECK(fs::file_size(path, ec) > 0, path, ": empty file, not a video");
    FSTM_CHECK(::access(path.c_str(), R_OK) == 0, path, ": cannot read the file: ", std::strerror(errno));
    install_log_callback();
    open_format();

    const AVCodec* codec = nullptr;
    stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream == AVERROR_STREAM_NOT_FOUND) {
      std::string kinds;
      for (unsigned i = 0; i < fmt->nb_streams; ++i) {
        const char* k = av_get_media_type_string(fmt->streams[i]->codecpar->codec_type);
        kinds += std::string(i ? ", " : "") + (k ? k : "unknown");
      }
      throw Error(detail::concat(path, ": no video stream (the file has ", fmt->nb_streams, " stream(s)",
                                 kinds.empty() ? "" : ": " + kinds, ")"));
    }
    if (stream == AVERROR_DECODER_NOT_FOUND) {
      throw Error(detail::concat(path, ": no decoder in this FFmpeg for the video codec"));
    }
    if (stream < 0) fail(path, "cannot select the video stream", stream);
    AVStream* st = fmt->streams[stream];
    FSTM_CHECK(st->codecpar->width > 0 && st->codecpar->height > 0, path, ": the video stream has no frame size");
    check_video_frame_size(st->codecpar->width, st->codecpar->height, path);
    check_video_frame_count(st->nb_frames, path);

    dec = avcodec_alloc_context3(codec);
    FSTM_CHECK(dec, path, ": out of memory allocating a decoder");
    int rc = avcodec_parameters_to_context(dec, st->codecpar);
    if (rc < 0) fail(path, "cannot configure the decoder", rc);
    dec->thread_count = 1;  // callers parallelise over videos
    rc = avcodec_open2(dec, codec, nullptr);
    if (rc < 0) fail(path, detail::concat("cannot open the ", codec->name, " decoder"), rc);

    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    FSTM_CHECK(pkt && frame, path, ": out of memory");

    info.width = st->codecpar->width;
    info.height = st->codecpar->height;
    AVRational rate = av_guess_frame_rate(fmt, st, nullptr);
    if (rate.num <= 0 || rate.den <= 0) rate = st->r_frame_rate;
    info.fps = (rate.num > 0 && rate.den > 0) ? av_q2d(rate) : 0.0;
    header_frames = st->nb_frames > 0 ? st->nb_frames : 0;
    info.frame_count = header_frames > 0 ? header_frames : count_packets();
    check_video_frame_count(info.frame_count, path);
  }

  // Number of video packets, by demuxing without decoding, then back to the start (reopened:
  // seeking is not reliable in every container).
  int64_t count_packets() {
    int64_t n = 0;
    for (;;) {
      const int rc = av_read_frame(fmt, pkt);
      if (rc == AVERROR_EOF) break;
      if (rc < 0) fail(path, detail::concat("read error after ", n, " video packets (truncated or corrupt file)"), rc);
      if (pkt->stream_index == stream) ++n;
      av_packet_unref(pkt);
      check_video_frame_count(n, path);
    }
    avformat_close_input(&fmt);
    open_format();
    return n;
  }

  bool read(Image* out) override {
    if (finished) return false;
    for (;;) {
      int rc = avcodec_receive_frame(dec, frame);
      if (rc == 0) {
        if (out) convert(*out);
        av_frame_unref(frame);
        ++returned;
        return true;
      }
      if (rc == AVERROR_EOF) {
        finished = true;
        FSTM_CHECK(header_frames == 0 || packets >= header_frames, path, ": truncated: the header lists ",
                   header_frames, " frames but only ", packets, " could be read");
        return false;
      }
      if (rc != AVERROR(EAGAIN)) fail(path, detail::concat("cannot decode frame ", returned, " (corrupt video data)"), rc);
      FSTM_CHECK(!demux_done, path, ": the decoder wants data after the end of the stream");

      t_last_ffmpeg_error.clear();
      rc = av_read_frame(fmt, pkt);
      if (rc == AVERROR_EOF) {
        demux_done = true;
        rc = avcodec_send_packet(dec, nullptr);  // drain the decoder
        if (rc < 0 && rc != AVERROR_EOF) fail(path, "cannot flush the decoder", rc);
        continue;
      }
      if (rc < 0) fail(path, detail::concat("read error after ", packets, " video packets (truncated or corrupt file)"), rc);
      if (pkt->stream_index != stream) {
        av_packet_unref(pkt);
        continue;
      }
      if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
        av_packet_unref(pkt);
        throw Error(detail::concat(path, ": truncated or corrupt: video packet ", packets, " is incomplete",
                                   t_last_ffmpeg_error.empty() ? "" : " (FFmpeg: " + t_last_ffmpeg_error + ")"));
      }
      ++packets;
      rc = avcodec_send_packet(dec, pkt);
      av_packet_unref(pkt);
      // Every frame was received before sending, so EAGAIN cannot happen here.
      if (rc < 0) fail(path, detail::concat("cannot decode video packet ", packets - 1, " (corrupt video data)"), rc);
    }
  }

  void convert(Image& out) {
    const int w = frame->width, h = frame->height;
    check_video_frame_size(w, h, path);  // a stream may change size mid-way
    sws = sws_getCachedContext(sws, w, h, AVPixelFormat(frame->format), w, h, AV_PIX_FMT_RGB24,
                               SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
    FSTM_CHECK(sws, path, ": cannot convert pixel format ",
               av_get_pix_fmt_name(AVPixelFormat(frame->format)) ? av_get_pix_fmt_name(AVPixelFormat(frame->format)) : "?",
               " to RGB");
    set_yuv_to_rgb_details(sws, frame);
    if (!rgb || rgb->width != w || rgb->height != h) {
      av_frame_free(&rgb);
      rgb = av_frame_alloc();
      FSTM_CHECK(rgb, path, ": out of memory");
      rgb->format = AV_PIX_FMT_RGB24;
      rgb->width = w;
      rgb->height = h;
      const int rc = av_frame_get_buffer(rgb, 64);
      if (rc < 0) fail(path, "cannot allocate an RGB frame", rc);
    }
    sws_scale(sws, frame->data, frame->linesize, 0, h, rgb->data, rgb->linesize);
    out.width = w;
    out.height = h;
    out.rgb.resize(size_t(w) * h * 3);
    for (int y = 0; y < h; ++y)
      std::copy_n(rgb->data[0] + size_t(y) * rgb->linesize[0], size_t(w) * 3, &out.rgb[size_t(y) * w * 3]);
  }
};


// ==== VideoWriter =================================================================================

struct FfmpegWriter final : VideoWriter::Impl {
  int width = 0, height = 0;
  Compression compression = Compression::raw;
  AVFormatContext* oc = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* st = nullptr;
  AVFrame* frame = nullptr;
  AVFrame* rgb = nullptr;  // padded, zeroed copy of the input for swscale (its SIMD reads past a row)
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  bool file_open = false;
  bool finished = false;

  ~FfmpegWriter() override {
    if (file_open) avio_closep(&oc->pb);
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_frame_free(&rgb);
    av_packet_free(&pkt);
    avcodec_free_context(&enc);
    avformat_free_context(oc);
    if (file_open && !finished) {
      std::error_code ec;
      std::filesystem::remove(path, ec);  // no half-written video left behind
    }
  }

  void open(double fps) {
    FSTM_CHECK(width > 0 && height > 0, path, ": cannot encode frames of size ", width, "x", height);
    FSTM_CHECK(fps > 0 && fps < 1000, path, ": frame rate ", fps, " is not in (0, 1000)");
    FSTM_CHECK(compression == Compression::raw || (width % 2 == 0 && height % 2 == 0), path, ": ",
               compression_name(compression), " is yuv420p and needs an even width and height, got ", width, "x",
               height);
    install_log_callback();
    t_last_ffmpeg_error.clear();
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      FSTM_CHECK(!ec, parent.string(), ": cannot create directory (", ec.message(), ")");
    }

    int rc = avformat_alloc_output_context2(&oc, nullptr, "mp4", path.c_str());
    if (rc < 0 || !oc) fail(path, "cannot create an mp4 container", rc);
    oc->flags |= AVFMT_FLAG_BITEXACT;  // no version strings or dates: same frames, same bytes

    const bool raw = compression == Compression::raw;
    const char* encoder = raw ? "libx264rgb" : "libx264";
    const AVCodec* codec = avcodec_find_encoder_by_name(encoder);
    FSTM_CHECK(codec, path, ": this FFmpeg has no ", encoder, " encoder (it must be built with libx264)");
    st = avformat_new_stream(oc, nullptr);
    enc = avcodec_alloc_context3(codec);
    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    FSTM_CHECK(st && enc && pkt && frame, path, ": out of memory");

    const AVRational rate = av_d2q(fps, 1000000);
    enc->width = width;
    enc->height = height;
    enc->pix_fmt = raw ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
    enc->framerate = rate;
    enc->time_base = av_inv_q(rate);
    enc->thread_count = 1;  // x264's output depends on its thread count: fix it
    enc->flags |= AV_CODEC_FLAG_BITEXACT;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (!raw) {  // say what the RGB -> YUV conversion below used
      enc->color_range = AVCOL_RANGE_MPEG;
      enc->colorspace = AVCOL_SPC_SMPTE170M;
      enc->color_primaries = AVCOL_PRI_SMPTE170M;
      enc->color_trc = AVCOL_TRC_SMPTE170M;
    }
    av_opt_set(enc->priv_data, "preset", "medium", 0);
    if (const char* level = x264_asm_level()) av_opt_set(enc->priv_data, "x264-params", level, 0);
    av_opt_set(enc->priv_data, "crf", std::to_string(compression_crf(compression)).c_str(), 0);
    rc = avcodec_open2(enc, codec, nullptr);
    if (rc < 0) fail(path, detail::concat("cannot open the ", encoder, " encoder"), rc);
    rc = avcodec_parameters_from_context(st->codecpar, enc);
    if (rc < 0) fail(path, "cannot configure the video stream", rc);
    st->time_base = enc->time_base;
    st->avg_frame_rate = rate;
    st->r_frame_rate = rate;

    rc = avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE);
    if (rc < 0) fail(path, "cannot open for writing", rc);
    file_open = true;
    rc = avformat_write_header(oc, nullptr);
    if (rc < 0) fail(path, "cannot write the mp4 header", rc);

    frame->format = enc->pix_fmt;
    frame->width = width;
    frame->height = height;
    rc = av_frame_get_buffer(frame, 0);
    if (rc < 0) fail(path, "cannot allocate a frame", rc);
    if (!raw) {
      rgb = av_frame_alloc();
      FSTM_CHECK(rgb, path, ": out of memory");
      rgb->format = AV_PIX_FMT_RGB24;
      rgb->width = width;
      rgb->height = height;
      rc = av_frame_get_buffer(rgb, 64);
      if (rc < 0) fail(path, "cannot allocate a frame", rc);
      // swscale's vector loads read up to a register past the last pixel of a row; zeroed
      // padding keeps the output a function of the image alone (deterministic bytes).
      for (AVBufferRef* b : rgb->buf)
        if (b) std::memset(b->data, 0, b->size);
    }
  }

  void write(const Image& im) override {
    FSTM_CHECK(!finished, path, ": write after finish()");
    FSTM_CHECK(im.width == width && im.height == height && im.rgb.size() == size_t(width) * height * 3, path,
               ": frame ", written, " is ", im.width, "x", im.height, ", the video is ", width, "x", height);
    int rc = av_frame_make_writable(frame);
    if (rc < 0) fail(path, "cannot reuse the frame buffer", rc);
    if (compression == Compression::raw) {
      for (int y = 0; y < height; ++y)
        std::copy_n(&im.rgb[size_t(y) * width * 3], size_t(width) * 3, frame->data[0] + size_t(y) * frame->linesize[0]);
    } else {
      // BT.601, limited range, bicubic chroma as the ffmpeg CLI that made FF++ did.
      sws = sws_getCachedContext(sws, width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                                 SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr);
      FSTM_CHECK(sws, path, ": cannot create the RGB -> YUV converter");
      for (int y = 0; y < height; ++y)
        std::copy_n(&im.rgb[size_t(y) * width * 3], size_t(width) * 3, rgb->data[0] + size_t(y) * rgb->linesize[0]);
      sws_scale(sws, rgb->data, rgb->linesize, 0, height, frame->data, frame->linesize);
    }
    frame->pts = written;
    encode(frame);
    ++written;
  }

  void encode(AVFrame* f) {
    int rc = avcodec_send_frame(enc, f);
    if (rc < 0) fail(path, detail::concat("cannot encode frame ", written), rc);
    for (;;) {
      rc = avcodec_receive_packet(enc, pkt);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) fail(path, "encoder error", rc);
      av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
      pkt->stream_index = st->index;
      rc = av_interleaved_write_frame(oc, pkt);  // takes the packet's data
      if (rc < 0) fail(path, "cannot write a video packet (disk full?)", rc);
    }
  }

  void finish() override {
    if (finished) return;
    FSTM_CHECK(written > 0, path, ": no frames were written");
    encode(nullptr);
    int rc = av_write_trailer(oc);
    if (rc < 0) fail(path, "cannot write the mp4 index", rc);
    rc = avio_closep(&oc->pb);
    file_open = false;
    if (rc < 0) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      fail(path, "cannot close the file (disk full?)", rc);
    }
    finished = true;
  }
};

// ==== the codec ====================================================================================

class FfmpegCodec final : public VideoCodec {
 public:
  std::unique_ptr<VideoReader::Impl> open_reader(const std::string& path) override {
    auto r = std::make_unique<FfmpegReader>();
    r->path = path;
    r->open();
    return r;
  }

  std::unique_ptr<VideoWriter::Impl> open_writer(const std::string& path, int width, int height, double fps,
                                                 Compression compression) override {
    auto w = std::make_unique<FfmpegWriter>();
    w->path = path;
    w->width = width;
    w->height = height;
    w->compression = compression;
    w->open(fps);
    return w;
  }
};

struct Registrar {
  Registrar() { register_video_codec(new FfmpegCodec()); }  // never destroyed: videos may be open at exit
} registrar;

}  // namespace

}  // namespace fstm::io
