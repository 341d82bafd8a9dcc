// Durable, non-replacing file operations shared by the checkpoint and safetensors writers. io layer, private.
#pragma once

#include <string>

namespace unlearn::detail {

std::string dir_name(const std::string& path);   // "." for a bare name
std::string base_name(const std::string& path);
/// fsync of a file or directory; a directory that cannot be synced (EINVAL on some filesystems) is accepted.
void fsync_path(const std::string& path, bool directory);
/// rename(2) that never replaces an existing file: renameat2(RENAME_NOREPLACE), or link + unlink where the
/// filesystem lacks it. IoError when `to` exists.
void rename_no_replace(const std::string& from, const std::string& to);

}  // namespace unlearn::detail
