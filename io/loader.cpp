#include "io/loader.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tensor/error.h"

namespace fstm::io {

Balance parse_balance(const std::string& s) {
  if (s == "none") return Balance::none;
  if (s == "oversample") return Balance::oversample;
  if (s == "weight") return Balance::weight;
  throw Error(detail::concat("unknown balance '", s, "' (use none, oversample or weight)"));
}

const char* balance_name(Balance b) {
  switch (b) {
    case Balance::none: return "none";
    case Balance::oversample: return "oversample";
    case Balance::weight: return "weight";
  }
  return "?";
}

namespace {

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a combined with b
  uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
bool wanted(const std::vector<T>& filter, const T& value) {
  return filter.empty() || std::find(filter.begin(), filter.end(), value) != filter.end();
}

}  // namespace

struct DataLoader::State {
  FaceIndex index;
  LoaderOptions opt;
  std::vector<int64_t> selection, reals, fakes;
  int size = 0;
  AlignOptions align;  // the index's alignment on the output canvas
  bool aligned_index = false;
  int64_t per_epoch = 0, batches = 0;
  float w_real = 1, w_fake = 1;

  struct Slot {
    enum Status { free, filling, ready, lent } status = free;
    Tensor images;  // [B, S, S, 3] CPU
    std::vector<int64_t> frames, det, source, target;
    std::vector<float> weight;
    int64_t g = -1;  // global batch number: epoch * batches + batch
    std::string error;
  };

  std::mutex mu;
  std::condition_variable cv;  // any state change
  std::vector<Slot> slots;
  std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders;  // epoch -> frames
  int64_t next_fill = 0, next_deliver = 0;
  bool end_signalled = true;  // no end-of-epoch false before the first batch
  std::atomic<bool> stop{false};  // also read by workers mid-batch without the mutex (fill)
  uint64_t generation = 0;
  int lent = -1;
  std::vector<std::thread> workers;

  std::mutex bad_mu;
  std::set<int64_t> bad;

  // ---- set-up --------------------------------------------------------------------------------
  void init() {
    FSTM_CHECK(opt.max_bad_fraction >= 0 && opt.max_bad_fraction <= 1, "loader: max_bad_fraction ",
               opt.max_bad_fraction, " is not in [0, 1]");
    FSTM_CHECK(opt.batch_size >= 1 && opt.workers >= 1 && opt.prefetch >= 1, "loader: batch size ", opt.batch_size,
               ", workers ", opt.workers, " and prefetch ", opt.prefetch, " must be >= 1");
    size = opt.size > 0 ? opt.size : index.settings.size;
    FSTM_CHECK(size >= 8 && size <= 4096, "loader: image size ", size, " is not in 8..4096");
    aligned_index = index.settings.align == "landmarks";
    align = eval_alignment(index.settings, size);
    for (size_t i = 0; i < index.frames.size(); ++i) {
      const IndexVideo& v = index.videos[size_t(index.frames[i].video)];
      if (!wanted(opt.splits, v.split) || !wanted(opt.methods, v.method) ||
          !wanted(opt.compressions, std::string(compression_name(v.compression))))
        continue;
      selection.push_back(int64_t(i));
      (v.det ? fakes : reals).push_back(int64_t(i));
    }
    FSTM_CHECK(!selection.empty(), "loader: no frame of the index matches the filters (splits, methods, compressions)");
    const double n = double(selection.size());
    if (opt.balance == Balance::oversample) {
      FSTM_CHECK(!reals.empty() && !fakes.empty(), "loader: cannot balance real/fake: ", reals.size(), " real and ",
                 fakes.size(), " fake frames selected");
      per_epoch = 2 * int64_t(std::max(reals.size(), fakes.size()));
    } else {
      per_epoch = int64_t(selection.size());
    }
    if (opt.balance == Balance::weight) {
      w_real = reals.empty() ? 0 : float(n / (2.0 * reals.size()));
      w_fake = fakes.empty() ? 0 : float(n / (2.0 * fakes.size()));
    }
    batches = opt.drop_last ? per_epoch / opt.batch_size : (per_epoch + opt.batch_size - 1) / opt.batch_size;
    FSTM_CHECK(batches > 0, "loader: ", per_epoch, " samples per epoch make no full batch of ", opt.batch_size,
               " (use a smaller batch or drop_last = false)");
    slots.resize(size_t(opt.prefetch));
    for (int w = 0; w < opt.workers; ++w) workers.emplace_back([this] { work(); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  // The frames of an epoch, in order. Called with mu held.
  std::shared_ptr<const std::vector<int64_t>> order(int64_t epoch) {
    auto it = orders.find(epoch);
    if (it != orders.end()) return it->second;
    auto v = std::make_shared<std::vector<int64_t>>();
    if (opt.balance == Balance::oversample) {
      const bool more_fakes = fakes.size() >= reals.size();
      const std::vector<int64_t>& major = more_fakes ? fakes : reals;
      const std::vector<int64_t>& minor = more_fakes ? reals : fakes;
      *v = major;
      v->insert(v->end(), minor.begin(), minor.end());
      // the extra draws of the smaller class go through shuffled copies of it, so every frame
      // is repeated as evenly as possible
      Rng rng(mix(mix(opt.seed, uint64_t(epoch)), 1));
      std::vector<int64_t> pool;
      for (size_t extra = major.size() - minor.size(); extra > 0;) {
        pool = minor;
        for (size_t i = pool.size(); i > 1; --i) std::swap(pool[i - 1], pool[rng.below(i)]);
        const size_t take = std::min(extra, pool.size());
        v->insert(v->end(), pool.begin(), pool.begin() + long(take));
        extra -= take;
      }
    } else {
      *v = selection;
    }
    if (opt.shuffle) {
      Rng rng(mix(opt.seed, uint64_t(epoch)));
      for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[rng.below(i)]);
    }
    while (orders.size() > 4) orders.erase(orders.begin());  // keep the epochs in flight
    orders[epoch] = v;
    return v;
  }

  // ---- workers ---------------------------------------------------------------------------------
  void work() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] {
        return stop || (next_fill < next_deliver + opt.prefetch &&
                        slots[size_t(next_fill % opt.prefetch)].status == Slot::free);
      });
      if (stop) return;
      const int64_t g = next_fill++;
      Slot& slot = slots[size_t(g % opt.prefetch)];
      slot.status = Slot::filling;
      slot.g = g;
      const uint64_t gen = generation;
      const auto ord = order(g / batches);
      lock.unlock();

