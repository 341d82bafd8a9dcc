// Real text corpora as documents: fortunes (one record each), the King James Bible (one chapter each, or one verse
// each: kjv-verses), Jane Austen's novels (one chapter each) and the notmuch test e-mail (one message each). data layer, no LibTorch.
// Documents are private: code names them by id (their position in load order), never prints their text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unlearn {

struct Document {
  std::int64_t id = 0;  // position in the corpus' deterministic load order
  std::string group;    // natural forget class: fortune file, Bible book, novel, hashed e-mail sender
  std::string text;
};

struct Corpus {
  std::string name;
  std::vector<Document> documents;
  /// SHA-256 of the source manifest: one "<sha256 of file>  <relative path>\n" line per file read, sorted by
  /// path (what `sha256sum` prints), so `tools/fetch-corpora.sh`'s pins and a dataset can be compared.
  std::string source_sha256;
  std::int64_t source_files = 0;
  std::int64_t source_bytes = 0;
};

/// Corpus names load_corpus knows, for help texts and validation.
const std::vector<std::string>& corpus_names();

/// The corpus whose files `name` reads (its directory and tools/fetch-corpora.sh name): kjv for kjv-verses.
std::string corpus_source(const std::string& name);

/// Loads corpus `name` from `dir` (the layout tools/fetch-corpora.sh writes; see docs/data.md).
/// ConfigError: unknown name, missing directory, or no documents (an empty corpus). IoError: unreadable files.
Corpus load_corpus(const std::string& name, const std::string& dir);

/// The per-format splitters behind load_corpus (documents get group `group` and ids from 0).
std::vector<Document> split_fortunes(std::string_view text, const std::string& group);
std::vector<Document> split_kjv_chapters(std::string_view text);
/// One document per verse, "Book C:V text" (wrapped lines kept), grouped by book: short records, so a planted
/// canary is a small part of its document and of the data.
std::vector<Document> split_kjv_verses(std::string_view text);
std::vector<Document> split_austen_chapters(std::string_view text, const std::string& group);
/// One RFC 5322 message: the From, To, Cc, Date and Subject headers (unfolded) and the body. The group is
/// "sender-" plus 12 hex digits of the SHA-256 of the lower-cased From address, never the address itself.
Document parse_mail_message(std::string_view raw);

}  // namespace unlearn
