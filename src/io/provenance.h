// Where a checkpoint came from: the build's git revision and this process's command line. io layer, private.
#pragma once

#include <string>

namespace unlearn::detail {

/// `git describe --always --dirty` of the source tree at configure time, or "unknown" outside a git checkout.
std::string build_git_revision();
/// argv of this process joined with spaces (arguments with spaces or quotes are single-quoted); Linux /proc.
std::string process_command_line();
/// Current UTC time, ISO 8601 to the second.
std::string utc_now();

}  // namespace unlearn::detail
