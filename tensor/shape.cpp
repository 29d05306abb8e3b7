#include "tensor/shape.h"

#include "tensor/error.h"

namespace fstm {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  FSTM_CHECK(dims.size() <= size_t(kMaxDims), "shape has ", dims.size(), " dimensions; at most ",
             kMaxDims, " are supported");
  ndim_ = int(dims.size());
  for (int i = 0; i < ndim_; ++i) {
    FSTM_CHECK(dims[i] >= 0, "negative dimension ", dims[i], " in shape");
    dims_[i] = dims[i];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (ndim_ != o.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

}  // namespace fstm
