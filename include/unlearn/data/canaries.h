// Secret-Sharer canaries (design 3.5): a prefix plus a secret drawn from a declared space, prefix and secret
// tokenised separately, inserted r times into training documents; tuning, evaluation, reference (never inserted,
// for the exposure rank) and held-out (never inserted, for the baseline) candidates. data layer.
// Secrets are private: logs name canaries by index only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unlearn/data/tokenizer.h"

namespace unlearn {

struct TokenDataset;

enum class CanaryRole : std::uint8_t { kTuning = 0, kEvaluation = 1, kReference = 2, kHeldout = 3 };
const char* to_string(CanaryRole role);

/// The space R secrets come from: `length` characters drawn uniformly from `alphabet`.
struct CanarySpace {
  std::string name;      // digits | hex | lower | upper | alnum
  std::string alphabet;  // its characters
  int length = 9;
  /// log2 |R| = length * log2 |alphabet|.
  double log2_size() const;
};
/// ConfigError for an unknown name or a length outside 1..64.
CanarySpace make_canary_space(const std::string& name, int length);

struct CanaryOptions {
  int count = 0;           // inserted canaries (tuning + evaluation); 0 = none
  int tuning = 0;          // of which tuning canaries
  int references = 1000;   // never-inserted candidates ranked against (N of the exposure)
  int heldout = 0;         // never-inserted candidates for the baseline; 0 = as many as `count`
  int repetitions = 20;    // r: insertions per canary, each into a different training document
  std::string prefix = "my secret number is ";
  std::string space = "digits";
  int length = 9;
  std::string position = "start";  // start | end of the document (start matches scoring: prefix first)
  std::uint64_t seed = 0;
};
/// ConfigError for inconsistent options (negative counts, tuning > count, more candidates than the space holds,
/// unknown position); called by plant_canaries and by the CLI's validation.
void validate_canary_options(const CanaryOptions& o);

struct CanaryCandidate {
  std::string secret;                  // characters of the space
  std::vector<TokenId> secret_tokens;  // the secret tokenised on its own
  CanaryRole role = CanaryRole::kReference;
  std::int32_t insertions = 0;         // r for tuning/evaluation canaries, 0 otherwise
};

struct CanaryInsertion {
  std::int32_t candidate = 0;  // index into candidates
  std::int64_t document = 0;   // row of the dataset (not the document id)
  std::int64_t offset = 0;     // token offset of the prefix inside that document
};

struct CanarySet {
  std::string prefix;
  std::vector<TokenId> prefix_tokens;  // the prefix tokenised on its own
  std::vector<TokenId> separator_tokens;  // "\n" between canary and document text
  CanarySpace space;
  int repetitions = 0;
  std::string position;
  std::uint64_t seed = 0;
  std::vector<CanaryCandidate> candidates;  // inserted ones first (tuning, then evaluation), then references, held-out
  std::vector<CanaryInsertion> insertions;
  bool empty() const { return candidates.empty(); }
  /// prefix_tokens followed by the candidate's secret_tokens: the sequence inserted and scored.
  std::vector<TokenId> sequence(std::size_t candidate) const;
};

/// Draws distinct secrets for every candidate, tokenises prefix and secrets separately, and inserts each tuning
/// and evaluation canary `repetitions` times into distinct training documents of `ds` (ConfigError when the
/// training split has fewer documents than `repetitions`). Deterministic for options.seed.
void plant_canaries(TokenDataset& ds, const Tokenizer& tokenizer, const CanaryOptions& options);

}  // namespace unlearn
