// safetensors checkpoints (io/safetensors.h) and the file utilities under them (io/fs.h).
//
// The oracle for the format is the specification itself: expected files are spelled out byte by
// byte here, and bad files are made by editing a valid file's header text. Compatibility with
// PyTorch state dicts and the reference `safetensors` package is tested in
// tests/py_test_safetensors.py and tests/py_test_safetensors_pypi.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>

#include "io/fs.h"
#include "io/safetensors.h"
#include "tests/test_support.h"

using namespace fstm;
using namespace fstm::io;
namespace fs = std::filesystem;

namespace {

// ---- byte helpers independent of the code under test -----------------------------------------

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void spill(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from header text and data bytes.
std::string assemble(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

template <typename T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string s(values.size() * sizeof(T), '\0');
  std::memcpy(s.data(), std::data(values), s.size());
  return s;
}

struct Split {
  std::string header, data;
};
Split split(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(file[i]);
  return {file.substr(8, n), file.substr(8 + n)};
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Passes when `f` throws fstm::Error whose message contains every part.
template <typename F>
::testing::AssertionResult throws_with(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << msg;
    return ::testing::AssertionSuccess() << msg;
  }
  return ::testing::AssertionFailure() << "no fstm::Error thrown";
}

Tensor bits16(std::initializer_list<uint16_t> bits, DType dtype) {
  Tensor t = Tensor::empty(Shape{int64_t(bits.size())}, dtype);
  std::memcpy(t.raw_data(), std::data(bits), t.nbytes());
  return t;
}

template <typename T>
Tensor typed(std::initializer_list<T> values, const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  EXPECT_EQ(size_t(t.nbytes()), values.size() * sizeof(T));
  std::memcpy(t.raw_data(), std::data(values), t.nbytes());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// A small valid file covering every layout rule: metadata, an 8-byte scalar first (sorted by
// element size), f32 matrices, a 2-byte tensor last.
StateDict small_state() {
  return StateDict{{"w", Tensor::from_vector({1, 2, 3, 4, 5, 6}, Shape{2, 3})},
                   {"b", Tensor::from_vector({-1, 0.5f, 7}, Shape{3})},
                   {"h", bits16({0x3f80, 0xc000}, DType::bf16)},
                   {"n", Tensor::from_vector_i64({42}, Shape{})}};
}
const char* const kSmallHeader =
    R"({"__metadata__":{"epoch":"7"},"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
    R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[8,32]},"b":{"dtype":"F32","shape":[3],"data_offsets":[32,44]},)"
    R"("h":{"dtype":"BF16","shape":[2],"data_offsets":[44,48]}})";

// The small file with `from` replaced by `to` in its header (the length prefix follows).
std::string corrupted(const std::string& valid, const std::string& from, const std::string& to) {
  Split s = split(valid);
  const size_t at = s.header.find(from);
  EXPECT_NE(at, std::string::npos) << "'" << from << "' not in header " << s.header;
  if (at != std::string::npos) s.header.replace(at, from.size(), to);
  return assemble(s.header, s.data);
}

class SafetensorsBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("st");
    valid_path_ = dir_ + "/valid.safetensors";
    write_safetensors(valid_path_, small_state(), {{"epoch", "7"}});
    valid_ = slurp(valid_path_);
    ASSERT_NO_THROW(read_safetensors(valid_path_));
  }
  // Writes `bytes` to a file and expects reading it to fail with the path and every part.
  ::testing::AssertionResult rejects(const std::string& bytes, std::initializer_list<std::string> parts) {
    const std::string path = dir_ + "/bad" + std::to_string(count_++) + ".safetensors";
    spill(path, bytes);
    std::vector<std::string> all(parts);
    all.push_back(path);
    ::testing::AssertionResult r = throws_with([&] { read_safetensors(path); }, all);
    if (!r) r << " (file begins " << bytes.substr(8, 200) << ")";
    return r;
  }
  ::testing::AssertionResult rejects_edit(const std::string& from, const std::string& to,
                                          std::initializer_list<std::string> parts) {
    return rejects(corrupted(valid_, from, to), parts);
  }

  std::string dir_, valid_path_, valid_;
  int count_ = 0;
};

}  // namespace

// ---- the format, byte for byte ----------------------------------------------------------------

