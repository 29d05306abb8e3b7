#include "io/safetensors.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <numeric>
#include <tuple>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "io/fs.h"

namespace fstm::io {

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's key order

// The reference implementation refuses headers above 100 MB; a ResNet-18 header is about 15 kB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypes[] = {{DType::f32, "F32"}, {DType::f16, "F16"}, {DType::bf16, "BF16"},
                                 {DType::i64, "I64"}, {DType::i32, "I32"}, {DType::u8, "U8"}};

std::optional<DType> parse_st_dtype(const std::string& name) {
  for (const DTypeName& d : kDTypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

uint64_t load_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_u64_le(uint64_t v, uint8_t* p) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}

std::string join_shape(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// One header entry, validated on its own.
struct Entry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Parses the header JSON, reporting duplicate keys (which JSON parsers silently collapse).
Json parse_header_json(const std::string& text, const std::string& path) {
  struct Level {
    std::unordered_set<std::string> keys;
    std::string owner;     // the key whose value this object is ("" for the top level)
    std::string last_key;  // the most recent key at this level
  };
  std::vector<Level> levels;
  std::string duplicate;
  auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        levels.push_back({{}, levels.empty() ? "" : levels.back().last_key, ""});
        break;
      case Json::parse_event_t::object_end:
        if (!levels.empty()) levels.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!levels.empty() && parsed.is_string()) {
          Level& level = levels.back();
          level.last_key = parsed.get<std::string>();
          if (!level.keys.insert(level.last_key).second && duplicate.empty()) {
            duplicate = levels.size() == 1
                            ? "duplicate tensor name '" + level.last_key + "'"
                            : "duplicate key '" + level.last_key + "' in the entry '" + level.owner + "'";
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, callback);
  } catch (const Json::exception& e) {
    throw Error(detail::concat(path, ": header is not valid JSON (", e.what(), ")"));
  }
  FSTM_CHECK(duplicate.empty(), path, ": ", duplicate, " in the header");
  FSTM_CHECK(header.is_object(), path, ": header is not a JSON object but ", header.type_name());
  return header;
}

// A JSON array of non-negative integers, or nullopt.
std::optional<std::vector<uint64_t>> unsigned_array(const Json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<uint64_t> out;
  for (const Json& x : v) {
    if (!x.is_number_unsigned()) return std::nullopt;
    out.push_back(x.get<uint64_t>());
  }
  return out;
}

Entry parse_entry(const std::string& path, const std::string& name, const Json& v) {
  const std::string where = path + ": tensor '" + name + "'";
  FSTM_CHECK(v.is_object(), where, ": header entry is not an object but ", v.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    FSTM_CHECK(v.contains(field), where, ": header entry has no '", field, "' field");
  Entry e;
  e.name = name;

  const Json& dtype = v["dtype"];
  FSTM_CHECK(dtype.is_string(), where, ": 'dtype' is not a string but ", dtype.type_name());
  const std::optional<DType> dt = parse_st_dtype(dtype.get<std::string>());
  FSTM_CHECK(dt.has_value(), where, ": dtype '", dtype.get<std::string>(),
             "' is not supported (fstm reads F32, F16, BF16, I64, I32, U8)");
  e.dtype = *dt;

  const std::optional<std::vector<uint64_t>> dims = unsigned_array(v["shape"]);
  FSTM_CHECK(dims.has_value(), where, ": 'shape' is not an array of non-negative integers: ", v["shape"].dump());
  FSTM_CHECK(dims->size() <= size_t(Shape::kMaxDims), where, ": shape ", join_shape(*dims), " has ", dims->size(),
             " dimensions; fstm supports at most ", Shape::kMaxDims);
  uint64_t bytes = dtype_size(e.dtype);
  for (uint64_t d : *dims)
    FSTM_CHECK(!__builtin_mul_overflow(bytes, d, &bytes) && bytes <= uint64_t(INT64_MAX), where, ": shape ",
               join_shape(*dims), " is too large");
  e.shape = Shape(std::vector<int64_t>(dims->begin(), dims->end()));

  const std::optional<std::vector<uint64_t>> offsets = unsigned_array(v["data_offsets"]);
  FSTM_CHECK(offsets.has_value() && offsets->size() == 2, where,
             ": 'data_offsets' is not a pair of non-negative integers: ", v["data_offsets"].dump());
  e.begin = (*offsets)[0];
  e.end = (*offsets)[1];
  FSTM_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] end before they begin");
  FSTM_CHECK(e.end - e.begin == bytes, where, ": shape ", e.shape.str(), " ", dtype.get<std::string>(), " needs ",
             bytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin);
  return e;
}

Metadata parse_metadata(const std::string& path, const Json& v) {
  FSTM_CHECK(v.is_object(), path, ": '__metadata__' is not an object of strings but ", v.type_name());
  Metadata m;
  for (auto it = v.begin(); it != v.end(); ++it) {
    FSTM_CHECK(it.value().is_string(), path, ": '__metadata__' value of '", it.key(), "' is not a string but ",
               it.value().type_name(), " (", it.value().dump(), ")");
    m[it.key()] = it.value().get<std::string>();
  }
  return m;
}

// The tensors must tile [0, buffer_bytes) in offset order, without gaps or overlaps.
void check_layout(const std::string& path, std::vector<Entry>& entries, uint64_t buffer_bytes, uint64_t file_bytes) {
  for (const Entry& e : entries)
    FSTM_CHECK(e.end <= buffer_bytes, path, ": tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
               "] go past the end of the data buffer (", buffer_bytes, " bytes in a ", file_bytes,
               "-byte file): the file is truncated or the offsets are wrong");
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    FSTM_CHECK(e.begin >= covered, path, ": tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
               "] overlap tensor '", previous ? previous->name : "", "' [", previous ? previous->begin : 0, ", ",
               covered, "]");
    FSTM_CHECK(e.begin == covered, path, ": bytes [", covered, ", ", e.begin,
               ") of the data buffer belong to no tensor (a gap before tensor '", e.name, "')");
    covered = e.end;
    previous = &e;
  }
  FSTM_CHECK(covered == buffer_bytes, path, ": the last ", buffer_bytes - covered, " bytes of the data buffer [",
             covered, ", ", buffer_bytes, ") belong to no tensor");
}

