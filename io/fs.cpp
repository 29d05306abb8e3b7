#include "io/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace fstm::io {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_dir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// Makes a rename inside `dir` durable. Some file systems refuse fsync on a directory (EINVAL);
// the rename itself has happened then, so that is not an error.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  FSTM_CHECK(rc == 0 || err == EINVAL || err == EROFS, dir, ": cannot sync directory: ", errno_text(err));
}

}  // namespace

// ---- InputFile --------------------------------------------------------------------------------

InputFile::InputFile(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  FSTM_CHECK(fd_ >= 0, path_, ": cannot open file: ", errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    FSTM_CHECK(false, path_, ": cannot stat file: ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    FSTM_CHECK(false, path_, S_ISDIR(st.st_mode) ? ": is a directory, not a file" : ": not a regular file");
  }
  size_ = uint64_t(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(uint64_t offset, void* dst, size_t size) const {
  FSTM_CHECK(offset <= size_ && size <= size_ - offset, path_, ": truncated: reading ", size, " bytes at offset ",
             offset, " but the file has ", size_, " bytes");
  char* p = static_cast<char*>(dst);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd_, p + done, size - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    FSTM_CHECK(n >= 0, path_, ": read failed at offset ", offset + done, ": ", errno_text(errno));
    FSTM_CHECK(n > 0, path_, ": truncated: the file shrank to ", offset + done, " bytes while reading");
    done += size_t(n);
  }
}

std::vector<uint8_t> read_file(const std::string& path) {
  InputFile f(path);
  std::vector<uint8_t> bytes(size_t(f.size()));
  f.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

int remove_stale_temp_files(const std::string& dir, bool recursive) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (recursive && entry.is_directory(ec) && !entry.is_symlink(ec)) {
      removed += remove_stale_temp_files(entry.path().string(), true);
      continue;
    }
    const std::string name = entry.path().filename().string();
    const size_t tmp = name.rfind(".tmp.");
    if (name.empty() || name[0] != '.' || tmp == std::string::npos) continue;
    const std::string rest = name.substr(tmp + 5);  // "<pid>.<n>"
    const size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || rest.find_first_not_of("0123456789.") != std::string::npos) continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;  // the writer runs (EPERM: someone else's)
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

void ensure_dir(const std::string& path) {
  FSTM_CHECK(!path.empty(), "ensure_dir: empty path");
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  // create_directories reports an error for an existing non-directory; check explicitly so the
  // message says what is wrong rather than "File exists".
  if (std::filesystem::is_directory(path)) return;
  FSTM_CHECK(!std::filesystem::exists(path), path, ": exists and is not a directory");
  FSTM_CHECK(false, path, ": cannot create directory: ", ec ? ec.message() : std::string("unknown error"));
}

// ---- AtomicFileWriter -------------------------------------------------------------------------

AtomicFileWriter::AtomicFileWriter(std::string path, Durability durability)
    : path_(std::move(path)), durability_(durability) {
  FSTM_CHECK(!path_.empty(), "cannot write a file with an empty path");
  const std::filesystem::path target(path_);
  const std::string dir = parent_dir(path_);
  const std::string base = target.filename().string();
  FSTM_CHECK(!base.empty() && base != "." && base != "..", path_, ": not a file name");
  static std::atomic<uint64_t> counter{0};
  // O_EXCL with a name unique to this process and call: no two writers share a temporary file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_path_ = (std::filesystem::path(dir) /
                  ("." + base + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++)))
                     .string();
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0 || errno != EEXIST) break;
  }
  if (fd_ < 0) {
    const int err = errno;
    temp_path_.clear();
    FSTM_CHECK(false, path_, ": cannot create a file in directory '", dir, "': ", errno_text(err));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
}

void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

void AtomicFileWriter::write(const void* data, size_t size) {
  FSTM_CHECK(fd_ >= 0 && !committed_, path_, ": write after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      discard();
      const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
      FSTM_CHECK(false, path_, ": write failed: ", errno_text(err),
                 full ? " (the disk or quota is full; the previous file, if any, is unchanged)" : "");
    }
    p += n;
    size -= size_t(n);
  }
}

void AtomicFileWriter::commit() {
  FSTM_CHECK(fd_ >= 0 && !committed_, path_, ": commit after commit or failure");
  if (durability_ == Durability::power_loss && ::fsync(fd_) != 0) {
    const int err = errno;
    discard();
    FSTM_CHECK(false, path_, ": cannot sync file to disk: ", errno_text(err));
  }
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    const int err = errno;
    discard();
    FSTM_CHECK(false, path_, ": close failed: ", errno_text(err));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    discard();
    FSTM_CHECK(false, path_, ": cannot replace file: ", errno_text(err));
  }
  temp_path_.clear();
  committed_ = true;
  if (durability_ == Durability::power_loss) fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const void* data, size_t size, Durability durability) {
  AtomicFileWriter w(path, durability);
  w.write(data, size);
  w.commit();
}

}  // namespace fstm::io
