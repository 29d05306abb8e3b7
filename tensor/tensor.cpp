#include "tensor/tensor.h"

#include <algorithm>
#include <cstring>

#include "tensor/allocator.h"

namespace fstm {

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  data = allocator_for(device).allocate(bytes);
}

Storage::~Storage() { allocator_for(device).deallocate(data, bytes); }

// ---- factories ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  FSTM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
             " values for shape ", shape.str());
  Tensor host = empty(shape, DType::f32);
  std::copy(values.begin(), values.end(), host.data<float>());
  return host.to(device);
}

Tensor Tensor::from_vector_i64(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  FSTM_CHECK(int64_t(values.size()) == shape.numel(), "from_vector_i64: ", values.size(),
             " values for shape ", shape.str());
  Tensor host = empty(shape, DType::i64);
  std::copy(values.begin(), values.end(), host.data<int64_t>());
  return host.to(device);
}

// ---- properties -----------------------------------------------------------------------------

int64_t Tensor::size(int d) const {
  const int n = dim();
  if (d < 0) d += n;
  FSTM_CHECK(d >= 0 && d < n, describe(), ": dimension ", d, " out of range");
  return shape()[d];
}

std::string Tensor::describe() const {
  if (!impl_) return "undefined tensor";
  std::string s = "tensor ";
  if (!impl_->name.empty()) s += "'" + impl_->name + "' ";
  s += impl_->shape.str() + " " + dtype_name(impl_->dtype);
  if (impl_->storage && impl_->storage->device.is_cuda()) s += " on " + impl_->storage->device.str();
  return s;
}

// ---- views and copies -----------------------------------------------------------------------

Tensor Tensor::reshape(const Shape& new_shape) const {
  FSTM_CHECK(new_shape.numel() == numel(), "cannot reshape ", describe(), " to ", new_shape.str());
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->offset = impl().offset;
  v->shape = new_shape;
  v->dtype = dtype();
  v->name = impl().name;
  return Tensor(std::move(v));
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  FSTM_CHECK(dim() >= 1, "cannot slice a 0-d ", describe());
  FSTM_CHECK(0 <= begin && begin <= end && end <= shape()[0], "slice [", begin, ", ", end,
             ") out of range for ", describe());
  const int64_t row = shape()[0] ? numel() / shape()[0] : 0;
  Shape s = shape();
  s[0] = end - begin;
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->offset = impl().offset + size_t(begin * row) * dtype_size(dtype());
  v->shape = s;
  v->dtype = dtype();
  v->name = impl().name;
  return Tensor(std::move(v));
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl().storage == other.impl().storage;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), dtype(), device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor t = empty(shape(), dtype(), dev);
  t.copy_(*this);
  return t;
}

namespace {
// Converts n elements between host buffers of the given dtypes, through f32.
void convert_host(const void* src, DType from, void* dst, DType to, int64_t n) {
  auto load = [&](int64_t i) -> double {
    switch (from) {
      case DType::f32: return static_cast<const float*>(src)[i];
      case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::i64: return double(static_cast<const int64_t*>(src)[i]);
      case DType::i32: return static_cast<const int32_t*>(src)[i];
      case DType::u8: return static_cast<const uint8_t*>(src)[i];
    }
    return 0;
  };
  for (int64_t i = 0; i < n; ++i) {
    const double v = load(i);
    switch (to) {
      case DType::f32: static_cast<float*>(dst)[i] = float(v); break;
      case DType::bf16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(float(v)); break;
      case DType::f16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(float(v)); break;
      case DType::i64: static_cast<int64_t*>(dst)[i] = int64_t(v); break;
      case DType::i32: static_cast<int32_t*>(dst)[i] = int32_t(v); break;
      case DType::u8: static_cast<uint8_t*>(dst)[i] = uint8_t(std::clamp(v, 0.0, 255.0)); break;
    }
  }
}
}  // namespace

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  if (device().is_cuda()) {  // convert where the data is, without a trip through the host
    Tensor out = empty(shape(), dt, device());
    if (cuda_backend()->convert(raw_data(), dtype(), out.raw_data(), dt, numel(), device())) return out;
  }
  Tensor host_src = to(Device::cpu());
  Tensor host_dst = empty(shape(), dt);
  convert_host(host_src.raw_data(), dtype(), host_dst.raw_data(), dt, numel());
  return host_dst.to(device());
}

void Tensor::copy_(const Tensor& src) {
  FSTM_CHECK(src.shape().numel() == numel() && src.dtype() == dtype(), "copy_ from ", src.describe(),
             " into ", describe());
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
}

void Tensor::fill_(float value) {
  if (value == 0.0f) {
    zero_();
    return;
  }
  Tensor host = device().is_cpu() ? *this : empty(shape(), dtype());
  const int64_t n = numel();
  switch (dtype()) {
    case DType::f32: std::fill_n(host.data<float>(), n, value); break;
    case DType::bf16: std::fill_n(host.data<uint16_t>(), n, f32_to_bf16(value)); break;
    case DType::f16: std::fill_n(host.data<uint16_t>(), n, f32_to_f16(value)); break;
    case DType::i64: std::fill_n(host.data<int64_t>(), n, int64_t(value)); break;
    case DType::i32: std::fill_n(host.data<int32_t>(), n, int32_t(value)); break;
    case DType::u8: std::fill_n(host.data<uint8_t>(), n, uint8_t(value)); break;
  }
  if (!device().is_cpu()) copy_(host);
}

void Tensor::zero_() {
  if (device().is_cpu()) {
    std::memset(raw_data(), 0, nbytes());
  } else {
    cuda_backend()->memset_zero(raw_data(), device(), nbytes());
  }
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = to(Device::cpu()).to(DType::f32);
  const float* p = f.data<float>();
  return std::vector<float>(p, p + numel());
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  Tensor f = to(Device::cpu()).to(DType::i64);
  const int64_t* p = f.data<int64_t>();
  return std::vector<int64_t>(p, p + numel());
}

float Tensor::item() const {
  FSTM_CHECK(numel() == 1, "item() of ", describe(), " which has ", numel(), " elements");
  return to_vector()[0];
}

Tensor& Tensor::set_requires_grad(bool value) {
  FSTM_CHECK(!value || dtype() == DType::f32, "only f32 tensors can require gradients: ", describe());
  impl().requires_grad = value;
  return *this;
}

Tensor Tensor::detach() const {
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->offset = impl().offset;
  v->shape = impl().shape;
  v->dtype = impl().dtype;
  v->name = impl().name;
  return Tensor(std::move(v));
}

// ---- checks ---------------------------------------------------------------------------------

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  FSTM_CHECK(t.shape() == expected, what, ": expected shape ", expected.str(), ", got ", t.describe());
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  FSTM_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", a.describe(), " vs ", b.describe());
}

void check_f32(const Tensor& t, const char* op) {
  FSTM_CHECK(t.dtype() == DType::f32, op, ": expected f32, got ", t.describe());
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  FSTM_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.describe(), " and ",
             b.describe());
}

}  // namespace fstm