TEST(Safetensors, WritesTheSpecifiedBytes) {
  const std::string dir = test::temp_dir("st");
  write_safetensors(dir + "/a.safetensors", small_state(), {{"epoch", "7"}});
  std::string header = kSmallHeader;
  header.append((8 - header.size() % 8) % 8, ' ');  // padded with spaces to a multiple of 8
  const std::string data = bytes_of<int64_t>({42}) + bytes_of<float>({1, 2, 3, 4, 5, 6}) +
                           bytes_of<float>({-1, 0.5f, 7}) + bytes_of<uint16_t>({0x3f80, 0xc000});
  const std::string expected = assemble(header, data);
  const std::string actual = slurp(dir + "/a.safetensors");
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_EQ(split(actual).header, header);
  EXPECT_TRUE(actual == expected);
  EXPECT_EQ(actual.size() % 8, 0u);
}

TEST(Safetensors, ReadsAHandWrittenFile) {
  // Header order differs from data order; a 2-byte tensor sits at an odd-aligned spot for i32.
  const std::string header =
      R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[6,14]},"__metadata__":{"arch":"resnet18"},)"
      R"("a":{"dtype":"F16","shape":[1,3],"data_offsets":[0,6]},)"
      R"("z":{"dtype":"U8","shape":[0],"data_offsets":[14,14]}})";
  const std::string data = bytes_of<uint16_t>({0x3c00, 0xc000, 0x7bff}) + bytes_of<int32_t>({-5, 1 << 30});
  const std::string path = test::temp_dir("st") + "/hand.safetensors";
  spill(path, assemble(header, data));
  const SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(f.tensors.names(), (std::vector<std::string>{"a", "b", "z"}));  // data order
  EXPECT_EQ(f.metadata, (Metadata{{"arch", "resnet18"}}));
  EXPECT_EQ(f.at("a").dtype(), DType::f16);
  EXPECT_EQ(f.at("a").shape(), (Shape{1, 3}));
  EXPECT_EQ(f.at("a").to_vector(), (std::vector<float>{1.0f, -2.0f, 65504.0f}));
  EXPECT_EQ(f.at("b").dtype(), DType::i32);
  EXPECT_EQ(f.at("b").to_vector_i64(), (std::vector<int64_t>{-5, 1 << 30}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.at("b").raw_data()) % 4, 0u);  // copied to stay aligned
  EXPECT_EQ(f.at("z").shape(), (Shape{0}));
  EXPECT_EQ(f.at("a").name(), "a");
  EXPECT_TRUE(throws_with([&] { f.at("missing"); }, {path, "no tensor 'missing'"}));
}

// ---- round trips ------------------------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDtypeBitExactly) {
  Rng rng(7);
  // bf16/f16 patterns: +-0, 1, subnormals, max, inf, a NaN with payload; must come back unchanged.
  const Tensor bf = bits16({0x0000, 0x8000, 0x3f80, 0x0001, 0x7f7f, 0x7f80, 0xff80, 0x7fc1, 0x1234}, DType::bf16);
  const Tensor hf = bits16({0x0000, 0x8000, 0x3c00, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x7e01, 0x1234}, DType::f16);
  Tensor f32 = test::random_tensor(Shape{4, 3, 2, 5}, rng);
  f32.data<float>()[0] = -0.0f;
  f32.data<float>()[1] = std::numeric_limits<float>::denorm_min();
  f32.data<float>()[2] = std::numeric_limits<float>::quiet_NaN();
  const Tensor i64 = typed<int64_t>({INT64_MIN, -1, 0, 1, int64_t(1) << 53 | 1, INT64_MAX}, Shape{2, 3}, DType::i64);
  const Tensor i32 = typed<int32_t>({INT32_MIN, -7, INT32_MAX}, Shape{3}, DType::i32);
  const Tensor u8 = typed<uint8_t>({0, 1, 128, 255, 9}, Shape{5, 1}, DType::u8);
  const StateDict in{{"u8", u8}, {"bf16", bf}, {"f32", f32}, {"i32", i32}, {"f16", hf}, {"i64", i64}};
  const std::string path = test::temp_dir("st") + "/all.safetensors";
  write_safetensors(path, in);
  const SafetensorsFile out = read_safetensors(path);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (const auto& [name, t] : in) {
    EXPECT_TRUE(same_bytes(out.at(name), t)) << name << ": " << out.at(name).describe() << " vs " << t.describe();
    // Every tensor is naturally aligned in the file, so none needed a private copy.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(out.at(name).raw_data()) % dtype_size(t.dtype()), 0u) << name;
    EXPECT_TRUE(out.at(name).shares_storage(out.at("f32"))) << name << " was copied, not viewed";
  }
  EXPECT_TRUE(out.metadata.empty());
  EXPECT_EQ(split(slurp(path)).header.find("__metadata__"), std::string::npos);
  EXPECT_EQ(std::string(safetensors_dtype_name(DType::bf16)), "BF16");
}