// A tensor viewing bytes [begin, begin + nbytes) of `buffer`.
Tensor view_of(const Tensor& buffer, const Entry& e) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = buffer.impl().storage;
  impl->offset = buffer.impl().offset + e.begin;
  impl->shape = e.shape;
  impl->dtype = e.dtype;
  impl->name = e.name;
  return Tensor(std::move(impl));
}

}  // namespace

// ---- StateDict --------------------------------------------------------------------------------

StateDict::StateDict(std::initializer_list<Item> items) {
  for (const Item& item : items) add(item.first, item.second);
}

void StateDict::add(std::string name, Tensor tensor) {
  FSTM_CHECK(!name.empty(), "state dict: empty tensor name");
  FSTM_CHECK(tensor.defined(), "state dict: tensor '", name, "' is undefined");
  FSTM_CHECK(!contains(name), "state dict: duplicate tensor name '", name, "'");
  index_.emplace(name, items_.size());
  items_.emplace_back(std::move(name), std::move(tensor));
}

const Tensor* StateDict::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  FSTM_CHECK(t != nullptr, "state dict has no tensor '", name, "'");
  return *t;
}

std::vector<std::string> StateDict::names() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const Item& item : items_) out.push_back(item.first);
  return out;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  const Tensor* t = tensors.find(name);
  FSTM_CHECK(t != nullptr, path, ": no tensor '", name, "'");
  return *t;
}

const char* safetensors_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

// ---- reading ----------------------------------------------------------------------------------

SafetensorsFile read_safetensors(const std::string& path) {
  InputFile file(path);
  const uint64_t file_bytes = file.size();
  FSTM_CHECK(file_bytes >= 8, path, ": truncated: ", file_bytes,
             " bytes; a safetensors file starts with an 8-byte header length");
  uint8_t prefix[8];
  file.read_at(0, prefix, 8);
  const uint64_t header_bytes = load_u64_le(prefix);
  FSTM_CHECK(header_bytes <= file_bytes - 8, path, ": header length ", header_bytes,
             " is larger than the rest of the file (", file_bytes - 8,
             " bytes): the file is truncated or not a safetensors file");
  FSTM_CHECK(header_bytes <= kMaxHeaderBytes, path, ": header length ", header_bytes, " exceeds the limit of ",
             kMaxHeaderBytes, " bytes");
  std::string text(header_bytes, '\0');
  file.read_at(8, text.data(), text.size());
  const Json header = parse_header_json(text, path);

  SafetensorsFile out;
  out.path = path;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      out.metadata = parse_metadata(path, it.value());
    } else {
      FSTM_CHECK(!it.key().empty(), path, ": a tensor has an empty name");
      entries.push_back(parse_entry(path, it.key(), it.value()));
    }
  }
  const uint64_t data_start = 8 + header_bytes;
  const uint64_t buffer_bytes = file_bytes - data_start;
  check_layout(path, entries, buffer_bytes, file_bytes);

  // One read of the whole data buffer into one 64-byte-aligned block.
  Tensor buffer = Tensor::empty(Shape{int64_t(buffer_bytes)}, DType::u8);
  file.read_at(data_start, buffer.raw_data(), buffer_bytes);
  for (const Entry& e : entries) {
    Tensor t = view_of(buffer, e);
    if (e.begin % dtype_size(e.dtype) != 0) t = t.clone().set_name(e.name);  // keep element access aligned
    out.tensors.add(e.name, std::move(t));
  }
  return out;
}

