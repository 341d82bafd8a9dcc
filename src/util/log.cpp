// Logging and the metrics JSON-lines writer.
#include "unlearn/util/log.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>

#include "unlearn/util/error.h"

namespace unlearn {
namespace {
LogLevel g_level = LogLevel::kInfo;

void emit(std::FILE* stream, const std::string& text) {
  // One fwrite per line keeps lines from different ranks from interleaving mid-line.
  std::string line = text;
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stream);
  std::fflush(stream);
}
bool is_rank0() { return process_rank() <= 0; }
}  // namespace

LogLevel parse_log_level(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  if (name == "quiet") return LogLevel::kQuiet;
  UNLEARN_THROW(ConfigError, "unknown log level '" << name << "' (expected debug, info, warn, error or quiet)");
}
void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_debug0(const std::string& line) {
  if (g_level <= LogLevel::kDebug && is_rank0()) emit(stdout, line);
}
void log_info0(const std::string& line) {
  if (g_level <= LogLevel::kInfo && is_rank0()) emit(stdout, line);
}
void log_warn(const std::string& line) {
  if (g_level <= LogLevel::kWarn) emit(stderr, process_tag() + " warning: " + line);
}
void log_error(const std::string& line) {
  if (g_level <= LogLevel::kError) emit(stderr, process_tag() + " error: " + line);
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

JsonObject& JsonObject::add(std::string_view key, std::string_view value) {
  fields_.emplace_back(std::string(key), json_escape(value));
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, double value) {
  if (!std::isfinite(value)) return add_raw(key, "null");
  std::ostringstream os;
  os << std::setprecision(17) << value;
  fields_.emplace_back(std::string(key), os.str());
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, std::int64_t value) {
  fields_.emplace_back(std::string(key), std::to_string(value));
  return *this;
}
JsonObject& JsonObject::add(std::string_view key, bool value) {
  fields_.emplace_back(std::string(key), value ? "true" : "false");
  return *this;
}
JsonObject& JsonObject::add_raw(std::string_view key, std::string_view json) {
  fields_.emplace_back(std::string(key), std::string(json));
  return *this;
}
std::string JsonObject::str() const {
  std::string out = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    out += json_escape(fields_[i].first);
    out += ": ";
    out += fields_[i].second;
  }
  out += "}";
  return out;
}

MetricsWriter::MetricsWriter(const std::string& path) {
  if (path.empty()) return;
  out_ = std::make_unique<std::ofstream>(path, std::ios::app);
  if (!*out_) UNLEARN_THROW(IoError, "cannot open metrics file '" << path << "' for appending");
}

void MetricsWriter::write(const JsonObject& record) {
  if (!out_) return;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line = record.str();
  // Prepend the timestamp as the first field.
  line.insert(1, "\"time\": " + [&] {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << now;
    return os.str();
  }() + (line.size() > 2 ? ", " : ""));
  *out_ << line << '\n';
  out_->flush();
  if (!*out_) throw IoError("write to the metrics file failed");
}

}  // namespace unlearn
