// Durable, non-replacing file operations.
#include "files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "unlearn/util/error.h"

namespace unlearn::detail {
namespace {
std::string errno_text(int err) { return std::strerror(err); }
}  // namespace

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dir_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw IoError("cannot open '" + path + "' to sync it: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some filesystems cannot sync a directory (EINVAL); the rename is then as durable as they make it.
  if (rc != 0 && !(directory && err == EINVAL)) throw IoError("fsync of '" + path + "' failed: " + errno_text(err));
}

/// rename(2) that never replaces an existing file: renameat2(RENAME_NOREPLACE), or link + unlink where the
/// filesystem lacks it.
void rename_no_replace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  int err = errno;
  if (err == EEXIST) throw IoError("'" + to + "' already exists; checkpoint names are never reused");
  if (err != EINVAL && err != ENOSYS && err != ENOTSUP)
    throw IoError("cannot rename '" + from + "' to '" + to + "': " + errno_text(err));
  if (::link(from.c_str(), to.c_str()) != 0) {
    err = errno;
    if (err == EEXIST) throw IoError("'" + to + "' already exists; checkpoint names are never reused");
    throw IoError("cannot link '" + from + "' to '" + to + "': " + errno_text(err));
  }
  ::unlink(from.c_str());
}

}  // namespace unlearn::detail
