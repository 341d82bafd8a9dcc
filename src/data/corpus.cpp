// Corpus readers (see corpus.h). Every reader is deterministic: files in sorted path order, documents in file order.
#include "unlearn/data/corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "unlearn/data/sha256.h"
#include "unlearn/parse/tokenizer_files.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace fs = std::filesystem;
namespace {

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

/// Lines without their terminators, plus the byte offset where each starts (offsets.back() = text.size()).
void split_lines(std::string_view text, std::vector<std::string_view>& lines, std::vector<std::size_t>& starts) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    starts.push_back(pos);
    pos = eol + 1;
  }
  starts.push_back(text.size());
}

/// Text of lines [a, b) with trailing blank lines dropped, ending in one newline.
std::string join_lines(std::string_view text, const std::vector<std::string_view>& lines,
                       const std::vector<std::size_t>& starts, std::size_t a, std::size_t b) {
  while (b > a && blank(lines[b - 1])) --b;
  if (b <= a) return "";
  std::string out(text.substr(starts[a], starts[b] - starts[a]));
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out + "\n";
}

struct SourceFile {
  std::string rel;
  std::string bytes;
};

/// Reads the files `select` accepts under `dir` (recursively when asked), sorted by relative path.
std::vector<SourceFile> read_sources(const fs::path& dir, bool recursive, bool (*select)(const fs::path&)) {
  std::vector<fs::path> paths;
  auto consider = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && select(e.path())) paths.push_back(e.path());
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) consider(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir)) consider(e);
  }
  std::vector<SourceFile> out;
  for (const auto& p : paths) out.push_back({fs::relative(p, dir).generic_string(), read_file_bytes(p.string())});
  std::sort(out.begin(), out.end(), [](const SourceFile& a, const SourceFile& b) { return a.rel < b.rel; });
  return out;
}

bool no_dot_no_manifest(const fs::path& p) {  // fortune files: skip *.dat, *.u8 and our manifests
  return p.filename().string().find('.') == std::string::npos;
}
bool is_txt(const fs::path& p) { return p.extension() == ".txt"; }
bool is_kjv(const fs::path& p) { return p.filename() == "kjv.txt"; }
bool is_mail(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] != '.' && p.extension() != ".sha256";
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

const std::vector<std::string>& corpus_names() {
  static const std::vector<std::string> names{"fortunes", "kjv", "kjv-verses", "austen", "notmuch"};
  return names;
}

std::string corpus_source(const std::string& name) { return name == "kjv-verses" ? "kjv" : name; }

std::vector<Document> split_fortunes(std::string_view text, const std::string& group) {
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  split_lines(text, lines, starts);
  std::vector<Document> out;
  std::size_t begin = 0;
  for (std::size_t i = 0; i <= lines.size(); ++i) {
    if (i == lines.size() || lines[i] == "%") {
      std::string t = join_lines(text, lines, starts, begin, i);
      if (!blank(t)) out.push_back({static_cast<std::int64_t>(out.size()), group, std::move(t)});
      begin = i + 1;
    }
  }
  return out;
}

std::vector<Document> split_kjv_chapters(std::string_view text) {
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  split_lines(text, lines, starts);
  // A chapter heading ("Genesis 1", "1 Kings 22") stands alone between blank lines and ends in a number; verse
  // lines are indented and wrapped continuation lines never have blank lines on both sides.
  auto heading = [&](std::size_t i, std::string* book) {
    const std::string_view l = lines[i];
    if (l.empty() || l[0] == ' ' || !std::isdigit(static_cast<unsigned char>(l.back()))) return false;
    if (i > 0 && !lines[i - 1].empty()) return false;
    if (i + 1 < lines.size() && !lines[i + 1].empty()) return false;
    const std::size_t sp = l.find_last_of(' ');
    if (sp == std::string_view::npos || sp == 0) return false;
    for (std::size_t k = sp + 1; k < l.size(); ++k)
      if (!std::isdigit(static_cast<unsigned char>(l[k]))) return false;
    if (book) *book = std::string(l.substr(0, sp));
    return true;
  };
  std::vector<Document> out;
  std::string book;
  std::size_t begin = lines.size();
  for (std::size_t i = 0; i <= lines.size(); ++i) {
    std::string next_book;
    if (i == lines.size() || heading(i, &next_book)) {
      if (begin < i) {
        std::string t = join_lines(text, lines, starts, begin, i);
        if (!blank(t)) out.push_back({static_cast<std::int64_t>(out.size()), book, std::move(t)});
      }
      begin = i;
      book = next_book;
    }
  }
  return out;
}

std::vector<Document> split_kjv_verses(std::string_view text) {
  std::vector<Document> out;
  for (const Document& chapter : split_kjv_chapters(text)) {
    std::vector<std::string_view> lines;
    std::vector<std::size_t> starts;
    split_lines(chapter.text, lines, starts);
    const std::string heading = lines.empty() ? std::string() : trim(lines[0]);  // "Genesis 1"
    for (std::size_t i = 1; i < lines.size(); ++i) {
      const std::string_view l = lines[i];
      std::size_t k = 0;
      while (k < l.size() && l[k] == ' ') ++k;
      std::size_t digits = k;
      while (digits < l.size() && std::isdigit(static_cast<unsigned char>(l[digits]))) ++digits;
      if (k > 0 && digits > k && digits < l.size() && l[digits] == ' ') {  // "  3 And God said, ..."
        out.push_back({static_cast<std::int64_t>(out.size()), chapter.group,
                       heading + ":" + std::string(l.substr(k, digits - k)) + std::string(l.substr(digits)) + "\n"});
      } else if (!blank(l) && !out.empty()) {
        out.back().text += std::string(l) + "\n";  // a wrapped line of the verse before
      }
    }
  }
  return out;
}

