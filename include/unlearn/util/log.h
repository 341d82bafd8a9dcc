// Logging: rank-0 info lines, rank-prefixed warnings and errors, and a JSON-lines metrics file.
// util layer: no LibTorch, no MPI (the rank comes from set_process_identity).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unlearn {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kQuiet = 4 };

/// Parses "debug|info|warn|error|quiet"; throws ConfigError otherwise.
LogLevel parse_log_level(std::string_view name);
void set_log_level(LogLevel level);
LogLevel log_level();

/// Lines go to stderr (warnings, errors) or stdout (info), flushed, whole lines at a time.
void log_debug0(const std::string& line);  // world rank 0 only
void log_info0(const std::string& line);   // world rank 0 only
void log_warn(const std::string& line);    // any rank, "[r3/host] warning: "
void log_error(const std::string& line);   // any rank, "[r3/host] error: "

/// Stream helper: UNLEARN_LOG_INFO0("step " << k << " loss " << loss).
#define UNLEARN_LOG_INFO0(msg)              \
  do {                                      \
    std::ostringstream unlearn_log_os_;     \
    unlearn_log_os_ << msg;                 \
    ::unlearn::log_info0(unlearn_log_os_.str()); \
  } while (0)

/// One JSON object, built field by field in insertion order. Strings are escaped.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
  JsonObject& add(std::string_view key, double value);  // non-finite values become null
  JsonObject& add(std::string_view key, std::int64_t value);
  JsonObject& add(std::string_view key, int value) { return add(key, static_cast<std::int64_t>(value)); }
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add_raw(std::string_view key, std::string_view json);  // value already JSON
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string json_escape(std::string_view s);

/// Appends one JSON object per line. Open it on rank 0 only; an empty path disables it.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  explicit MetricsWriter(const std::string& path);
  bool enabled() const { return out_ != nullptr; }
  void write(const JsonObject& record);  // adds "time" (seconds since the Unix epoch)

 private:
  std::unique_ptr<std::ofstream> out_;
};

}  // namespace unlearn
