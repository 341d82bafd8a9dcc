// Exception types and check macros used by every module.
// Bottom of the dependency order (util): no LibTorch, no MPI.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace unlearn {

/// Base of every error the project throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Invalid configuration or input detected identically on every rank before any communication:
/// all ranks throw it together, rank 0 reports it, and the job exits 1 without MPI_Abort.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A failed MPI/NCCL/CUDA call or a violated collective precondition (local to one rank).
/// Marks an exception that every rank of the job throws at the same point after agreeing on it through a collective
/// over the whole world (an all-reduced check): the CLI prints it once and every rank exits 1 cleanly, without
/// MPI_Abort. Only for errors that truly are agreed; anything else must stay an ordinary exception (a rank failing
/// alone would leave the others waiting in a collective).
class Agreed {
 public:
  virtual ~Agreed() = default;
};

class AgreedError : public ConfigError, public Agreed {
 public:
  using ConfigError::ConfigError;
};

class CommError : public Error {
 public:
  using Error::Error;
};

/// File and format errors (checkpoints, datasets, tokenizer files).
class IoError : public Error {
 public:
  using Error::Error;
};

class AgreedIoError : public IoError, public Agreed {
 public:
  using IoError::IoError;
};

/// Process identity stamped into check-macro messages: "[r3/node17]". Set once after MPI_Init.
void set_process_identity(int world_rank, const std::string& host);
int process_rank();                   // -1 before set_process_identity
const std::string& process_host();
std::string process_tag();            // "[r3/node17]" or "[r?/host]"

namespace detail {
[[noreturn]] void throw_check_failure(const char* kind, const char* file, int line, const char* expr,
                                      const std::string& message);
}  // namespace detail

}  // namespace unlearn

/// Always-on check. `msg` is a stream expression: UNLEARN_CHECK(n > 0, "n = " << n).
#define UNLEARN_CHECK(cond, msg)                                                                  \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::ostringstream unlearn_check_os_;                                                       \
      unlearn_check_os_ << msg;                                                                   \
      ::unlearn::detail::throw_check_failure("check", __FILE__, __LINE__, #cond,                 \
                                             unlearn_check_os_.str());                           \
    }                                                                                             \
  } while (0)

/// Throws an exception of type `type` (ConfigError, IoError, ...) with a streamed message.
#define UNLEARN_THROW(type, msg)          \
  do {                                    \
    std::ostringstream unlearn_throw_os_; \
    unlearn_throw_os_ << msg;             \
    throw type(unlearn_throw_os_.str());  \
  } while (0)

#ifdef NDEBUG
#define UNLEARN_DCHECK(cond, msg) \
  do {                            \
  } while (0)
#else
#define UNLEARN_DCHECK(cond, msg) UNLEARN_CHECK(cond, msg)
#endif