std::vector<Document> split_austen_chapters(std::string_view text, const std::string& group) {
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  split_lines(text, lines, starts);
  auto heading = [&](std::string_view l) {  // "CHAPTER 1", "Chapter I", "CHAPTER XII."
    if (l.substr(0, 8) != "CHAPTER " && l.substr(0, 8) != "Chapter ") return false;
    std::string_view num = l.substr(8);
    while (!num.empty() && (num.back() == '.' || num.back() == ' ')) num.remove_suffix(1);
    if (num.empty()) return false;
    return std::all_of(num.begin(), num.end(), [](char c) {
             return std::isdigit(static_cast<unsigned char>(c));
           }) ||
           std::all_of(num.begin(), num.end(), [](char c) { return std::string_view("IVXLC").find(c) != std::string_view::npos; });
  };
  std::vector<Document> out;
  std::size_t begin = 0;  // text before the first heading (title, volume line) is a document of its own
  for (std::size_t i = 0; i <= lines.size(); ++i) {
    if (i == lines.size() || heading(lines[i])) {
      std::string t = join_lines(text, lines, starts, begin, i);
      if (!blank(t)) out.push_back({static_cast<std::int64_t>(out.size()), group, std::move(t)});
      begin = i;
    }
  }
  return out;
}

Document parse_mail_message(std::string_view raw) {
  std::vector<std::string_view> lines;
  std::vector<std::size_t> starts;
  split_lines(raw, lines, starts);
  std::size_t body = lines.size();
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      body = i + 1;
      break;
    }
    if ((lines[i][0] == ' ' || lines[i][0] == '\t') && !headers.empty()) {
      headers.back().second += " " + trim(lines[i]);
      continue;
    }
    const std::size_t colon = lines[i].find(':');
    if (colon == std::string_view::npos) continue;  // mbox "From " lines and junk
    headers.emplace_back(std::string(lines[i].substr(0, colon)), trim(lines[i].substr(colon + 1)));
  }
  Document d;
  std::string sender;
  for (const auto& [name, value] : headers) {
    const std::string n = lower(name);
    if (n != "from" && n != "to" && n != "cc" && n != "date" && n != "subject") continue;
    d.text += name + ": " + value + "\n";
    if (n == "from" && sender.empty()) {
      const std::size_t lt = value.rfind('<'), gt = value.rfind('>');
      sender = lower(trim(lt != std::string::npos && gt != std::string::npos && gt > lt
                              ? std::string_view(value).substr(lt + 1, gt - lt - 1)
                              : std::string_view(value)));
    }
  }
  d.group = sender.empty() ? "sender-unknown" : "sender-" + sha256_hex(sender).substr(0, 12);
  d.text += "\n";
  if (body < lines.size()) d.text += std::string(raw.substr(starts[body]));
  return d;
}

Corpus load_corpus(const std::string& name, const std::string& dir) {
  if (std::find(corpus_names().begin(), corpus_names().end(), name) == corpus_names().end())
    UNLEARN_THROW(ConfigError, "unknown corpus '" << name << "' (known: fortunes, kjv, kjv-verses, austen, notmuch)");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    UNLEARN_THROW(ConfigError, "corpus '" << name << "': directory '" << dir
                                          << "' does not exist (run tools/fetch-corpora.sh " << corpus_source(name)
                                          << ")");
  Corpus c;
  c.name = name;
  std::vector<SourceFile> files;
  if (name == "fortunes") files = read_sources(dir, false, no_dot_no_manifest);
  else if (corpus_source(name) == "kjv") files = read_sources(dir, false, is_kjv);
  else if (name == "austen") files = read_sources(dir, false, is_txt);
  else files = read_sources(dir, true, is_mail);

  Sha256 manifest;
  for (const auto& f : files) {
    manifest.update(sha256_hex(f.bytes) + "  " + f.rel + "\n");
    c.source_bytes += static_cast<std::int64_t>(f.bytes.size());
    std::vector<Document> docs;
    if (name == "fortunes") {
      docs = split_fortunes(f.bytes, f.rel);
    } else if (name == "kjv") {
      docs = split_kjv_chapters(f.bytes);
    } else if (name == "kjv-verses") {
      docs = split_kjv_verses(f.bytes);
    } else if (name == "austen") {
      docs = split_austen_chapters(f.bytes, fs::path(f.rel).stem().string());
    } else {
      Document d = parse_mail_message(f.bytes);
      if (!blank(d.text)) docs.push_back(std::move(d));
    }
    for (auto& d : docs) {
      d.id = static_cast<std::int64_t>(c.documents.size());
      c.documents.push_back(std::move(d));
    }
  }
  c.source_files = static_cast<std::int64_t>(files.size());
  c.source_sha256 = manifest.hex_digest();
  if (c.documents.empty())
    UNLEARN_THROW(ConfigError, "corpus '" << name << "' in '" << dir << "' is empty: " << files.size()
                                          << " source file(s), no documents");
  return c;
}

}  // namespace unlearn