TEST(Safetensors, ScalarsZeroSizeTensorsAndMetadata) {
  const StateDict in{{"scalar", Tensor::scalar(3.5f)},
                     {"empty", Tensor::empty(Shape{0}, DType::f32)},
                     {"empty3", Tensor::empty(Shape{3, 0, 2}, DType::i64)},
                     {"count", Tensor::from_vector_i64({0}, Shape{})}};
  const Metadata meta{{"arch", "resnet18"}, {"note", "visages, \xc3\xa9t\xc3\xa9 \"quoted\"\n"}, {"empty", ""}};
  const std::string path = test::temp_dir("st") + "/edge.safetensors";
  write_safetensors(path, in, meta);
  const SafetensorsFile out = read_safetensors(path);
  EXPECT_EQ(out.metadata, meta);
  EXPECT_EQ(out.at("scalar").shape(), Shape{});
  EXPECT_EQ(out.at("scalar").item(), 3.5f);
  EXPECT_EQ(out.at("empty").shape(), (Shape{0}));
  EXPECT_EQ(out.at("empty3").shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(out.at("empty3").dtype(), DType::i64);
  EXPECT_EQ(out.at("count").to_vector_i64(), (std::vector<int64_t>{0}));

  // No tensors at all is a valid file too.
  write_safetensors(path, StateDict{});
  EXPECT_EQ(slurp(path), assemble("{}      ", ""));
  EXPECT_EQ(read_safetensors(path).tensors.size(), 0u);
}

TEST(Safetensors, SameTensorsGiveSameBytes) {
  const std::string dir = test::temp_dir("st");
  Rng rng(3);
  auto make = [&](uint64_t seed) {
    Rng r(seed);
    return StateDict{{"conv.weight", test::random_tensor(Shape{8, 3, 3, 3}, r)},
                     {"bn.num_batches_tracked", Tensor::from_vector_i64({12}, Shape{})},
                     {"fc.bias", test::random_tensor(Shape{2}, r).to(DType::bf16)}};
  };
  const Metadata meta{{"z", "1"}, {"a", "2"}};
  write_safetensors(dir + "/1.safetensors", make(11), meta);
  write_safetensors(dir + "/2.safetensors", make(11), Metadata{{"a", "2"}, {"z", "1"}});
  EXPECT_TRUE(slurp(dir + "/1.safetensors") == slurp(dir + "/2.safetensors"));
  write_safetensors(dir + "/3.safetensors", make(12), meta);
  EXPECT_FALSE(slurp(dir + "/1.safetensors") == slurp(dir + "/3.safetensors"));
  // Reading and writing back reproduces the file.
  const SafetensorsFile f = read_safetensors(dir + "/1.safetensors");
  write_safetensors(dir + "/4.safetensors", f.tensors, f.metadata);
  EXPECT_TRUE(slurp(dir + "/1.safetensors") == slurp(dir + "/4.safetensors"));
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  const std::string dir = test::temp_dir("st");
  const StateDict reserved{{"__metadata__", Tensor::scalar(1)}}, not_utf8{{"bad\xff", Tensor::scalar(1)}};
  EXPECT_TRUE(throws_with([&] { write_safetensors(dir + "/a.safetensors", reserved); },
                          {dir + "/a.safetensors", "'__metadata__' is reserved"}));
  EXPECT_TRUE(throws_with([&] { write_safetensors(dir + "/b.safetensors", not_utf8); },
                          {dir + "/b.safetensors", "UTF-8"}));
  EXPECT_TRUE(throws_with([&] { StateDict{{"x", Tensor::scalar(1)}, {"x", Tensor::scalar(2)}}; },
                          {"duplicate tensor name 'x'"}));
  EXPECT_TRUE(throws_with([&] { StateDict d; d.add("u", Tensor()); }, {"'u'", "undefined"}));
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{});  // nothing half-written
}

// ---- bad files --------------------------------------------------------------------------------

TEST_F(SafetensorsBadInput, TheValidFileIsAsSpecified) {
  std::string header = kSmallHeader;
  header.append((8 - header.size() % 8) % 8, ' ');
  EXPECT_EQ(split(valid_).header, header);  // the edits below rely on this text
}

