// Tensor: a handle to a contiguous block of typed memory with a shape, on a device.
//
// Copying a Tensor copies the handle, not the data (like torch.Tensor). reshape() and slice()
// are views that share storage. Tensors are always contiguous; activations are channels-last
// ([N, H, W, C]) and convolution weights keep torchvision's [O, I/groups, kH, kW].
//
// Methods here are plain storage operations and are not recorded by autograd. Differentiable
// functions live in autograd/ops.h (fstm::ops).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace fstm {

class Node;  // autograd/node.h

// Owns device memory and gives it back to its allocator.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t bytes = 0;
  Device device;
};

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  size_t offset = 0;  // bytes from storage->data
  Shape shape;
  DType dtype = DType::f32;
  std::string name;   // set for parameters, used in error messages

  // autograd state (see autograd/autograd.h)
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor, if recorded
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories --------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::cpu());
  static Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape,
                                Device device = Device::cpu());
  static Tensor scalar(float value, Device device = Device::cpu()) {
    return from_vector({value}, Shape{}, device);
  }

  // ---- properties -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int dim() const { return impl().shape.size(); }
  int64_t size(int d) const;  // negative d counts from the back
  int64_t numel() const { return impl().shape.numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_cuda() const { return device().is_cuda(); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  const std::string& name() const { return impl().name; }
  Tensor& set_name(std::string name) {
    impl().name = std::move(name);
    return *this;
  }
  // "tensor 'layer1.0.conv1.weight' [64, 64, 3, 3] f32" or "tensor [2, 3] f32" for error messages
  std::string describe() const;

  // Pointer to the first element; data<T>() checks that T matches the dtype.
  void* raw_data() const { return static_cast<char*>(impl().storage->data) + impl().offset; }
  template <typename T>
  T* data() const;

  // ---- views and copies (not recorded by autograd) -----------------------------------------
  Tensor reshape(const Shape& shape) const;           // view; numel must match
  Tensor slice(int64_t begin, int64_t end) const;     // view of rows [begin, end) of dim 0
  bool shares_storage(const Tensor& other) const;
  Tensor clone() const;
  Tensor to(Device device) const;    // returns *this when already there
  Tensor to(DType dtype) const;      // converts f32 <-> bf16/f16/i64/i32; *this when equal
  Tensor contiguous_copy() const { return clone(); }
  void copy_(const Tensor& src);     // same shape and dtype, any devices
  void fill_(float value);
  void zero_();
  std::vector<float> to_vector() const;   // converts to f32 on the host
  std::vector<int64_t> to_vector_i64() const;
  float item() const;                     // the one element of a 1-element tensor

  // ---- autograd state ----------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool value);
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // A new handle to the same storage with no autograd history.
  Tensor detach() const;

  TensorImpl& impl() const {
    FSTM_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
// bf16 and f16 are accessed as uint16_t; the dtype tells which.

template <typename T>
T* Tensor::data() const {
  if constexpr (std::is_same_v<T, uint16_t>) {
    FSTM_CHECK(dtype() == DType::bf16 || dtype() == DType::f16, describe(), " is not bf16/f16");
  } else {
    FSTM_CHECK(dtype() == DTypeOf<std::remove_const_t<T>>::value, describe(), " accessed as ",
               dtype_name(DTypeOf<std::remove_const_t<T>>::value));
  }
  return static_cast<T*>(raw_data());
}

// Shape checks with messages that name the tensor.
void check_shape(const Tensor& t, const Shape& expected, const char* what);
void check_same_shape(const Tensor& a, const Tensor& b, const char* op);
void check_f32(const Tensor& t, const char* op);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace fstm
