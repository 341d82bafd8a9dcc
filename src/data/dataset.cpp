// Token datasets in HDF5 (see dataset.h and docs/data.md). Serial HDF5 calls through the parallel library: one
// process writes or reads; the default (sec2) file driver needs no MPI.
#include "unlearn/data/dataset.h"

#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <numeric>

#include "unlearn/data/rng.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

constexpr const char* kFormat = "unlearn-token-dataset";
constexpr std::int64_t kFormatVersion = 1;
constexpr hsize_t kChunk = 1 << 16;

/// Owns one HDF5 identifier; `close` is the matching H5?close.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

/// Silences HDF5's automatic error-stack printing for its lifetime: failures become IoError messages instead.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

class Writer {
 public:
  explicit Writer(std::string path) : path_(std::move(path)) {}

  template <class T>
  void vec(hid_t loc, const char* name, const std::vector<T>& v, hid_t file_type, hid_t mem_type) {
    const hsize_t n = v.size();
    H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    check(H5Pset_obj_track_times(dcpl.get(), false), name);  // same inputs and seed -> byte-identical file
    if (n > 0) {  // chunks (Fletcher32 checksums, compression) need a non-empty extent
      const hsize_t chunk = std::min<hsize_t>(n, kChunk);
      check(H5Pset_chunk(dcpl.get(), 1, &chunk), name);
      check(H5Pset_fletcher32(dcpl.get()), name);
      if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        check(H5Pset_shuffle(dcpl.get()), name);
        check(H5Pset_deflate(dcpl.get(), 4), name);
      }
    }
    H5Id ds(H5Dcreate2(loc, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    check(ds.get(), name);
    if (n > 0) check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), name);
  }
  void strings(hid_t loc, const char* name, const std::vector<std::string>& v) {
    std::vector<const char*> ptrs;
    for (const auto& s : v) ptrs.push_back(s.c_str());
    const hsize_t n = v.size();
    H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    H5Id type(vlen_string_type(), H5Tclose);
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    check(H5Pset_obj_track_times(dcpl.get(), false), name);
    H5Id ds(H5Dcreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    check(ds.get(), name);
    if (n > 0) check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), name);
  }
  void attr(hid_t loc, const char* name, const std::string& value) {
    H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
    H5Id type(vlen_string_type(), H5Tclose);
    H5Id a(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    check(a.get(), name);
    const char* p = value.c_str();
    check(H5Awrite(a.get(), type.get(), &p), name);
  }
  void attr(hid_t loc, const char* name, std::int64_t value) { num_attr(loc, name, &value, 1, H5T_STD_I64LE, H5T_NATIVE_INT64); }
  void attr(hid_t loc, const char* name, std::uint64_t value) { num_attr(loc, name, &value, 1, H5T_STD_U64LE, H5T_NATIVE_UINT64); }
  void attr(hid_t loc, const char* name, const std::vector<double>& v) {
    num_attr(loc, name, v.data(), v.size(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
  }
  void check(herr_t rc, const char* what) const {
    if (rc < 0) UNLEARN_THROW(IoError, path_ << ": cannot write '" << what << "' (HDF5 error)");
  }

  static hid_t vlen_string_type() {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
  }

 private:
  void num_attr(hid_t loc, const char* name, const void* p, std::size_t n, hid_t file_type, hid_t mem_type) {
    const hsize_t dims = n;
    H5Id space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nullptr), H5Sclose);
    H5Id a(H5Acreate2(loc, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    check(a.get(), name);
    check(H5Awrite(a.get(), mem_type, p), name);
  }
  std::string path_;
};

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  bool exists(hid_t loc, const char* name) const { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

  template <class T>
  std::vector<T> vec(hid_t loc, const char* name, hid_t mem_type, H5T_class_t cls) const {
    H5Id ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) fail(name, "missing");
    H5Id type(H5Dget_type(ds.get()), H5Tclose);
    if (H5Tget_class(type.get()) != cls) fail(name, "has the wrong element type");
    H5Id space(H5Dget_space(ds.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(name, "is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    std::vector<T> v(n);
    if (n > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
      fail(name, "cannot be read (corrupt data or checksum mismatch)");
    return v;
  }
  std::vector<std::string> strings(hid_t loc, const char* name) const {
    H5Id ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
    if (!ds.ok()) fail(name, "missing");
    H5Id ftype(H5Dget_type(ds.get()), H5Tclose);
    if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) <= 0)
      fail(name, "is not a variable-length string array");
    H5Id space(H5Dget_space(ds.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(space.get()) != 1) fail(name, "is not one-dimensional");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    std::vector<char*> ptrs(n, nullptr);
    H5Id type(Writer::vlen_string_type(), H5Tclose);
    if (n > 0 && H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
      fail(name, "cannot be read");
    std::vector<std::string> out;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    if (n > 0) H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, ptrs.data());
    return out;
  }
  std::string str_attr(hid_t loc, const char* name) const {
    H5Id a(open_attr(loc, name), H5Aclose);
    H5Id ftype(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(ftype.get()) != H5T_STRING || H5Tis_variable_str(ftype.get()) <= 0)
      fail(name, "is not a string attribute");
    H5Id type(Writer::vlen_string_type(), H5Tclose);
    char* p = nullptr;
    if (H5Aread(a.get(), type.get(), &p) < 0) fail(name, "cannot be read");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  std::int64_t i64_attr(hid_t loc, const char* name) const {
    std::int64_t v = 0;
    num_attr(loc, name, &v, 1, H5T_NATIVE_INT64, H5T_INTEGER);
    return v;
  }
  std::uint64_t u64_attr(hid_t loc, const char* name) const {
    std::uint64_t v = 0;
    num_attr(loc, name, &v, 1, H5T_NATIVE_UINT64, H5T_INTEGER);
    return v;
  }
  std::vector<double> f64_attr(hid_t loc, const char* name, std::size_t n) const {
    std::vector<double> v(n);
    num_attr(loc, name, v.data(), n, H5T_NATIVE_DOUBLE, H5T_FLOAT);
    return v;
  }
  [[noreturn]] void fail(const char* name, const char* why) const {
    UNLEARN_THROW(IoError, path_ << ": '" << name << "' " << why);
  }

 private:
  hid_t open_attr(hid_t loc, const char* name) const {
    const hid_t a = H5Aexists(loc, name) > 0 ? H5Aopen(loc, name, H5P_DEFAULT) : -1;
    if (a < 0) fail(name, "attribute missing");
    return a;
  }
  void num_attr(hid_t loc, const char* name, void* out, std::size_t n, hid_t mem_type, H5T_class_t cls) const {
    H5Id a(open_attr(loc, name), H5Aclose);
    H5Id type(H5Aget_type(a.get()), H5Tclose);
    if (H5Tget_class(type.get()) != cls) fail(name, "has the wrong type");
    H5Id space(H5Aget_space(a.get()), H5Sclose);
    if (static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get())) != n) fail(name, "has the wrong size");
    if (H5Aread(a.get(), mem_type, out) < 0) fail(name, "cannot be read");
  }
  std::string path_;
};

}  // namespace

const char* to_string(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "?";
}

std::vector<TokenId> TokenDataset::document_tokens(std::int64_t i) const {
  return std::vector<TokenId>(tokens.begin() + doc_offsets[i], tokens.begin() + doc_offsets[i + 1]);
}

void TokenDataset::set_document_tokens(std::int64_t i, const std::vector<TokenId>& t) {
  const std::int64_t delta = static_cast<std::int64_t>(t.size()) - document_length(i);
  tokens.erase(tokens.begin() + doc_offsets[i], tokens.begin() + doc_offsets[i + 1]);
  tokens.insert(tokens.begin() + doc_offsets[i], t.begin(), t.end());
  for (std::size_t k = static_cast<std::size_t>(i) + 1; k < doc_offsets.size(); ++k) doc_offsets[k] += delta;
}

void TokenDataset::validate(const std::string& what) const {
  auto bad = [&](const std::string& why) { UNLEARN_THROW(IoError, what << ": invalid dataset: " << why); };
  const std::size_t d = doc_ids.size();
  if (doc_offsets.size() != d + 1) bad("doc_offsets has " + std::to_string(doc_offsets.size()) + " entries for " + std::to_string(d) + " documents");
  if (doc_groups.size() != d || doc_splits.size() != d) bad("per-document arrays differ in length");
  if (doc_offsets.front() != 0 || doc_offsets.back() != static_cast<std::int64_t>(tokens.size()))
    bad("doc_offsets do not span the tokens");
  for (std::size_t i = 0; i < d; ++i) {
    if (doc_offsets[i + 1] < doc_offsets[i]) bad("doc_offsets decrease at document row " + std::to_string(i));
    if (doc_splits[i] > 2) bad("unknown split value at document row " + std::to_string(i));
    if (doc_groups[i] < 0 || static_cast<std::size_t>(doc_groups[i]) >= group_names.size())
      bad("group index out of range at document row " + std::to_string(i));
  }
  if (vocab_size <= 0) bad("vocab_size must be positive");
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size) bad("token " + std::to_string(i) + " is outside the vocabulary");
  const auto in_vocab = [&](const std::vector<TokenId>& v) {
    for (TokenId t : v)
      if (t < 0 || t >= vocab_size) return false;
    return true;
  };
  if (!in_vocab(canaries.prefix_tokens) || !in_vocab(canaries.separator_tokens)) bad("canary tokens outside the vocabulary");
  for (const auto& c : canaries.candidates)
    if (!in_vocab(c.secret_tokens) || static_cast<std::uint8_t>(c.role) > 3) bad("broken canary candidate");
  for (const auto& ins : canaries.insertions) {
    if (ins.candidate < 0 || static_cast<std::size_t>(ins.candidate) >= canaries.candidates.size() || ins.document < 0 ||
        ins.document >= static_cast<std::int64_t>(d) || ins.offset < 0 || ins.offset > document_length(ins.document))
      bad("canary insertion out of range");
  }
}

std::vector<std::uint8_t> assign_splits(std::int64_t n, const std::vector<double>& f, std::uint64_t seed) {
  if (f.size() != 3) UNLEARN_THROW(ConfigError, "split: expected three fractions (train, validation, test)");
  double sum = 0;
  for (double x : f) {
    if (!(x >= 0 && x <= 1)) UNLEARN_THROW(ConfigError, "split: fractions must lie in [0, 1]");
    sum += x;
  }
  if (std::fabs(sum - 1) > 1e-9) UNLEARN_THROW(ConfigError, "split: fractions must sum to 1, got " << sum);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  DataRng rng(seed, 1);
  rng.shuffle(order);
  const auto n_train = static_cast<std::int64_t>(std::llround(f[0] * static_cast<double>(n)));
  const auto n_val = std::min(n - n_train, static_cast<std::int64_t>(std::llround(f[1] * static_cast<double>(n))));
  std::vector<std::uint8_t> s(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k)
    s[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] =
        static_cast<std::uint8_t>(k < n_train ? Split::kTrain : k < n_train + n_val ? Split::kValidation : Split::kTest);
  return s;
}

TokenDataset build_dataset(const Corpus& corpus, const Tokenizer& tokenizer, const std::vector<double>& fractions,
                           std::uint64_t seed) {
  TokenDataset ds;
  ds.corpus = corpus.name;
  ds.tokenizer = tokenizer.kind();
  ds.tokenizer_identity = tokenizer.identity();
  ds.vocab_size = tokenizer.vocab_size();
  ds.source_sha256 = corpus.source_sha256;
  ds.seed = seed;
  ds.split_fractions = fractions;
  ds.doc_splits = assign_splits(static_cast<std::int64_t>(corpus.documents.size()), fractions, seed);
  std::vector<std::pair<std::string, std::int32_t>> groups;  // first-seen order
  for (const auto& doc : corpus.documents) {
    const auto ids = tokenizer.encode(doc.text);
    ds.tokens.insert(ds.tokens.end(), ids.begin(), ids.end());
    ds.doc_offsets.push_back(static_cast<std::int64_t>(ds.tokens.size()));
    ds.doc_ids.push_back(doc.id);
    std::int32_t g = -1;
    for (const auto& [name, idx] : groups)
      if (name == doc.group) g = idx;
    if (g < 0) {
      g = static_cast<std::int32_t>(groups.size());
      groups.emplace_back(doc.group, g);
      ds.group_names.push_back(doc.group);
    }
    ds.doc_groups.push_back(g);
  }
  ds.validate("dataset of corpus '" + corpus.name + "'");
  return ds;
}

void write_dataset(const std::string& path, const TokenDataset& ds) {
  ds.validate(path);
  QuietHdf5 quiet;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);  // checksummed metadata (design 5)
    H5Id fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    H5Pset_obj_track_times(fcpl.get(), false);  // the root group
    H5Id file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
    if (!file.ok()) UNLEARN_THROW(IoError, "cannot create '" << tmp << "'");
    Writer w(path);
    const hid_t root = file.get();
    try {
      w.attr(root, "format", std::string(kFormat));
      w.attr(root, "format_version", kFormatVersion);
      w.attr(root, "corpus", ds.corpus);
      w.attr(root, "tokenizer", ds.tokenizer);
      w.attr(root, "tokenizer_identity", ds.tokenizer_identity);
      w.attr(root, "vocab_size", ds.vocab_size);
      w.attr(root, "source_sha256", ds.source_sha256);
      w.attr(root, "seed", ds.seed);
      w.attr(root, "split_fractions", ds.split_fractions.empty() ? std::vector<double>{1, 0, 0} : ds.split_fractions);
      w.attr(root, "num_documents", ds.num_documents());
      w.attr(root, "num_tokens", static_cast<std::int64_t>(ds.tokens.size()));
      w.vec(root, "tokens", ds.tokens, H5T_STD_I32LE, H5T_NATIVE_INT32);
      w.vec(root, "doc_offsets", ds.doc_offsets, H5T_STD_I64LE, H5T_NATIVE_INT64);
      w.vec(root, "doc_ids", ds.doc_ids, H5T_STD_I64LE, H5T_NATIVE_INT64);
      w.vec(root, "doc_groups", ds.doc_groups, H5T_STD_I32LE, H5T_NATIVE_INT32);
      w.vec(root, "doc_splits", ds.doc_splits, H5T_STD_U8LE, H5T_NATIVE_UINT8);
      w.strings(root, "group_names", ds.group_names);
      const CanarySet& c = ds.canaries;
      if (!c.empty()) {
        H5Id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
        H5Pset_obj_track_times(gcpl.get(), false);
        H5Id g(H5Gcreate2(root, "canaries", H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
        w.check(g.get(), "canaries");
        w.attr(g.get(), "prefix", c.prefix);
        w.attr(g.get(), "space", c.space.name);
        w.attr(g.get(), "alphabet", c.space.alphabet);
        w.attr(g.get(), "length", static_cast<std::int64_t>(c.space.length));
        w.attr(g.get(), "repetitions", static_cast<std::int64_t>(c.repetitions));
        w.attr(g.get(), "position", c.position);
        w.attr(g.get(), "seed", c.seed);
        w.vec(g.get(), "prefix_tokens", c.prefix_tokens, H5T_STD_I32LE, H5T_NATIVE_INT32);
        w.vec(g.get(), "separator_tokens", c.separator_tokens, H5T_STD_I32LE, H5T_NATIVE_INT32);
        std::vector<std::string> secrets;
        std::vector<TokenId> secret_tokens;
        std::vector<std::int64_t> secret_offsets{0};
        std::vector<std::uint8_t> roles;
        std::vector<std::int32_t> counts;
        for (const auto& cand : c.candidates) {
          secrets.push_back(cand.secret);
          secret_tokens.insert(secret_tokens.end(), cand.secret_tokens.begin(), cand.secret_tokens.end());
          secret_offsets.push_back(static_cast<std::int64_t>(secret_tokens.size()));
          roles.push_back(static_cast<std::uint8_t>(cand.role));
          counts.push_back(cand.insertions);
        }
        w.strings(g.get(), "secrets", secrets);
        w.vec(g.get(), "secret_tokens", secret_tokens, H5T_STD_I32LE, H5T_NATIVE_INT32);
        w.vec(g.get(), "secret_offsets", secret_offsets, H5T_STD_I64LE, H5T_NATIVE_INT64);
        w.vec(g.get(), "roles", roles, H5T_STD_U8LE, H5T_NATIVE_UINT8);
        w.vec(g.get(), "insertion_counts", counts, H5T_STD_I32LE, H5T_NATIVE_INT32);
        std::vector<std::int32_t> ic;
        std::vector<std::int64_t> id, io;
        for (const auto& ins : c.insertions) {
          ic.push_back(ins.candidate);
          id.push_back(ins.document);
          io.push_back(ins.offset);
        }
        w.vec(g.get(), "insertion_candidate", ic, H5T_STD_I32LE, H5T_NATIVE_INT32);
        w.vec(g.get(), "insertion_document", id, H5T_STD_I64LE, H5T_NATIVE_INT64);
        w.vec(g.get(), "insertion_offset", io, H5T_STD_I64LE, H5T_NATIVE_INT64);
      }
      if (H5Fflush(root, H5F_SCOPE_GLOBAL) < 0) UNLEARN_THROW(IoError, "cannot flush '" << tmp << "'");
    } catch (...) {
      std::remove(tmp.c_str());
      throw;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    UNLEARN_THROW(IoError, "cannot rename '" << tmp << "' to '" << path << "'");
  }
}

TokenDataset read_dataset(const std::string& path) {
  QuietHdf5 quiet;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) UNLEARN_THROW(IoError, "dataset '" << path << "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) UNLEARN_THROW(IoError, "'" << path << "' is not an HDF5 file");
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.ok()) UNLEARN_THROW(IoError, "cannot open '" << path << "'");
  Reader r(path);
  const hid_t root = file.get();
  // Other HDF5 files (a checkpoint given as --dataset) may hold a 'format' attribute of another string type: that
  // is "not a dataset" too, not a complaint about the attribute (found by tests/reliability/bad_input.sh).
  std::string format;
  try {
    if (H5Aexists(root, "format") > 0) format = r.str_attr(root, "format");
  } catch (const IoError&) {
  }
  if (format != kFormat)
    UNLEARN_THROW(IoError, "'" << path << "' is not an unlearn token dataset (no format = " << kFormat << ")");
  const std::int64_t version = r.i64_attr(root, "format_version");
  if (version != kFormatVersion)
    UNLEARN_THROW(IoError, "'" << path << "' has dataset format version " << version << "; this build reads "
                               << kFormatVersion);
  TokenDataset ds;
  ds.corpus = r.str_attr(root, "corpus");
  ds.tokenizer = r.str_attr(root, "tokenizer");
  ds.tokenizer_identity = r.str_attr(root, "tokenizer_identity");
  ds.vocab_size = r.i64_attr(root, "vocab_size");
  ds.source_sha256 = r.str_attr(root, "source_sha256");
  ds.seed = r.u64_attr(root, "seed");
  ds.split_fractions = r.f64_attr(root, "split_fractions", 3);
  ds.tokens = r.vec<TokenId>(root, "tokens", H5T_NATIVE_INT32, H5T_INTEGER);
  ds.doc_offsets = r.vec<std::int64_t>(root, "doc_offsets", H5T_NATIVE_INT64, H5T_INTEGER);
  ds.doc_ids = r.vec<std::int64_t>(root, "doc_ids", H5T_NATIVE_INT64, H5T_INTEGER);
  ds.doc_groups = r.vec<std::int32_t>(root, "doc_groups", H5T_NATIVE_INT32, H5T_INTEGER);
  ds.doc_splits = r.vec<std::uint8_t>(root, "doc_splits", H5T_NATIVE_UINT8, H5T_INTEGER);
  ds.group_names = r.strings(root, "group_names");
  if (r.exists(root, "canaries")) {
    H5Id g(H5Gopen2(root, "canaries", H5P_DEFAULT), H5Gclose);
    if (!g.ok()) r.fail("canaries", "is not a group");
    CanarySet& c = ds.canaries;
    c.prefix = r.str_attr(g.get(), "prefix");
    c.space.name = r.str_attr(g.get(), "space");
    c.space.alphabet = r.str_attr(g.get(), "alphabet");
    c.space.length = static_cast<int>(r.i64_attr(g.get(), "length"));
    c.repetitions = static_cast<int>(r.i64_attr(g.get(), "repetitions"));
    c.position = r.str_attr(g.get(), "position");
    c.seed = r.u64_attr(g.get(), "seed");
    c.prefix_tokens = r.vec<TokenId>(g.get(), "prefix_tokens", H5T_NATIVE_INT32, H5T_INTEGER);
    c.separator_tokens = r.vec<TokenId>(g.get(), "separator_tokens", H5T_NATIVE_INT32, H5T_INTEGER);
    const auto secrets = r.strings(g.get(), "secrets");
    const auto secret_tokens = r.vec<TokenId>(g.get(), "secret_tokens", H5T_NATIVE_INT32, H5T_INTEGER);
    const auto offsets = r.vec<std::int64_t>(g.get(), "secret_offsets", H5T_NATIVE_INT64, H5T_INTEGER);
    const auto roles = r.vec<std::uint8_t>(g.get(), "roles", H5T_NATIVE_UINT8, H5T_INTEGER);
    const auto counts = r.vec<std::int32_t>(g.get(), "insertion_counts", H5T_NATIVE_INT32, H5T_INTEGER);
    const std::size_t n = secrets.size();
    if (offsets.size() != n + 1 || roles.size() != n || counts.size() != n || offsets.front() != 0 ||
        offsets.back() != static_cast<std::int64_t>(secret_tokens.size()))
      r.fail("canaries", "arrays disagree in length");
    for (std::size_t k = 0; k < n; ++k) {
      if (offsets[k + 1] < offsets[k]) r.fail("canaries/secret_offsets", "decrease");
      c.candidates.push_back({secrets[k],
                              std::vector<TokenId>(secret_tokens.begin() + offsets[k], secret_tokens.begin() + offsets[k + 1]),
                              static_cast<CanaryRole>(roles[k]), counts[k]});
    }
    const auto ic = r.vec<std::int32_t>(g.get(), "insertion_candidate", H5T_NATIVE_INT32, H5T_INTEGER);
    const auto id = r.vec<std::int64_t>(g.get(), "insertion_document", H5T_NATIVE_INT64, H5T_INTEGER);
    const auto io = r.vec<std::int64_t>(g.get(), "insertion_offset", H5T_NATIVE_INT64, H5T_INTEGER);
    if (id.size() != ic.size() || io.size() != ic.size()) r.fail("canaries/insertion_*", "disagree in length");
    for (std::size_t k = 0; k < ic.size(); ++k) c.insertions.push_back({ic[k], id[k], io[k]});
  }
  ds.validate(path);
  if (r.i64_attr(root, "num_documents") != ds.num_documents() ||
      r.i64_attr(root, "num_tokens") != static_cast<std::int64_t>(ds.tokens.size()))
    UNLEARN_THROW(IoError, path << ": num_documents/num_tokens attributes disagree with the arrays");
  return ds;
}

}  // namespace unlearn