      slot.error.clear();
      try {
        fill(slot, g, *ord);
      } catch (const std::exception& e) {
        slot.error = e.what();
      }

      lock.lock();
      slot.status = (gen == generation && !stop) ? Slot::ready : Slot::free;
      lock.unlock();
      cv.notify_all();
    }
  }

  void fill(Slot& slot, int64_t g, const std::vector<int64_t>& ord) {
    const int64_t epoch = g / batches, k = g % batches;
    const int64_t begin = k * opt.batch_size;
    const int64_t count = std::min<int64_t>(opt.batch_size, per_epoch - begin);
    // Reuse the buffer unless the consumer still holds it (or a view of it).
    const bool shared = slot.images.defined() &&
                        (slot.images.impl_ptr().use_count() > 1 || slot.images.impl().storage.use_count() > 1);
    if (!slot.images.defined() || shared) slot.images = Tensor::empty(Shape{opt.batch_size, size, size, 3});
    slot.frames.assign(size_t(count), 0);
    slot.det.assign(size_t(count), 0);
    slot.source.assign(size_t(count), 0);
    slot.target.assign(size_t(count), 0);
    slot.weight.assign(size_t(count), 1.0f);
    for (int64_t i = 0; i < count; ++i) {
      if (stop) return;
      Rng rng(mix(mix(mix(opt.seed, uint64_t(epoch)), uint64_t(k)), uint64_t(i)));
      int64_t pos = begin + i;
      int64_t fi = ord[size_t(pos)];
      Image img;
      // A PNG that cannot be read is reported once and replaced by the next frame of the epoch.
      for (int attempt = 0;; ++attempt) {
        try {
          img = load_image(index.png_path(index.frames[size_t(fi)]));
          break;
        } catch (const Error& e) {
          {
            std::lock_guard<std::mutex> lock(bad_mu);
            if (bad.insert(fi).second) std::cerr << "fstm: warning: skipping unreadable face: " << e.what() << "\n";
            FSTM_CHECK(double(bad.size()) <= opt.max_bad_fraction * double(selection.size()), bad.size(), " of the ",
                       selection.size(), " selected face images are unreadable, more than --max-bad-fraction ",
                       opt.max_bad_fraction, ": the face folder looks broken (last: ", e.what(), ")");
          }
          FSTM_CHECK(attempt < 16, "loader: 16 unreadable face images in a row, last: ", e.what());
          pos = (pos + 1) % int64_t(ord.size());
          fi = ord[size_t(pos)];
        }
      }
      prepare(img, index.frames[size_t(fi)], rng);
      if (opt.transform) opt.transform(img, fi);
      image_into_batch(img, opt.norm, slot.images, i);
      const IndexVideo& v = index.videos[size_t(index.frames[size_t(fi)].video)];
      slot.frames[size_t(i)] = fi;
      slot.det[size_t(i)] = v.det;
      slot.source[size_t(i)] = v.source;
      slot.target[size_t(i)] = v.target;
      if (opt.balance == Balance::weight) slot.weight[size_t(i)] = v.det ? w_fake : w_real;
    }
  }

  void prepare(Image& img, const IndexFrame& f, Rng& rng) const {
    const bool can_align = aligned_index && f.has_points;
    if (opt.augment) augment_photometric(img, opt.augment_options, rng);
    if (opt.augment && opt.augment_options.align_jitter && can_align) {
      img = align_face(img, f.points, sample_alignment(opt.augment_options, align, rng));
    } else {
      img = fit_face(std::move(img), index, f, size);
    }
    if (opt.augment) maybe_flip(img, opt.augment_options, rng);
  }

  // ---- consumer --------------------------------------------------------------------------------
  bool next(Batch& out) {
    out = Batch{};  // drop our references to the last batch so its buffer can be refilled
    std::unique_lock<std::mutex> lock(mu);
    if (lent >= 0) {
      slots[size_t(lent)].status = Slot::free;
      lent = -1;
      cv.notify_all();
    }
    if (next_deliver % batches == 0 && !end_signalled) {
      end_signalled = true;
      return false;
    }
    const int64_t g = next_deliver;
    Slot& slot = slots[size_t(g % opt.prefetch)];
    cv.wait(lock, [&] { return stop || (slot.status == Slot::ready && slot.g == g); });
    FSTM_CHECK(!stop, "loader: stopped");
    ++next_deliver;
    end_signalled = false;
    if (!slot.error.empty()) {
      slot.status = Slot::free;
      cv.notify_all();
      throw Error("loader: batch " + std::to_string(g % batches) + " of epoch " + std::to_string(g / batches) +
                  ": " + slot.error);
    }
    const int64_t n = int64_t(slot.frames.size());
    const Device dev = opt.device;
    out.images = n == slot.images.size(0) ? slot.images : slot.images.slice(0, n);
    if (!dev.is_cpu()) out.images = out.images.to(dev);
    out.det = Tensor::from_vector_i64(slot.det, Shape{n}, dev);
    out.source = Tensor::from_vector_i64(slot.source, Shape{n}, dev);
    out.target = Tensor::from_vector_i64(slot.target, Shape{n}, dev);
    out.weight = Tensor::from_vector(slot.weight, Shape{n}, dev);
    out.frames = slot.frames;
    out.epoch = g / batches;
    out.batch = g % batches;
    if (dev.is_cpu()) {
      slot.status = Slot::lent;  // refilled after the next call (or into a new buffer if still held)
      lent = int(g % opt.prefetch);
    } else {
      slot.status = Slot::free;  // the data was copied to the device
      cv.notify_all();
    }
    return true;
  }

  LoaderPosition position() {
    std::lock_guard<std::mutex> lock(mu);
    return {next_deliver / batches, next_deliver % batches};
  }

  void seek(LoaderPosition p) {
    FSTM_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch < batches, "loader: cannot seek to batch ", p.batch,
               " of epoch ", p.epoch, " (", batches, " batches per epoch)");
    {
      std::lock_guard<std::mutex> lock(mu);
      ++generation;  // batches being filled now are dropped when done
      for (Slot& s : slots)
        if (s.status != Slot::filling) s.status = Slot::free;
      lent = -1;
      next_fill = next_deliver = p.epoch * batches + p.batch;
      end_signalled = true;
    }
    cv.notify_all();
  }
};

