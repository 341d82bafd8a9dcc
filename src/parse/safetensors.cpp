// safetensors headers and shard indexes: strict decoding of untrusted bytes, and the encoder used by export.
#include "unlearn/parse/safetensors.h"

#include <algorithm>
#include <sstream>

#include "unlearn/parse/json.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

const SafetensorsEntry* SafetensorsHeader::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::uint64_t safetensors_dtype_size(std::string_view dtype, std::string_view what) {
  static const std::pair<std::string_view, std::uint64_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8}, {"I32", 4}, {"U32", 4},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& [name, size] : kSizes)
    if (name == dtype) return size;
  UNLEARN_THROW(IoError, what << ": unknown dtype '" << dtype << "'");
}

std::uint64_t safetensors_header_length(std::string_view first8, std::uint64_t file_size, std::string_view what) {
  if (first8.size() < 8 || file_size < 8)
    UNLEARN_THROW(IoError, what << ": " << file_size << " bytes is too short for a safetensors file");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(first8[static_cast<std::size_t>(i)]);
  if (n == 0) UNLEARN_THROW(IoError, what << ": empty safetensors header");
  if (n > kSafetensorsMaxHeader) UNLEARN_THROW(IoError, what << ": header length " << n << " exceeds the 100 MB limit");
  if (n > file_size - 8)
    UNLEARN_THROW(IoError, what << ": header length " << n << " is larger than the file (" << file_size << " bytes)");
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view json, std::uint64_t file_size, std::string_view what) {
  const JsonValue root = parse_json(json, what);
  if (root.type != JsonValue::Type::kObject) UNLEARN_THROW(IoError, what << ": the header is not a JSON object");
  SafetensorsHeader h;
  h.data_offset = 8 + json.size();
  if (h.data_offset > file_size) UNLEARN_THROW(IoError, what << ": header longer than the file");
  const std::uint64_t data_size = file_size - h.data_offset;
  for (const auto& [name, v] : root.members) {
    if (name == "__metadata__") {
      if (v.type != JsonValue::Type::kObject) UNLEARN_THROW(IoError, what << ": __metadata__ is not an object");
      for (const auto& [k, m] : v.members) {
        if (m.type != JsonValue::Type::kString)
          UNLEARN_THROW(IoError, what << ": __metadata__." << k << " is " << m.type_name() << ", not a string");
        h.metadata[k] = m.text;
      }
      continue;
    }
    const std::string where = std::string(what) + ": tensor '" + name + "'";
    if (v.type != JsonValue::Type::kObject) UNLEARN_THROW(IoError, where << " is " << v.type_name());
    const JsonValue* dtype = v.find("dtype");
    const JsonValue* shape = v.find("shape");
    const JsonValue* offsets = v.find("data_offsets");
    if (!dtype || dtype->type != JsonValue::Type::kString) UNLEARN_THROW(IoError, where << ": no string 'dtype'");
    if (!shape || shape->type != JsonValue::Type::kArray) UNLEARN_THROW(IoError, where << ": no array 'shape'");
    if (!offsets || offsets->type != JsonValue::Type::kArray || offsets->items.size() != 2)
      UNLEARN_THROW(IoError, where << ": 'data_offsets' is not a pair");
    if (v.members.size() != 3) UNLEARN_THROW(IoError, where << ": unexpected keys besides dtype, shape, data_offsets");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dtype->text;
    std::uint64_t bytes = safetensors_dtype_size(e.dtype, where);
    for (const auto& d : shape->items) {
      if (!d.is_uint64()) UNLEARN_THROW(IoError, where << ": shape entries must be non-negative integers");
      const std::uint64_t n = d.as_uint64();
      if (n != 0 && bytes > UINT64_MAX / n) UNLEARN_THROW(IoError, where << ": shape overflows 64 bits");
      bytes *= n;
      e.shape.push_back(n);
    }
    for (const auto& o : offsets->items)
      if (!o.is_uint64()) UNLEARN_THROW(IoError, where << ": data_offsets must be non-negative integers");
    e.begin = offsets->items[0].as_uint64();
    e.end = offsets->items[1].as_uint64();
    if (e.begin > e.end) UNLEARN_THROW(IoError, where << ": data_offsets [" << e.begin << ", " << e.end << "] are reversed");
    if (e.end > data_size)
      UNLEARN_THROW(IoError, where << ": data_offsets [" << e.begin << ", " << e.end << "] run past the end of the "
                                   << data_size << "-byte data section");
    if (e.end - e.begin != bytes)
      UNLEARN_THROW(IoError, where << ": data_offsets span " << (e.end - e.begin) << " bytes, the dtype and shape need "
                                   << bytes);
    h.tensors.push_back(std::move(e));
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  // Contiguous, non-overlapping coverage of the data section (empty tensors take no bytes).
  std::uint64_t pos = 0;
  for (const auto& e : h.tensors) {
    if (e.begin < pos)
      UNLEARN_THROW(IoError, what << ": tensor '" << e.name << "' overlaps the tensor before it (byte " << e.begin << ")");
    if (e.begin > pos) UNLEARN_THROW(IoError, what << ": the data section has a gap before tensor '" << e.name << "'");
    pos = e.end;
  }
  if (pos != data_size)
    UNLEARN_THROW(IoError, what << ": " << (data_size - pos) << " bytes after the last tensor belong to no tensor");
  return h;
}

std::string encode_safetensors_header(std::vector<SafetensorsEntry>& entries,
                                      const std::map<std::string, std::string>& metadata) {
  std::ostringstream js;
  js << '{';
  bool first = true;
  if (!metadata.empty()) {
    js << "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it)
      js << (it == metadata.begin() ? "" : ",") << '"' << escape(it->first) << "\":\"" << escape(it->second) << '"';
    js << '}';
    first = false;
  }
  std::uint64_t pos = 0;
  for (auto& e : entries) {
    std::uint64_t bytes = safetensors_dtype_size(e.dtype, "encode");
    for (auto d : e.shape) bytes *= d;
    e.begin = pos;
    e.end = pos + bytes;
    pos = e.end;
    js << (first ? "" : ",") << '"' << escape(e.name) << "\":{\"dtype\":\"" << e.dtype << "\",\"shape\":[";
    for (std::size_t i = 0; i < e.shape.size(); ++i) js << (i ? "," : "") << e.shape[i];
    js << "],\"data_offsets\":[" << e.begin << ',' << e.end << "]}";
    first = false;
  }
  js << '}';
  std::string json = js.str();
  json.resize((json.size() + 7) / 8 * 8, ' ');  // the data section starts 8-byte aligned
  std::string out(8, '\0');
  std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + json;
}

std::map<std::string, std::string> parse_safetensors_index(std::string_view json, std::string_view what) {
  const JsonValue root = parse_json(json, what);
  const JsonValue* map = root.find("weight_map");
  if (!map || map->type != JsonValue::Type::kObject) UNLEARN_THROW(IoError, what << ": no 'weight_map' object");
  std::map<std::string, std::string> out;
  for (const auto& [name, file] : map->members) {
    if (file.type != JsonValue::Type::kString || file.text.empty())
      UNLEARN_THROW(IoError, what << ": weight_map['" << name << "'] is not a file name");
    if (file.text.find('/') != std::string::npos || file.text == "." || file.text == "..")
      UNLEARN_THROW(IoError, what << ": weight_map['" << name << "'] = '" << file.text
                                  << "' leaves the model directory");
    out[name] = file.text;
  }
  if (out.empty()) UNLEARN_THROW(IoError, what << ": the weight_map is empty");
  return out;
}

}  // namespace unlearn
