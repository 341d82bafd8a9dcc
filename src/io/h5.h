// Thin throwing layer over the raw HDF5 C API (HighFive's wrapper pattern): RAII handles, calls checked once,
// failures become IoError carrying HDF5's own error description. io layer, private to src/io.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unlearn::h5 {

/// Silences HDF5's automatic error printing (once per process): errors reach the user through IoError.
void init_error_handling();

/// Throws IoError "`what`: <HDF5's innermost error descriptions>" and clears the HDF5 error stack.
[[noreturn]] void fail(const std::string& what);

/// Checked calls: negative ids and statuses throw through fail().
inline hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) fail(what);
  return id;
}
inline herr_t check(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
  return status;
}

/// A move-only owner of one HDF5 identifier, closed with the matching H5*close on destruction.
class Handle {
 public:
  enum class Kind { kFile, kGroup, kDataset, kDataspace, kDatatype, kAttribute, kPlist };
  Handle() = default;
  Handle(hid_t id, Kind kind) : id_(id), kind_(kind) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), kind_(o.kind_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      kind_ = o.kind_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  /// Closes now, ignoring errors (unwinding paths).
  void reset() noexcept;
  /// Closes now and throws when the close fails (a file close is where buffered data reaches the disk).
  void close(const std::string& what);

 private:
  hid_t id_ = H5I_INVALID_HID;
  Kind kind_ = Kind::kPlist;
};

Handle plist(hid_t cls);                                  // H5Pcreate
Handle dataspace(const std::vector<hsize_t>& dims);       // simple dataspace; rank 0 gives a scalar space
Handle dataset_space(const Handle& dataset);              // H5Dget_space
Handle dataset_type(const Handle& dataset);               // H5Dget_type
Handle open_group(hid_t loc, const std::string& name);
Handle create_group(hid_t loc, const std::string& name);
Handle open_dataset(hid_t loc, const std::string& name);

/// IEEE binary16, little-endian (HDF5 1.10 has no predefined half type; this is h5py's float16).
Handle half_type();

bool link_exists(hid_t loc, const std::string& name);
/// Names of the links in a group, in name order.
std::vector<std::string> list_links(hid_t group);
/// Current extent of a dataspace.
std::vector<hsize_t> extent(const Handle& space);

/// Scalar attributes. Strings are fixed-length and null-terminated, so they sit inside the object header, which
/// carries a checksum with the V110 format (variable-length strings would live in the unchecked global heap).
void write_attribute(hid_t obj, const std::string& name, const std::string& value);
void write_attribute(hid_t obj, const std::string& name, std::int64_t value);
void write_attribute(hid_t obj, const std::string& name, double value);
std::vector<std::string> attribute_names(hid_t obj);  // in name order
bool attribute_exists(hid_t obj, const std::string& name);

enum class AttributeClass { kString, kInteger, kFloat, kOther };
AttributeClass attribute_class(hid_t obj, const std::string& name);
std::string read_string_attribute(hid_t obj, const std::string& name);  // fixed- or variable-length
std::int64_t read_int_attribute(hid_t obj, const std::string& name);
double read_float_attribute(hid_t obj, const std::string& name);

}  // namespace unlearn::h5
