#include "fstm/lib/shapley.h"

#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>

#include "tensor/random.h"

namespace fstm {

ShapleySampler parse_shapley_sampler(std::string_view name) {
  if (name == "permutation") return ShapleySampler::Permutation;
  if (name == "per-grid") return ShapleySampler::PerGrid;
  if (name == "exact") return ShapleySampler::Exact;
  throw Error("unknown Shapley sampler '" + std::string(name) + "' (expected permutation, per-grid or exact)");
}

const char* shapley_sampler_name(ShapleySampler s) {
  switch (s) {
    case ShapleySampler::Permutation: return "permutation";
    case ShapleySampler::PerGrid: return "per-grid";
    case ShapleySampler::Exact: return "exact";
  }
  return "?";
}

double ShapleyResult::efficiency_gap() const {
  double sum = 0;
  for (double p : phi) sum += p;
  return sum - (v_full - v_empty);
}

int64_t planned_evaluations(int players, const ShapleyOptions& o) {
  if (o.sampler == ShapleySampler::Exact) return players <= 62 ? int64_t(1) << players : INT64_MAX;
  const int64_t per_sample = o.sampler == ShapleySampler::Permutation ? players - 1 : 2 * int64_t(players);
  return 2 + o.samples * per_sample;  // + the empty and the full coalition, once per map
}

void check_shapley_options(const ShapleyOptions& o, int players) {
  FSTM_CHECK(o.grid >= 2, "the grid must be at least 2x2, got ", o.grid, "x", o.grid);
  FSTM_CHECK(int64_t(o.grid) * o.grid == players, "a ", o.grid, "x", o.grid, " grid has ", o.grid * o.grid,
             " players, the values are over ", players);
  FSTM_CHECK(o.samples >= 1, "the number of samples T must be at least 1, got ", o.samples);
  FSTM_CHECK(o.until_instability >= 0 && std::isfinite(o.until_instability),
             "--until-instability must be a positive number, got ", o.until_instability);
  FSTM_CHECK(o.check_every >= 0 && o.min_samples >= 0, "check_every and min_samples must not be negative");
  FSTM_CHECK(o.sampler != ShapleySampler::Exact || players <= 16, "exact Shapley values enumerate 2^", players,
             " coalitions: use a grid of at most 4x4");
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One sample: a permutation (Permutation) or one coalition per grid (PerGrid), with its marginals
// kept apart until all its rows are evaluated, so an early stop never leaves half a sample in phi.
struct Unit {
  int64_t index = 0;
  int half = 0;
  std::vector<int32_t> ranks;  // [perms, L2]: position of each player
  std::vector<int32_t> order;  // [perms, L2]: player at each position
  std::vector<double> marginals;  // [L2]
  std::vector<float> without;     // PerGrid: v(S) of each grid's pair
  float previous = 0;             // Permutation: value of the last step
  int64_t rows_left = 0;
};

enum class Role : uint8_t { Empty, Full, Step, Without, With };

struct RowSpec {
  Unit* unit = nullptr;  // nullptr for Empty and Full
  int32_t perm = 0;      // permutation within the unit
  int32_t step = 0;      // coalition = the first `step` players of that permutation
  Role role = Role::Step;
  int32_t player = 0;    // With: the grid whose marginal this row completes
};

class Estimator {
 public:
  Estimator(CoalitionValues& values, const ShapleyOptions& o, const ShapleyProgress& progress)
      : values_(values), o_(o), progress_(progress), L2_(values.players()), rng_(o.seed) {
    check_shapley_options(o, L2_);
    FSTM_CHECK(values.max_batch() >= 1, "the model's batch size must be at least 1");
    balance_ = o.antithetic ? 4 : 2;  // samples after which both halves hold as many
    check_every_ = o.check_every > 0 ? o.check_every : 2 * balance_;
    check_every_ = (check_every_ + balance_ - 1) / balance_ * balance_;
    min_samples_ = o.min_samples > 0 ? o.min_samples : 2 * check_every_;
    for (auto& s : sums_) s.assign(size_t(L2_), 0.0);
    identity_.resize(size_t(L2_));
    std::iota(identity_.begin(), identity_.end(), 0);
  }

  ShapleyResult run() {
    const auto t0 = Clock::now();
    pending_.push_back({nullptr, 0, 0, Role::Empty, 0});
    pending_.push_back({nullptr, 0, L2_, Role::Full, 0});
    const int64_t planned = planned_evaluations(L2_, o_);
    const int64_t B = values_.max_batch();
    MaskBatch batch(L2_);
    std::vector<float> v(static_cast<size_t>(B));
    int64_t evaluated = 0;
    while (true) {
      while (!stop_ && started_ < o_.samples && int64_t(pending_.size()) < B) start_unit();
      if (pending_.empty()) break;
      const int64_t n = std::min<int64_t>(B, int64_t(pending_.size()));
      fill_batch(batch, n);
      values_.evaluate(batch, v.data());
      evaluated += n;
      for (int64_t r = 0; r < n && !stop_; ++r) scatter(pending_[size_t(r)], v[size_t(r)]);
      pending_.erase(pending_.begin(), pending_.begin() + n);
      if (progress_) progress_(evaluated, planned);
      if (stop_) break;
    }
    return finish(evaluated, std::chrono::duration<double>(Clock::now() - t0).count());
  }

 private:
  // A uniformly random permutation (Fisher-Yates) into order/ranks of permutation q of unit u.
  void draw_permutation(Unit& u, int q) {
    int32_t* order = &u.order[size_t(q) * L2_];
    std::iota(order, order + L2_, 0);
    for (int i = L2_ - 1; i > 0; --i) std::swap(order[i], order[rng_.below(uint64_t(i) + 1)]);
  }

  void set_ranks(Unit& u, int perms) {
    for (int q = 0; q < perms; ++q)
      for (int k = 0; k < L2_; ++k) u.ranks[size_t(q) * L2_ + size_t(u.order[size_t(q) * L2_ + k])] = k;
  }

  void start_unit() {
    const int64_t i = started_++;
    const bool per_grid = o_.sampler == ShapleySampler::PerGrid;
    const int perms = per_grid ? L2_ : 1;
    Unit& u = units_.emplace_back();
    u.index = i;
    u.half = int((o_.antithetic ? i / 2 : i) % 2);
    u.order.resize(size_t(perms) * L2_);
    u.ranks.resize(size_t(perms) * L2_);
    u.marginals.assign(size_t(L2_), 0.0);
    if (o_.antithetic && i % 2 == 1) {  // the reverse of the previous sample's permutations
      for (int q = 0; q < perms; ++q)
        for (int k = 0; k < L2_; ++k)
          u.order[size_t(q) * L2_ + k] = last_order_[size_t(q) * L2_ + size_t(L2_ - 1 - k)];
    } else {
      for (int q = 0; q < perms; ++q) draw_permutation(u, q);
      if (o_.antithetic) last_order_ = u.order;  // the previous sample may be complete (and gone) by then
    }
    set_ranks(u, perms);
    if (per_grid) {
      u.without.assign(size_t(L2_), 0.0f);
      u.rows_left = 2 * int64_t(L2_);
      for (int g = 0; g < L2_; ++g) {
        const int32_t k = u.ranks[size_t(g) * L2_ + g];  // g's position in its own permutation
        pending_.push_back({&u, g, k, Role::Without, g});
        pending_.push_back({&u, g, k + 1, Role::With, g});
      }
    } else {
      u.rows_left = L2_ - 1;
      for (int32_t k = 1; k < L2_; ++k) pending_.push_back({&u, 0, k, Role::Step, 0});
    }
  }

  // The first n pending rows as a mask batch; consecutive rows of one permutation share its slot.
  void fill_batch(MaskBatch& batch, int64_t n) {
    batch.clear();
    const void* last_unit = &batch;  // never a unit
    int32_t last_perm = -1, slot = -1;
    for (int64_t r = 0; r < n; ++r) {
      const RowSpec& s = pending_[size_t(r)];
      if (s.unit != last_unit || s.perm != last_perm) {
        slot = batch.add_permutation(s.unit ? &s.unit->ranks[size_t(s.perm) * L2_] : identity_.data());
        last_unit = s.unit;
        last_perm = s.perm;
      }
      batch.add_row(slot, s.step);
    }
  }

  void scatter(const RowSpec& s, float v) {
    switch (s.role) {
      case Role::Empty: v_empty_ = v; return;
      case Role::Full: v_full_ = v; return;
      case Role::Step: {  // the player i = order[step - 1] joined S: phi_i += v(S + i) - v(S)
        Unit& u = *s.unit;
        const int32_t* order = u.order.data();
        const float before = s.step == 1 ? v_empty_ : u.previous;
        u.marginals[size_t(order[s.step - 1])] += double(v) - double(before);
        u.previous = v;
        if (s.step == L2_ - 1) u.marginals[size_t(order[L2_ - 1])] += double(v_full_) - double(v);
        break;
      }
      case Role::Without: s.unit->without[size_t(s.player)] = v; break;
      case Role::With:  // phi_g += v(S + g) - v(S)
        s.unit->marginals[size_t(s.player)] += double(v) - double(s.unit->without[size_t(s.player)]);
        break;
    }
    if (--s.unit->rows_left == 0) commit(*s.unit);
  }

  ShapleyMap half_mean(int h) const {
    ShapleyMap m(size_t(L2_), 0.0);
    if (counts_[h] == 0) return m;
    for (int c = 0; c < L2_; ++c) m[size_t(c)] = sums_[h][size_t(c)] / double(counts_[h]);
    return m;
  }

  void commit(const Unit& u) {
    FSTM_CHECK(!units_.empty() && &units_.front() == &u, "Shapley estimator: samples completed out of order");
    for (int c = 0; c < L2_; ++c) sums_[u.half][size_t(c)] += u.marginals[size_t(c)];
    ++counts_[u.half];
    ++completed_;
    units_.pop_front();
    if (completed_ % check_every_ != 0 || counts_[0] != counts_[1]) return;
    const double inst = map_instability(half_mean(0), half_mean(1));
    curve_.push_back({counts_[0], inst, 0.0, 1});
    if (o_.until_instability > 0 && completed_ >= min_samples_ && completed_ < o_.samples &&
        inst < o_.until_instability) {
      stop_ = true;
      stopped_early_ = true;
    }
  }

  ShapleyResult finish(int64_t evaluated, double seconds) {
    ShapleyResult r;
    r.grid = o_.grid;
    r.v_full = v_full_;
    r.v_empty = v_empty_;
    r.samples = completed_;
    r.phi.assign(size_t(L2_), 0.0);
    for (int h = 0; h < 2; ++h) {
      r.samples_half[h] = counts_[h];
      r.phi_half[h] = half_mean(h);
      for (int c = 0; c < L2_; ++c) r.phi[size_t(c)] += sums_[h][size_t(c)];
    }
    for (double& p : r.phi) p /= double(std::max<int64_t>(completed_, 1));
    r.instability = counts_[0] > 0 && counts_[1] > 0 ? map_instability(r.phi_half[0], r.phi_half[1]) : kNaN;
    r.curve = curve_;
    r.stopped_early = stopped_early_;
    r.evaluations = evaluated;
    r.timing = values_.timing();
    r.forward_rows = r.timing.forward_rows > 0 ? r.timing.forward_rows : evaluated;
    r.seconds = seconds;
    return r;
  }

  CoalitionValues& values_;
  const ShapleyOptions& o_;
  const ShapleyProgress& progress_;
  const int L2_;
  Rng rng_;
  int64_t balance_ = 2, check_every_ = 4, min_samples_ = 8;
  std::vector<int32_t> identity_, last_order_;
  std::deque<Unit> units_;  // started, not yet complete (references stay valid at both ends)
  std::deque<RowSpec> pending_;
  int64_t started_ = 0, completed_ = 0, counts_[2] = {0, 0};
  std::vector<double> sums_[2];
  float v_full_ = 0, v_empty_ = 0;
  InstabilityCurve curve_;
  bool stop_ = false, stopped_early_ = false;
};

}  // namespace

ShapleyResult estimate_shapley(CoalitionValues& values, const ShapleyOptions& options, const ShapleyProgress& progress) {
  if (options.sampler == ShapleySampler::Exact) {
    check_shapley_options(options, values.players());
    ShapleyResult r = exact_shapley(values, options.grid);
    if (progress) progress(r.evaluations, r.evaluations);
    return r;
  }
  return Estimator(values, options, progress).run();
}

ShapleyResult exact_shapley(CoalitionValues& values, int grid) {
  const int n = grid * grid;
  FSTM_CHECK(grid >= 1 && n <= 16, "exact Shapley values enumerate 2^n coalitions: n = ", n, " is too many");
  FSTM_CHECK(values.players() == n, "a ", grid, "x", grid, " grid for values over ", values.players(), " players");
  const auto t0 = Clock::now();
  const int64_t coalitions = int64_t(1) << n;
  std::vector<double> v(static_cast<size_t>(coalitions));
  MaskBatch batch(n);
  std::vector<float> out(size_t(values.max_batch()));
  for (int64_t first = 0; first < coalitions; first += values.max_batch()) {
    const int64_t last = std::min(coalitions, first + values.max_batch());
    batch.clear();
    for (int64_t s = first; s < last; ++s) {
      std::vector<bool> present(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) present[size_t(c)] = (s >> c) & 1;
      batch.add_coalition(present);
    }
    values.evaluate(batch, out.data());
    for (int64_t s = first; s < last; ++s) v[size_t(s)] = out[size_t(s - first)];
  }
  // phi_i = sum over S not holding i of w(|S|) [v(S + i) - v(S)], w(k) = k! (n - k - 1)! / n!
  std::vector<double> factorial(size_t(n) + 1, 1.0);
  for (int i = 1; i <= n; ++i) factorial[size_t(i)] = factorial[size_t(i) - 1] * i;
  ShapleyResult r;
  r.grid = grid;
  r.phi.assign(size_t(n), 0.0);
  for (int64_t s = 0; s < coalitions; ++s) {
    const int k = __builtin_popcountll(uint64_t(s));
    for (int c = 0; c < n; ++c) {
      if ((s >> c) & 1) continue;
      const double w = factorial[size_t(k)] * factorial[size_t(n - k - 1)] / factorial[size_t(n)];
      r.phi[size_t(c)] += w * (v[size_t(s | (int64_t(1) << c))] - v[size_t(s)]);
    }
  }
  r.v_empty = v[0];
  r.v_full = v[size_t(coalitions - 1)];
  r.evaluations = coalitions;
  r.samples = 0;
  r.instability = kNaN;
  r.timing = values.timing();
  r.forward_rows = r.timing.forward_rows > 0 ? r.timing.forward_rows : coalitions;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

ShapleyValue parse_shapley_value(std::string_view name) {
  if (name == "logit") return ShapleyValue::Logit;
  if (name == "margin") return ShapleyValue::Margin;
  throw Error("unknown Shapley value '" + std::string(name) + "' (expected logit or margin)");
}

const char* shapley_value_name(ShapleyValue v) { return v == ShapleyValue::Margin ? "margin" : "logit"; }

ValueTarget value_target(int64_t target, int64_t classes, const ShapleyOptions& options) {
  if (options.value == ShapleyValue::Logit) return ValueTarget(target);
  FSTM_CHECK(classes == 2, "the margin value needs a two-class model (a detector); this one has ", classes,
             " classes: explain its logit instead");
  return ValueTarget(target, 1 - target);
}

ShapleyResult explain_image(InferencePlan& plan, const Tensor& image, int64_t target, const ShapleyOptions& options,
                            const ShapleyProgress& progress, const Tensor& pristine) {
  const Shape& in = plan.input_shape();
  FSTM_CHECK(in.size() == 4, "the plan's input must be [N, H, W, C], got ", in.str());
  const GridGeometry geometry = GridGeometry::make(int(in[1]), int(in[2]), options.grid);
  BaselineInputs inputs;
  inputs.normalization = options.normalization;
  inputs.blur_sigma = options.blur_sigma;
  inputs.grid = options.grid;
  inputs.pristine = pristine;
  const Tensor baseline = make_baseline(image, options.baseline, inputs);
  const Shape& out = plan.graph().values[size_t(plan.graph().output)];
  FSTM_CHECK(out.size() == 2, "the model must output logits [N, K], its plan outputs ", out.str());
  PlanValues values(plan, image, baseline, geometry, value_target(target, out[1], options));
  return estimate_shapley(values, options, progress);
}

}  // namespace fstm