TEST_F(SafetensorsBadInput, TruncatedFiles) {
  EXPECT_TRUE(rejects("", {"truncated", "0 bytes", "8-byte header length"}));
  EXPECT_TRUE(rejects(valid_.substr(0, 5), {"truncated", "5 bytes"}));
  EXPECT_TRUE(rejects(valid_.substr(0, 40), {"header length", "larger than the rest of the file"}));
  // Data shorter than the offsets say: the last tensor goes past the end.
  EXPECT_TRUE(rejects(valid_.substr(0, valid_.size() - 2), {"tensor 'h'", "[44, 48]", "past the end", "truncated"}));
  EXPECT_TRUE(rejects(le64(uint64_t(1) << 62) + "{}", {"header length", "larger than"}));
}

TEST_F(SafetensorsBadInput, HeaderNotJsonOrNotAnObject) {
  EXPECT_TRUE(rejects_edit(R"("w":{)", R"("w":{{)", {"header is not valid JSON"}));
  EXPECT_TRUE(rejects(assemble("[1, 2, 3]", ""), {"header is not a JSON object but array"}));
  EXPECT_TRUE(rejects(assemble("", ""), {"not valid JSON"}));
  EXPECT_TRUE(rejects(assemble("{\"a\":\"\xff\"}", ""), {"not valid JSON"}));
}

TEST_F(SafetensorsBadInput, MissingOrMistypedFields) {
  EXPECT_TRUE(rejects_edit(R"("dtype":"F32","shape":[2,3],)", R"("shape":[2,3],)", {"tensor 'w'", "no 'dtype' field"}));
  EXPECT_TRUE(rejects_edit(R"("shape":[3],)", "", {"tensor 'b'", "no 'shape' field"}));
  EXPECT_TRUE(rejects_edit(R"(,"data_offsets":[44,48])", "", {"tensor 'h'", "no 'data_offsets' field"}));
  EXPECT_TRUE(rejects_edit(R"({"dtype":"I64","shape":[],"data_offsets":[0,8]})", "5",
                           {"tensor 'n'", "not an object but number"}));
  EXPECT_TRUE(rejects_edit(R"("dtype":"I64")", R"("dtype":64)", {"tensor 'n'", "'dtype' is not a string"}));
  EXPECT_TRUE(rejects_edit("[2,3]", "[2,-3]", {"tensor 'w'", "'shape' is not an array of non-negative integers"}));
  EXPECT_TRUE(rejects_edit("[2,3]", "[2,3.0]", {"tensor 'w'", "'shape' is not an array"}));
  EXPECT_TRUE(rejects_edit("[2,3]", R"("2x3")", {"tensor 'w'", "'shape' is not an array"}));
  EXPECT_TRUE(rejects_edit("[0,8]", "[0,8,9]", {"tensor 'n'", "'data_offsets' is not a pair"}));
  EXPECT_TRUE(rejects_edit("[0,8]", "[0,-8]", {"tensor 'n'", "'data_offsets' is not a pair"}));
  EXPECT_TRUE(rejects_edit(R"("shape":[3])", R"("shape":[1,1,1,1,1,3])", {"tensor 'b'", "6 dimensions", "at most 5"}));
}

TEST_F(SafetensorsBadInput, UnsupportedDtypes) {
  EXPECT_TRUE(rejects_edit(R"("dtype":"F32","shape":[2,3])", R"("dtype":"F64","shape":[2,3])",
                           {"tensor 'w'", "dtype 'F64' is not supported", "F32, F16, BF16, I64, I32, U8"}));
  EXPECT_TRUE(rejects_edit(R"("dtype":"BF16")", R"("dtype":"bf16")", {"tensor 'h'", "dtype 'bf16' is not supported"}));
  EXPECT_TRUE(rejects_edit(R"("dtype":"I64")", R"("dtype":"BOOL")", {"tensor 'n'", "dtype 'BOOL'"}));
}

TEST_F(SafetensorsBadInput, ShapeDoesNotMatchOffsets) {
  EXPECT_TRUE(rejects_edit("[2,3]", "[3,3]", {"tensor 'w'", "shape [3, 3] F32 needs 36 bytes", "[8, 32] hold 24"}));
  EXPECT_TRUE(rejects_edit(R"("dtype":"BF16")", R"("dtype":"F32")", {"tensor 'h'", "needs 8 bytes", "hold 4"}));
  EXPECT_TRUE(rejects_edit("[2,3]", "[4294967296,4294967296]", {"tensor 'w'", "too large"}));
}

