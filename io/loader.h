// DataLoader: batches of extracted faces from a FaceIndex, for training and evaluation.
//
// Worker threads read PNGs, augment them, align (with jitter, when the index has the 5 points),
// flip, normalise and write them into preallocated [B, S, S, 3] f32 batches (channels-last, as the
// engine's activations); a bounded queue of `prefetch` batches sits between them and next().
//
// Determinism: epoch e's order is a shuffle seeded by (seed, e), and sample i of batch k has its
// own augmentation stream seeded by (seed, e, k, i). So batches do not depend on the number of
// workers or on timing, and seek({e, k}) resumes mid-epoch with exactly the batches an
// uninterrupted run would have produced.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/augment.h"
#include "io/dataset.h"
#include "io/image.h"
#include "tensor/tensor.h"

namespace fstm::io {

enum class Balance {
  none,        // every selected frame once per epoch
  oversample,  // the smaller class (real or fake) is drawn again until both are equal (1:1)
  weight,      // every frame once; Batch::weight = N / (2 N_class), for a weighted loss
};
Balance parse_balance(const std::string& s);  // "none", "oversample", "weight"
const char* balance_name(Balance b);

struct LoaderOptions {
  // which frames (empty = all)
  std::vector<std::string> splits = {"train"};
  std::vector<std::string> methods;  // "original" selects the reals
  std::vector<std::string> compressions;

  int batch_size = 32;
  int workers = 2;
  int prefetch = 4;         // batches filled ahead of next() (>= 1)
  bool shuffle = true;
  bool drop_last = true;    // false: the last batch of an epoch may be smaller
  uint64_t seed = 0;
  Balance balance = Balance::none;

  bool augment = false;     // photometric + alignment jitter + flip (training)
  AugmentOptions augment_options;
  int size = 0;             // output S (0: the index's size)
  Normalization norm;       // ImageNet mean/std by default
  Device device = Device::cpu();
  // Unreadable PNGs are reported once each and replaced by the next frame; more than this
  // fraction of the selected frames is an error (a broken folder, not a few bad files).
  double max_bad_fraction = kDefaultMaxBadFraction;
  // Applied to each 8-bit image after alignment and augmentation, before normalisation, with the
  // frame's index in FaceIndex::frames (evaluation perturbations). Called from worker threads.
  std::function<void(Image& image, int64_t frame)> transform;
};

struct Batch {
  Tensor images;               // [B, S, S, 3] f32, on the requested device
  Tensor det, source, target;  // [B] i64
  Tensor weight;               // [B] f32: the class weight (Balance::weight), else 1
  std::vector<int64_t> frames; // indices into index().frames
  int64_t epoch = 0, batch = 0;
  int64_t size() const { return int64_t(frames.size()); }
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch next() delivers
  bool operator==(const LoaderPosition& o) const { return epoch == o.epoch && batch == o.batch; }
};

// A face as evaluation sees it (no augmentation): the PNG of `frame`, re-aligned with its 5 points
// (landmark indexes) or resized to size x size when it is not that size already.
AlignOptions eval_alignment(const IndexSettings& settings, int size);  // the template at `size`, no jitter
Image fit_face(Image image, const FaceIndex& index, const IndexFrame& frame, int size);
Image load_face(const FaceIndex& index, const IndexFrame& frame, int size);  // throws naming the PNG

class DataLoader {
 public:
  DataLoader(FaceIndex index, LoaderOptions options);
  DataLoader(const std::string& index_path, LoaderOptions options);
  ~DataLoader();  // stops the workers, also in the middle of an epoch
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch. Returns false once at the end of each epoch (out is cleared); the call after
  // that starts the next epoch. The images stay valid as long as `out` (or a copy) holds them:
  // a buffer still referenced elsewhere is never refilled.
  bool next(Batch& out);
  LoaderPosition position() const;
  void seek(LoaderPosition position);  // resume; discards what was prefetched

  const FaceIndex& index() const;
  const std::vector<int64_t>& selection() const;  // the frames the filters kept
  int64_t samples_per_epoch() const;              // after balancing
  int64_t batches_per_epoch() const;
  std::array<int64_t, 2> class_counts() const;    // real, fake frames selected
  int64_t bad_files() const;                      // PNGs that could not be read (replaced)
  int image_size() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace fstm::io