AlignOptions eval_alignment(const IndexSettings& settings, int size) {
  AlignOptions a;
  a.canvas = size;
  a.face_width = settings.face_width * float(size) / float(std::max(1, settings.size));
  a.scale = settings.scale;
  a.context = 1;
  return a;
}

Image fit_face(Image image, const FaceIndex& index, const IndexFrame& frame, int size) {
  if (image.width == size && image.height == size) return image;
  if (index.settings.align == "landmarks" && frame.has_points)
    return align_face(image, frame.points, eval_alignment(index.settings, size));
  return resize_bilinear(image, size, size);
}

Image load_face(const FaceIndex& index, const IndexFrame& frame, int size) {
  return fit_face(load_image(index.png_path(frame)), index, frame, size);
}

DataLoader::DataLoader(FaceIndex index, LoaderOptions options) : state_(std::make_unique<State>()) {
  state_->index = std::move(index);
  state_->opt = std::move(options);
  state_->init();
}

DataLoader::DataLoader(const std::string& index_path, LoaderOptions options)
    : DataLoader(FaceIndex::load(index_path), std::move(options)) {}

DataLoader::~DataLoader() { state_->shutdown(); }

bool DataLoader::next(Batch& out) { return state_->next(out); }
LoaderPosition DataLoader::position() const { return state_->position(); }
void DataLoader::seek(LoaderPosition position) { state_->seek(position); }
const FaceIndex& DataLoader::index() const { return state_->index; }
const std::vector<int64_t>& DataLoader::selection() const { return state_->selection; }
int64_t DataLoader::samples_per_epoch() const { return state_->per_epoch; }
int64_t DataLoader::batches_per_epoch() const { return state_->batches; }
std::array<int64_t, 2> DataLoader::class_counts() const {
  return {int64_t(state_->reals.size()), int64_t(state_->fakes.size())};
}
int64_t DataLoader::bad_files() const {
  std::lock_guard<std::mutex> lock(state_->bad_mu);
  return int64_t(state_->bad.size());
}
int DataLoader::image_size() const { return state_->size; }

}  // namespace fstm::io