TEST_F(SafetensorsBadInput, OffsetsOutOfRangeOverlappingOrNotCovering) {
  EXPECT_TRUE(rejects_edit(R"("shape":[2],"data_offsets":[44,48])", R"("shape":[4],"data_offsets":[44,52])",
                           {"tensor 'h'", "[44, 52]", "past the end of the data buffer (48 bytes"}));
  EXPECT_TRUE(rejects_edit("[8,32]", "[32,8]", {"tensor 'w'", "end before they begin"}));
  EXPECT_TRUE(rejects_edit("[32,44]", "[28,40]", {"tensor 'b'", "[28, 40]", "overlap tensor 'w'"}));
  EXPECT_TRUE(rejects_edit("[8,32]", "[0,24]", {"overlap tensor 'n'"}));
  // The tensors in order must leave no gap and cover the buffer to its end.
  EXPECT_TRUE(rejects(assemble(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                               std::string(12, '\0')),
                      {"bytes [4, 8)", "belong to no tensor", "before tensor 'b'"}));
  EXPECT_TRUE(rejects(valid_ + std::string(8, '\0'), {"last 8 bytes of the data buffer [48, 56) belong to no tensor"}));
  EXPECT_TRUE(rejects(assemble("{}", "x"), {"last 1 bytes"}));
}

TEST_F(SafetensorsBadInput, DuplicateNames) {
  EXPECT_TRUE(rejects_edit(R"("b":{)", R"("w":{)", {"duplicate tensor name 'w'"}));
  EXPECT_TRUE(rejects_edit(R"("shape":[3],)", R"("shape":[3],"shape":[3],)", {"duplicate key 'shape'", "'b'"}));
  EXPECT_TRUE(rejects_edit(R"({"epoch":"7"})", R"({"epoch":"7","epoch":"8"})", {"duplicate key 'epoch'"}));
}

TEST_F(SafetensorsBadInput, MetadataMustMapStringsToStrings) {
  EXPECT_TRUE(rejects_edit(R"("epoch":"7")", R"("epoch":7)", {"'__metadata__' value of 'epoch' is not a string", "7"}));
  EXPECT_TRUE(rejects_edit(R"("epoch":"7")", R"("epoch":["7"])", {"'epoch' is not a string but array"}));
  EXPECT_TRUE(rejects_edit(R"({"epoch":"7"})", R"(["7"])", {"'__metadata__' is not an object"}));
}

TEST(Safetensors, MissingFilesAndDirectories) {
  const std::string dir = test::temp_dir("st");
  EXPECT_TRUE(throws_with([&] { read_safetensors(dir + "/nope.safetensors"); },
                          {dir + "/nope.safetensors", "cannot open", "No such file"}));
  EXPECT_TRUE(throws_with([&] { read_safetensors(dir); }, {dir, "is a directory"}));
}

// ---- loading into a model ---------------------------------------------------------------------

namespace {
// A small model: what a ResNet exposes as parameters and buffers, under torchvision names.
StateDict small_model(int classes) {
  return StateDict{{"conv1.weight", Tensor::zeros(Shape{4, 3, 3, 3})},
                   {"bn1.weight", Tensor::zeros(Shape{4})},
                   {"bn1.running_mean", Tensor::zeros(Shape{4})},
                   {"bn1.num_batches_tracked", Tensor::zeros(Shape{}, DType::i64)},
                   {"fc.weight", Tensor::zeros(Shape{classes, 4})},
                   {"fc.bias", Tensor::zeros(Shape{classes})}};
}
// The same names with values, as a user's exported ImageNet checkpoint would hold them.
StateDict checkpoint(int classes, Rng& rng) {
  StateDict out;
  for (const auto& [name, t] : small_model(classes)) {
    if (t.dtype() == DType::i64) {
      out.add(name, Tensor::from_vector_i64({123456789012345}, Shape{}));
    } else {
      out.add(name, test::random_tensor(t.shape(), rng));
    }
  }
  return out;
}
}  // namespace