// ---- writing ----------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata) {
  // Data order: the given order, stably sorted by element size so every tensor is aligned.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::vector<const StateDict::Item*> items;
  for (const StateDict::Item& item : tensors) items.push_back(&item);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(items[a]->second.dtype()) > dtype_size(items[b]->second.dtype());
  });

  Json header = Json::object();
  try {
    if (!metadata.empty()) {
      Json m = Json::object();
      for (const auto& [key, value] : metadata) m[key] = value;
      header[kMetadataKey] = std::move(m);
    }
    uint64_t offset = 0;
    for (size_t i : order) {
      const auto& [name, t] = *items[i];
      FSTM_CHECK(name != kMetadataKey, path, ": '", kMetadataKey, "' is reserved and cannot name a tensor");
      const uint64_t bytes = t.nbytes();
      header[name] = Json{{"dtype", safetensors_dtype_name(t.dtype())},
                          {"shape", t.shape().to_vector()},
                          {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    }
  } catch (const Json::exception& e) {
    throw Error(detail::concat(path, ": cannot write header: ", e.what()));
  }
  std::string text;
  try {
    text = header.dump();  // compact, as the reference implementation
  } catch (const Json::exception& e) {  // a name or value that is not UTF-8
    throw Error(detail::concat(path, ": cannot write header (tensor names and metadata must be UTF-8): ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFileWriter out(path);
  uint8_t prefix[8];
  store_u64_le(text.size(), prefix);
  out.write(prefix, 8);
  out.write(text.data(), text.size());
  for (size_t i : order) {
    const Tensor& t = items[i]->second;
    const Tensor host = t.to(Device::cpu());
    out.write(host.raw_data(), host.nbytes());
  }
  out.commit();
}

// ---- loading into a model ---------------------------------------------------------------------

namespace {

bool is_float(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

std::string list_names(const std::vector<std::string>& names) {
  constexpr size_t kMaxListed = 30;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kMaxListed) s += detail::concat(", ... and ", names.size() - kMaxListed, " more");
  return s;
}

std::string count(size_t n, const char* one, const char* many) { return detail::concat(n, " ", n == 1 ? one : many); }

}  // namespace

LoadReport load_state_dict(const StateDict& source, const std::string& source_name, const StateDict& targets,
                           const LoadOptions& options) {
  auto ignored = [&](const std::string& name) {
    for (const std::string& prefix : options.ignore_prefixes)
      if (name.compare(0, prefix.size(), prefix) == 0) return true;
    return false;
  };
  LoadReport report;
  std::vector<std::string> mismatches;
  struct Copy {
    const std::string* name;
    Tensor target;  // a handle sharing the model's storage
    const Tensor* source;
  };
  std::vector<Copy> copies;
  for (const auto& [name, target] : targets) {
    if (ignored(name)) {
      report.ignored.push_back(name);
      continue;
    }
    const Tensor* src = source.find(name);
    if (!src) {
      report.missing.push_back(name);
      continue;
    }
    if (src->shape() != target.shape()) {
      mismatches.push_back(detail::concat("shape mismatch for '", name, "': model ", target.shape().str(), ", file ",
                                          src->shape().str()));
    } else if (is_float(src->dtype()) != is_float(target.dtype())) {
      mismatches.push_back(detail::concat("dtype mismatch for '", name, "': model ", dtype_name(target.dtype()),
                                          ", file ", dtype_name(src->dtype())));
    } else {
      copies.push_back({&name, target, src});
    }
  }
  for (const auto& [name, src] : source) {
    if (ignored(name)) {
      if (!targets.contains(name)) report.ignored.push_back(name);
    } else if (!targets.contains(name)) {
      report.unexpected.push_back(name);
    }
  }

  const bool key_errors = options.strict && (!report.missing.empty() || !report.unexpected.empty());
  if (key_errors || !mismatches.empty()) {
    std::vector<std::string> parts;
    if (options.strict && !report.missing.empty())
      parts.push_back(count(report.missing.size(), "missing key", "missing keys"));
    if (options.strict && !report.unexpected.empty())
      parts.push_back(count(report.unexpected.size(), "unexpected key", "unexpected keys"));
    if (!mismatches.empty()) parts.push_back(count(mismatches.size(), "mismatch", "mismatches"));
    std::string msg = source_name + ": cannot load the state dict (";
    for (size_t i = 0; i < parts.size(); ++i) msg += (i ? ", " : "") + parts[i];
    msg += "); nothing was loaded";
    if (options.strict && !report.missing.empty())
      msg += "\n  missing keys (in the model, not in the file): " + list_names(report.missing);
    if (options.strict && !report.unexpected.empty())
      msg += "\n  unexpected keys (in the file, not in the model): " + list_names(report.unexpected);
    for (const std::string& m : mismatches) msg += "\n  " + m;
    if (!mismatches.empty())
      msg += "\n  (to fine-tune with a different classifier head, ignore its prefix, e.g. 'fc.')";
    throw Error(msg);
  }

  for (Copy& c : copies) {
    c.target.copy_(c.source->dtype() == c.target.dtype() ? *c.source : c.source->to(c.target.dtype()));
    report.loaded.push_back(*c.name);
  }
  return report;
}

LoadReport load_state_dict(const SafetensorsFile& file, const StateDict& targets, const LoadOptions& options) {
  return load_state_dict(file.tensors, file.path, targets, options);
}

// ---- metadata ---------------------------------------------------------------------------------

namespace {

const char* const kReservedKeys[] = {"arch", "num_classes", "input_size", "mean", "std"};

std::string float_list(const std::array<float, 3>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v[i]);  // shortest text that reads back exactly
    s += (i ? ", " : "") + std::string(buf, r.ptr);
  }
  return s + "]";
}

std::array<float, 3> parse_float_list(const std::string& text, const std::string& what, const char* key) {
  const std::string where = what + ": metadata '" + key + "' = '" + text + "'";
  Json v;
  try {
    v = Json::parse(text);
  } catch (const Json::exception&) {
    throw Error(where + " is not a JSON array of 3 numbers");
  }
  FSTM_CHECK(v.is_array() && v.size() == 3, where, " is not a JSON array of 3 numbers");
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    FSTM_CHECK(v[i].is_number(), where, " is not a JSON array of 3 numbers");
    out[i] = v[i].get<float>();
  }
  return out;
}

int64_t parse_positive_int(const std::string& text, const std::string& what, const char* key) {
  int64_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  FSTM_CHECK(r.ec == std::errc() && r.ptr == text.data() + text.size() && v > 0, what, ": metadata '", key,
             "' = '", text, "' is not a positive integer");
  return v;
}

}  // namespace

Metadata to_metadata(const ModelMetadata& info) {
  Metadata m = info.extra;
  for (const char* key : kReservedKeys)
    FSTM_CHECK(!m.count(key), "metadata: extra key '", key, "' is reserved; set the ModelMetadata field instead");
  if (!info.arch.empty()) m["arch"] = info.arch;
  if (info.num_classes > 0) m["num_classes"] = std::to_string(info.num_classes);
  if (info.input_size > 0) m["input_size"] = std::to_string(info.input_size);
  if (info.normalization) {
    m["mean"] = float_list(info.normalization->mean);
    m["std"] = float_list(info.normalization->std);
  }
  return m;
}

ModelMetadata parse_model_metadata(const Metadata& metadata, const std::string& what) {
  ModelMetadata info;
  for (const auto& [key, value] : metadata) {
    if (key == "arch") {
      FSTM_CHECK(!value.empty(), what, ": metadata 'arch' is empty");
      info.arch = value;
    } else if (key == "num_classes") {
      info.num_classes = parse_positive_int(value, what, "num_classes");
    } else if (key == "input_size") {
      info.input_size = parse_positive_int(value, what, "input_size");
    } else if (key != "mean" && key != "std") {
      info.extra[key] = value;
    }
  }
  const bool has_mean = metadata.count("mean") != 0, has_std = metadata.count("std") != 0;
  FSTM_CHECK(has_mean == has_std, what, ": metadata has '", has_mean ? "mean" : "std", "' without '",
             has_mean ? "std" : "mean", "'");
  if (has_mean) {
    Normalization n;
    n.mean = parse_float_list(metadata.at("mean"), what, "mean");
    n.std = parse_float_list(metadata.at("std"), what, "std");
    for (float s : n.std) FSTM_CHECK(s > 0, what, ": metadata 'std' = '", metadata.at("std"), "' has a value <= 0");
    info.normalization = n;
  }
  return info;
}

}  // namespace fstm::io
