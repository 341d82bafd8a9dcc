// `unlearn inspect FILE`: a checkpoint's attributes and tensors (shape, dtype, chunks) and, unless --no-verify, every
// chunk's Fletcher32 checksum and the content digest, read split across the ranks. Table or --json on stdout.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "unlearn/app/subcommands.h"
#include "unlearn/io/checkpoint.h"
#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

std::string dims(const std::vector<std::int64_t>& shape) {
  if (shape.empty()) return "-";
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

std::string json_array(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

class InspectCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "inspect"; }
  std::string_view summary() const override {
    return "show a checkpoint's attributes and tensors and verify its checksums";
  }
  std::string_view usage() const override { return "FILE"; }

  void add_options(po::options_description& desc, po::positional_options_description& pos) override {
    desc.add_options()
        ("file", po::value<std::string>(&file_)->value_name("FILE"), "checkpoint (HDF5) to inspect")
        ("json", po::bool_switch(&json_), "print one JSON object instead of the table (implies --log-level warn)")
        ("no-verify", po::bool_switch(&no_verify_), "metadata only: skip reading the tensor data");
    pos.add("file", 1);
  }

  void validate(const po::variables_map& vm, const CommonOptions&, int) const override {
    if (!vm.count("file")) throw ConfigError("unlearn inspect: no FILE given");
    // The JSON goes to stdout alone: the start-up log would corrupt it.
    if (vm.count("json") && vm["json"].as<bool>() && vm["log-level"].defaulted()) set_log_level(LogLevel::kWarn);
  }

  int run(AppContext& ctx) override {
    Communicator& world = ctx.grid.world();
    const bool root = world.rank() == 0;
    FileInfo info;
    VerifyResult verify;
    try {
      info = read_file_info(file_, world);
      if (!no_verify_) verify = verify_tensor_file(file_, world, info);
    } catch (const Error& e) {
      // Collective: every rank has the same error; one message, exit 1 everywhere.
      if (root) {
        if (json_) std::cout << JsonObject().add("path", file_).add("ok", false).add("error", e.what()).str() << '\n';
        std::fprintf(stderr, "unlearn: error: %s\n", e.what());
      }
      return 1;
    }
    const bool ok = no_verify_ || verify.ok();
    if (root) std::cout << (json_ ? to_json(info, verify, ok) : to_table(info, verify, ok)) << std::flush;
    if (!ok && root) {
      for (std::size_t i = 0; i < verify.tensor_errors.size(); ++i)
        if (!verify.tensor_errors[i].empty())
          std::fprintf(stderr, "unlearn: error: %s\n", verify.tensor_errors[i].c_str());
      if (verify.digest_stored != verify.digest_computed)
        std::fprintf(stderr, "unlearn: error: content digest mismatch (stored %s, data %s)\n",
                     verify.digest_stored.c_str(), verify.digest_computed.c_str());
    }
    return ok ? 0 : 1;
  }

 private:
  std::string status(const VerifyResult& v, std::size_t i) const {
    if (no_verify_) return "unchecked";
    return v.tensor_errors[i].empty() ? "ok" : v.tensor_errors[i];
  }

  std::string to_table(const FileInfo& info, const VerifyResult& v, bool ok) const {
    std::ostringstream os;
    std::int64_t elements = 0;
    std::string dtypes;
    for (const auto& t : info.tensors) {
      std::int64_t n = 1;
      for (auto d : t.shape) n *= d;
      elements += n;
      if (dtypes.find(storage_type_name(t.storage)) == std::string::npos)
        dtypes += (dtypes.empty() ? "" : ", ") + storage_type_name(t.storage);
    }
    os << "checkpoint " << info.path << "\n  " << format_bytes(static_cast<std::uint64_t>(info.file_bytes)) << ", "
       << info.tensors.size() << " tensors, " << elements << " elements, " << (dtypes.empty() ? "-" : dtypes)
       << "\nattributes\n";
    std::size_t key_width = 0, name_width = 4, shape_width = 5, chunk_width = 5;
    for (const auto& [k, value] : info.attributes) key_width = std::max(key_width, k.size());
    for (const auto& t : info.tensors) {
      name_width = std::max(name_width, t.name.size());
      shape_width = std::max(shape_width, dims(t.shape).size());
      chunk_width = std::max(chunk_width, dims(t.chunk).size());
    }
    for (const auto& [k, value] : info.attributes)
      os << "  " << pad(k, key_width) << "  " << attribute_to_string(value) << '\n';
    os << "tensors\n  " << pad("name", name_width) << "  " << pad("shape", shape_width) << "  " << pad("dtype", 7)
       << "  " << pad("chunk", chunk_width) << "  checksum\n";
    for (std::size_t i = 0; i < info.tensors.size(); ++i) {
      const auto& t = info.tensors[i];
      const std::string check = t.fletcher32 ? status(v, i) : "none (no Fletcher32 filter)";
      os << "  " << pad(t.name, name_width) << "  " << pad(dims(t.shape), shape_width) << "  "
         << pad(storage_type_name(t.storage), 7) << "  " << pad(dims(t.chunk), chunk_width) << "  " << check << '\n';
    }
    if (no_verify_) {
      os << "data not read (--no-verify)\n";
    } else {
      os << "content digest " << v.digest_stored << ": "
         << (v.digest_stored == v.digest_computed ? "ok" : "MISMATCH (data gives " + v.digest_computed + ")") << '\n'
         << (ok ? "verified: every checksum and the digest match\n" : "CORRUPT: see the errors above\n");
    }
    return os.str();
  }

  std::string to_json(const FileInfo& info, const VerifyResult& v, bool ok) const {
    JsonObject attrs;
    for (const auto& [k, value] : info.attributes) {
      if (const auto* i = std::get_if<std::int64_t>(&value)) {
        attrs.add(k, *i);
      } else if (const auto* d = std::get_if<double>(&value)) {
        attrs.add(k, *d);
      } else {
        attrs.add(k, std::get<std::string>(value));
      }
    }
    std::string tensors = "[";
    for (std::size_t i = 0; i < info.tensors.size(); ++i) {
      const auto& t = info.tensors[i];
      tensors += (i ? "," : "") + JsonObject()
                                      .add("name", t.name)
                                      .add_raw("shape", json_array(t.shape))
                                      .add("dtype", storage_type_name(t.storage))
                                      .add_raw("chunk", json_array(t.chunk))
                                      .add("fletcher32", t.fletcher32)
                                      .add("checksum", t.fletcher32 ? status(v, i) : "none")
                                      .str();
    }
    tensors += "]";
    JsonObject out;
    out.add("path", info.path).add("file_bytes", info.file_bytes).add_raw("attributes", attrs.str())
        .add_raw("tensors", tensors);
    if (!no_verify_) {
      out.add_raw("content_digest", JsonObject()
                                        .add("stored", v.digest_stored)
                                        .add("computed", v.digest_computed)
                                        .add("ok", v.digest_stored == v.digest_computed)
                                        .str());
    }
    out.add("verified", !no_verify_).add("ok", ok);
    return out.str() + "\n";
  }

  std::string file_;
  bool json_ = false;
  bool no_verify_ = false;
};

}  // namespace

std::unique_ptr<Subcommand> make_inspect_command() { return std::make_unique<InspectCommand>(); }

}  // namespace unlearn