TEST(StateDictLoad, CopiesIntoTheModelsTensorsAndConvertsHalfTypes) {
  Rng rng(5);
  const StateDict ck = checkpoint(1000, rng);
  StateDict file_tensors;  // conv1 as bf16, bn1.weight as f16, the rest as stored
  for (const auto& [name, t] : ck) {
    if (name == "conv1.weight") file_tensors.add(name, t.to(DType::bf16));
    else if (name == "bn1.weight") file_tensors.add(name, t.to(DType::f16));
    else file_tensors.add(name, t);
  }
  const std::string path = test::temp_dir("st") + "/imagenet.safetensors";
  write_safetensors(path, file_tensors);

  const StateDict model = small_model(1000);
  const Tensor conv_handle = model.at("conv1.weight");  // the model's own tensor
  const LoadReport r = load_state_dict(read_safetensors(path), model);
  EXPECT_EQ(r.loaded.size(), 6u);
  EXPECT_TRUE(r.missing.empty() && r.unexpected.empty() && r.ignored.empty());

  // bf16 -> f32 is exact widening: compare against bf16_to_f32 of the stored bits.
  const Tensor conv_bits = file_tensors.at("conv1.weight");
  const uint16_t* bits = conv_bits.data<uint16_t>();
  for (int64_t i = 0; i < conv_bits.numel(); ++i) ASSERT_EQ(conv_handle.data<float>()[i], bf16_to_f32(bits[i])) << i;
  const Tensor bn_bits = file_tensors.at("bn1.weight");
  for (int64_t i = 0; i < bn_bits.numel(); ++i)
    ASSERT_EQ(model.at("bn1.weight").data<float>()[i], f16_to_f32(bn_bits.data<uint16_t>()[i])) << i;
  EXPECT_EQ(model.at("bn1.running_mean").to_vector(), ck.at("bn1.running_mean").to_vector());
  EXPECT_EQ(model.at("fc.weight").to_vector(), ck.at("fc.weight").to_vector());
  EXPECT_EQ(model.at("bn1.num_batches_tracked").data<int64_t>()[0], 123456789012345);
}

TEST(StateDictLoad, ReportsEveryProblemInOneMessageAndLoadsNothing) {
  Rng rng(6);
  StateDict source;
  for (const auto& [name, t] : checkpoint(1000, rng))
    if (name != "bn1.running_mean") source.add(name, t);  // missing
  source.add("layer9.weight", Tensor::zeros(Shape{2}));        // unexpected
  const StateDict model = small_model(2);                      // fc: 2 classes vs the file's 1000
  Tensor(model.at("bn1.weight")).fill_(9);  // handles share storage with the model

  EXPECT_TRUE(throws_with([&] { load_state_dict(source, "ck.safetensors", model); },
                          {"ck.safetensors: cannot load the state dict",
                           "1 missing key, 1 unexpected key, 2 mismatches",
                           "missing keys (in the model, not in the file): bn1.running_mean",
                           "unexpected keys (in the file, not in the model): layer9.weight",
                           "shape mismatch for 'fc.weight': model [2, 4], file [1000, 4]",
                           "shape mismatch for 'fc.bias': model [2], file [1000]", "nothing was loaded"}));
  EXPECT_EQ(model.at("bn1.weight").to_vector(), std::vector<float>(4, 9));  // untouched

  // Not strict: key problems are reported, shape mismatches still fail.
  LoadOptions loose;
  loose.strict = false;
  EXPECT_TRUE(throws_with([&] { load_state_dict(source, "ck", model, loose); },
                          {"2 mismatches", "'fc.weight'", "'fc.bias'"}));
  loose.ignore_prefixes = {"fc."};
  const LoadReport r = load_state_dict(source, "ck", model, loose);
  EXPECT_EQ(r.missing, std::vector<std::string>{"bn1.running_mean"});
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"layer9.weight"});
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.num_batches_tracked"}));
  EXPECT_EQ(model.at("bn1.weight").to_vector(), source.at("bn1.weight").to_vector());
  EXPECT_EQ(model.at("fc.bias").to_vector(), std::vector<float>(2, 0));  // kept its initial value
  EXPECT_EQ(model.at("bn1.running_mean").to_vector(), std::vector<float>(4, 0));
}

