// A tensor shape of up to 5 dimensions. Activations are channels-last: [N, H, W, C].
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace fstm {

class Shape {
 public:
  static constexpr int kMaxDims = 5;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int size() const { return ndim_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t back() const { return dims_[ndim_ - 1]; }
  int64_t numel() const;
  std::vector<int64_t> to_vector() const { return {dims_, dims_ + ndim_}; }
  std::string str() const;  // "[64, 56, 56, 64]"

  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  int64_t dims_[kMaxDims] = {};
  int ndim_ = 0;
};

}  // namespace fstm
