// Small file utilities used across fstm: whole-file reads, crash-safe writes, directories.
//
// Every write of a result a user keeps (checkpoints, reports, caches) goes through
// AtomicFileWriter: the bytes go to a temporary file in the same directory, which is fsync'ed and
// renamed over the target, then the directory is fsync'ed. A crash at any point leaves either the
// old file or the complete new one, never a partial file. Errors throw fstm::Error naming the path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fstm::io {

// A regular file opened for reading at any offset. Throws naming the path when it is missing,
// unreadable or not a regular file, and on reads past its end ("truncated").
class InputFile {
 public:
  explicit InputFile(std::string path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }  // at open time
  void read_at(uint64_t offset, void* dst, size_t size) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The whole file. Throws naming the path when it is missing, unreadable or not a regular file.
std::vector<uint8_t> read_file(const std::string& path);

// What an atomic write survives. Both never leave a partial file under the real name when the
// process dies; power_loss also fsyncs the file and the folder, so the new file survives a crash
// of the machine (checkpoints, indexes, reports). process_kill skips the two fsyncs, for the many
// small files of a job that can redo them (extracted face PNGs: an fsync each would cost more
// than the encoding).
enum class Durability { power_loss, process_kill };

// Replaces `path` with `bytes` atomically (see above).
void write_file_atomic(const std::string& path, const void* data, size_t size,
                       Durability durability = Durability::power_loss);
inline void write_file_atomic(const std::string& path, std::string_view bytes,
                              Durability durability = Durability::power_loss) {
  write_file_atomic(path, bytes.data(), bytes.size(), durability);
}
inline void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes,
                              Durability durability = Durability::power_loss) {
  write_file_atomic(path, bytes.data(), bytes.size(), durability);
}

// Removes the temporary files that AtomicFileWriter left in `dir` when its process was killed
// (".<name>.tmp.<pid>.<n>" whose pid no longer runs); a live writer's file is kept. Returns how
// many it removed. A long job calls it when it starts or resumes in its output folder (with
// `recursive`, in every folder below it too).
int remove_stale_temp_files(const std::string& dir, bool recursive = false);

// Creates the directory and its parents (like mkdir -p). Throws naming the path when it cannot,
// or when the path exists and is not a directory.
void ensure_dir(const std::string& path);

// Streams a file into place atomically, for outputs too large to build in memory first.
//
//   AtomicFileWriter w(path);   // creates ".<name>.tmp.<pid>.<n>" next to path
//   w.write(header, n); w.write(data, m);
//   w.commit();                 // fsync, rename over path, fsync the directory
//
// Destroying the writer without commit() (an exception on the way) removes the temporary file and
// leaves `path` untouched. The new file gets mode 0666 minus the umask, like a plain open(); a
// symbolic link at `path` is replaced by the file, not followed. A process killed mid-write leaves
// its hidden temporary file behind (never a partial `path`).
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path, Durability durability = Durability::power_loss);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
  Durability durability_;
};

}  // namespace fstm::io