TEST(StateDictLoad, IgnoringTheHeadFineTunesFromImageNetWeights) {
  Rng rng(8);
  const StateDict source = checkpoint(1000, rng);
  const StateDict model = small_model(2);
  LoadOptions opts;
  opts.ignore_prefixes = {"fc."};
  const LoadReport r = load_state_dict(source, "imagenet", model, opts);  // strict for the rest
  EXPECT_EQ(r.loaded.size(), 4u);
  EXPECT_EQ(r.ignored, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_EQ(model.at("conv1.weight").to_vector(), source.at("conv1.weight").to_vector());
  // A prefix that the file has and the model lacks is listed once, not reported as unexpected.
  StateDict headless;
  for (const auto& [name, t] : model)
    if (name.rfind("fc.", 0) != 0) headless.add(name, t);
  const LoadReport r2 = load_state_dict(source, "imagenet", headless, opts);
  EXPECT_EQ(r2.ignored, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_TRUE(r2.unexpected.empty());
}

TEST(StateDictLoad, DtypeKindsMustMatch) {
  const StateDict model{{"bn.num_batches_tracked", Tensor::zeros(Shape{}, DType::i64)},
                        {"w", Tensor::zeros(Shape{2}, DType::bf16)}};
  const StateDict bad{{"bn.num_batches_tracked", Tensor::scalar(3)}, {"w", Tensor::from_vector({1, 2}, Shape{2})}};
  EXPECT_TRUE(throws_with([&] { load_state_dict(bad, "f", model); },
                          {"1 mismatch", "dtype mismatch for 'bn.num_batches_tracked': model i64, file f32"}));
  // Integers convert among themselves (an I32 counter into an i64 buffer), floats too (f32 -> bf16).
  const StateDict ok{{"bn.num_batches_tracked", typed<int32_t>({77}, Shape{}, DType::i32)},
                     {"w", Tensor::from_vector({1.5f, -2}, Shape{2})}};
  load_state_dict(ok, "f", model);
  EXPECT_EQ(model.at("bn.num_batches_tracked").data<int64_t>()[0], 77);
  EXPECT_EQ(model.at("w").to_vector(), (std::vector<float>{1.5f, -2}));
}

// ---- metadata helpers -------------------------------------------------------------------------

TEST(Safetensors, ModelMetadataRoundTripsThroughAFile) {
  ModelMetadata info;
  info.arch = "fst_matching_resnet18";
  info.num_classes = 2;
  info.input_size = 224;
  info.normalization = Normalization{};  // ImageNet
  info.extra = {{"epoch", "12"}, {"dataset", "ff++ c23"}};
  const Metadata m = to_metadata(info);
  EXPECT_EQ(m.at("arch"), "fst_matching_resnet18");
  EXPECT_EQ(m.at("num_classes"), "2");
  EXPECT_EQ(m.at("input_size"), "224");
  EXPECT_EQ(m.at("mean"), "[0.485, 0.456, 0.406]");
  EXPECT_EQ(m.at("std"), "[0.229, 0.224, 0.225]");

  const std::string path = test::temp_dir("st") + "/model.safetensors";
  write_safetensors(path, StateDict{{"x", Tensor::scalar(1)}}, m);
  const ModelMetadata back = parse_model_metadata(read_safetensors(path).metadata, path);
  EXPECT_EQ(back.arch, info.arch);
  EXPECT_EQ(back.num_classes, 2);
  EXPECT_EQ(back.input_size, 224);
  ASSERT_TRUE(back.normalization.has_value());
  EXPECT_EQ(back.normalization->mean, info.normalization->mean);  // exactly, not approximately
  EXPECT_EQ(back.normalization->std, info.normalization->std);
  EXPECT_EQ(back.extra, info.extra);

  const ModelMetadata none = parse_model_metadata({}, "x");
  EXPECT_TRUE(none.arch.empty() && none.num_classes == 0 && !none.normalization);
}

TEST(Safetensors, ModelMetadataErrorsNameTheFileAndKey) {
  EXPECT_TRUE(throws_with([] { parse_model_metadata({{"num_classes", "two"}}, "m.st"); },
                          {"m.st", "'num_classes' = 'two' is not a positive integer"}));
  EXPECT_TRUE(throws_with([] { parse_model_metadata({{"input_size", "224px"}}, "m.st"); }, {"'input_size'"}));
  EXPECT_TRUE(throws_with([] { parse_model_metadata({{"mean", "[0.5, 0.5, 0.5]"}}, "m.st"); },
                          {"m.st", "'mean' without 'std'"}));
  EXPECT_TRUE(throws_with([] { parse_model_metadata({{"mean", "[0.5, 0.5]"}, {"std", "[1, 1, 1]"}}, "m.st"); },
                          {"'mean' = '[0.5, 0.5]' is not a JSON array of 3 numbers"}));
  EXPECT_TRUE(throws_with([] { parse_model_metadata({{"mean", "[0, 0, 0]"}, {"std", "[1, 0, 1]"}}, "m.st"); },
                          {"'std'", "<= 0"}));
  ModelMetadata clash;
  clash.extra = {{"arch", "x"}};
  EXPECT_TRUE(throws_with([&] { to_metadata(clash); }, {"'arch' is reserved"}));
}

// ---- io/fs.h ----------------------------------------------------------------------------------

TEST(FileUtils, ReadWriteAndDirectories) {
  const std::string dir = test::temp_dir("fs");
  const std::string nested = dir + "/a/b/c";
  ensure_dir(nested);
  EXPECT_TRUE(fs::is_directory(nested));
  ensure_dir(nested);  // exists already: fine
  const std::vector<uint8_t> bytes = {0, 1, 2, 255, 0};
  write_file_atomic(nested + "/f.bin", bytes);
  EXPECT_EQ(read_file(nested + "/f.bin"), bytes);
  EXPECT_EQ(slurp(nested + "/f.bin"), std::string("\0\1\2\xff\0", 5));
  write_file_atomic(nested + "/f.bin", std::string_view("new"));
  EXPECT_EQ(slurp(nested + "/f.bin"), "new");
  write_file_atomic(nested + "/empty", std::string_view());
  EXPECT_TRUE(read_file(nested + "/empty").empty());

  EXPECT_TRUE(throws_with([&] { read_file(dir + "/none"); }, {dir + "/none", "cannot open"}));
  EXPECT_TRUE(throws_with([&] { read_file(dir); }, {dir, "is a directory"}));
  EXPECT_TRUE(throws_with([&] { ensure_dir(nested + "/f.bin"); }, {nested + "/f.bin", "not a directory"}));
  EXPECT_TRUE(throws_with([&] { ensure_dir(nested + "/f.bin/sub"); }, {nested + "/f.bin/sub", "cannot create"}));
  EXPECT_TRUE(throws_with([&] { write_file_atomic(dir + "/no/such/dir/x", std::string_view("x")); },
                          {dir + "/no/such/dir/x", "cannot create a file in directory"}));
  InputFile f(nested + "/f.bin");
  char buf[8];
  EXPECT_TRUE(throws_with([&] { f.read_at(1, buf, 3); }, {nested + "/f.bin", "truncated", "3 bytes at offset 1"}));
  EXPECT_EQ(dir_entries(nested), (std::vector<std::string>{"empty", "f.bin"}));  // no temporary files left
}

TEST(FileUtils, AtomicWriteNeverLeavesAPartialFile) {
  const std::string dir = test::temp_dir("fs");
  const std::string path = dir + "/model.safetensors";
  write_safetensors(path, small_state());
  const std::string old_bytes = slurp(path);
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"model.safetensors"});

  {  // an exception between the first and last byte: the writer is destroyed uncommitted
    AtomicFileWriter w(path);
    w.write("partial", 7);
    EXPECT_TRUE(fs::exists(w.temp_path()));
    EXPECT_EQ(fs::path(w.temp_path()).parent_path(), fs::path(dir));  // same file system as the target
    EXPECT_EQ(slurp(path), old_bytes);
  }
  EXPECT_EQ(slurp(path), old_bytes);
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"model.safetensors"});

  // A failing rename (the target is a directory) cleans up and names the path.
  const std::string busy = dir + "/busy";
  fs::create_directories(busy + "/inside");
  EXPECT_TRUE(throws_with([&] { write_safetensors(busy, small_state()); }, {busy, "cannot replace file"}));
  EXPECT_EQ(dir_entries(dir), (std::vector<std::string>{"busy", "model.safetensors"}));
  EXPECT_EQ(dir_entries(busy), std::vector<std::string>{"inside"});
}

