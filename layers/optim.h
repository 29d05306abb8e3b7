// Optimizers with torch.optim semantics (SGD with momentum/nesterov/weight decay, AdamW) and
// learning-rate schedules. Updates run as one fused kernel per parameter (kernels/optim.h).
// Their state is a list of named tensors, so checkpoints can save it and --resume restore it.
#pragma once
#include <string>
#include <vector>

#include "layers/module.h"

namespace fstm {

class Optimizer {
 public:
  explicit Optimizer(NamedTensors params);
  virtual ~Optimizer() = default;

  virtual void step() = 0;
  void zero_grad();
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }

  // "<param>.<buffer>" -> tensor, plus "step" (i64 scalar).
  virtual NamedTensors state() const = 0;
  // Throws fstm::Error naming the entry when the state does not fit these parameters.
  virtual void load_state(const NamedTensors& state) = 0;

 protected:
  NamedTensors params_;
  float lr_ = 0.0f;
  int64_t step_ = 0;
};

struct SgdOptions {
  float lr = 0.01f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(NamedTensors params, const SgdOptions& options);
  void step() override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;
};

struct AdamWOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 1e-2f;
};

class AdamW : public Optimizer {
 public:
  AdamW(NamedTensors params, const AdamWOptions& options);
  void step() override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;

 private:
  AdamWOptions options_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

// Learning rate as a function of the optimizer step (0-based).
struct LrSchedule {
  enum class Kind { Constant, Step, Cosine };
  Kind kind = Kind::Constant;
  float base_lr = 1e-3f;
  int64_t step_size = 1;       // Step: multiply by gamma every step_size steps
  float gamma = 0.1f;
  int64_t warmup_steps = 0;    // Cosine: linear warm-up from base_lr / warmup_steps
  int64_t total_steps = 1;     // Cosine: reaches min_lr here
  float min_lr = 0.0f;

  float lr_at(int64_t step) const;
  static Kind parse_kind(const std::string& name);  // "constant", "step", "cosine"
  static const char* kind_name(Kind kind);
};

}  // namespace fstm