TEST(FileUtils, ACrashMidWriteKeepsTheOldFile) {
  // The child process dies (no destructors, no commit) halfway through writing a new checkpoint.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string dir = test::temp_dir("fs");
  const std::string path = dir + "/model.safetensors";
  write_safetensors(path, small_state());
  const std::string old_bytes = slurp(path);
  EXPECT_EXIT(
      {
        AtomicFileWriter w(path);
        w.write(old_bytes.data(), old_bytes.size() / 2);
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(3), "");
  EXPECT_EQ(slurp(path), old_bytes);
  EXPECT_NO_THROW(read_safetensors(path));
  // The dead writer's temporary file is a hidden sibling; the next write still succeeds.
  std::vector<std::string> names = dir_entries(dir);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].rfind(".model.safetensors.tmp.", 0), 0u) << names[0];
  write_safetensors(path, StateDict{{"x", Tensor::scalar(2)}});
  EXPECT_EQ(read_safetensors(path).at("x").item(), 2.0f);

  // The next run in the folder removes the dead writer's file and keeps a live writer's.
  AtomicFileWriter live(dir + "/other.bin");
  std::ofstream(dir + "/.notes.tmp.txt") << "a user's file that merely looks similar";
  EXPECT_EQ(remove_stale_temp_files(dir), 1);
  EXPECT_EQ(dir_entries(dir), (std::vector<std::string>{".notes.tmp.txt", fs::path(live.temp_path()).filename().string(),
                                                         "model.safetensors"}));
  EXPECT_EQ(remove_stale_temp_files(dir), 0);
}
