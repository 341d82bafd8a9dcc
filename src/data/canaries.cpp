// Secret-Sharer canaries (see canaries.h).
#include "unlearn/data/canaries.h"

#include <cmath>
#include <unordered_set>

#include "unlearn/data/dataset.h"
#include "unlearn/data/rng.h"
#include "unlearn/util/error.h"

namespace unlearn {

const char* to_string(CanaryRole role) {
  switch (role) {
    case CanaryRole::kTuning: return "tuning";
    case CanaryRole::kEvaluation: return "evaluation";
    case CanaryRole::kReference: return "reference";
    case CanaryRole::kHeldout: return "heldout";
  }
  return "?";
}

double CanarySpace::log2_size() const { return length * std::log2(static_cast<double>(alphabet.size())); }

CanarySpace make_canary_space(const std::string& name, int length) {
  if (length < 1 || length > 64) UNLEARN_THROW(ConfigError, "canary length must be 1..64, got " << length);
  static const std::pair<const char*, const char*> kSpaces[] = {
      {"digits", "0123456789"},
      {"hex", "0123456789abcdef"},
      {"lower", "abcdefghijklmnopqrstuvwxyz"},
      {"upper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
      {"alnum", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"},
  };
  for (const auto& [n, a] : kSpaces)
    if (name == n) return {name, a, length};
  UNLEARN_THROW(ConfigError, "unknown canary space '" << name << "' (use digits, hex, lower, upper or alnum)");
}

void validate_canary_options(const CanaryOptions& o) {
  if (o.count < 0 || o.tuning < 0 || o.references < 0 || o.heldout < 0)
    UNLEARN_THROW(ConfigError, "canary counts must be >= 0");
  if (o.count == 0) return;
  if (o.tuning > o.count)
    UNLEARN_THROW(ConfigError, "--canary-tuning (" << o.tuning << ") exceeds --canaries (" << o.count << ")");
  if (o.repetitions < 1) UNLEARN_THROW(ConfigError, "--canary-repeats must be >= 1, got " << o.repetitions);
  if (o.references < 1) UNLEARN_THROW(ConfigError, "--canary-references must be >= 1 to rank canaries");
  if (o.prefix.empty()) UNLEARN_THROW(ConfigError, "--canary-prefix must not be empty");
  if (o.position != "start" && o.position != "end")
    UNLEARN_THROW(ConfigError, "--canary-position must be start or end, got '" << o.position << "'");
  const CanarySpace space = make_canary_space(o.space, o.length);
  const double total = static_cast<double>(o.count) + o.references + (o.heldout ? o.heldout : o.count);
  // Distinct secrets by rejection: keep the space at least twice the candidates so drawing stays fast.
  if (std::log2(2 * total) > space.log2_size())
    UNLEARN_THROW(ConfigError, "canary space " << o.space << ":" << o.length << " holds 2^" << space.log2_size()
                                               << " secrets, too few for " << total << " distinct candidates");
}

std::vector<TokenId> CanarySet::sequence(std::size_t candidate) const {
  std::vector<TokenId> s = prefix_tokens;
  const auto& t = candidates.at(candidate).secret_tokens;
  s.insert(s.end(), t.begin(), t.end());
  return s;
}

void plant_canaries(TokenDataset& ds, const Tokenizer& tokenizer, const CanaryOptions& o) {
  validate_canary_options(o);
  if (o.count == 0) return;
  if (!ds.canaries.empty()) UNLEARN_THROW(ConfigError, "the dataset already holds canaries");
  CanarySet& c = ds.canaries;
  c.prefix = o.prefix;
  c.space = make_canary_space(o.space, o.length);
  c.repetitions = o.repetitions;
  c.position = o.position;
  c.seed = o.seed;
  // Separately tokenised (design 3.5): GPT-2 would otherwise merge the prefix's last space into the secret.
  c.prefix_tokens = tokenizer.encode(c.prefix);
  c.separator_tokens = tokenizer.encode("\n");

  const int heldout = o.heldout ? o.heldout : o.count;
  DataRng secret_rng(o.seed, 2);
  std::unordered_set<std::string> seen;
  auto add = [&](CanaryRole role, int n) {
    for (int k = 0; k < n; ++k) {
      std::string s;
      do {
        s.clear();
        for (int i = 0; i < c.space.length; ++i) s.push_back(c.space.alphabet[secret_rng.below(c.space.alphabet.size())]);
      } while (!seen.insert(s).second);
      const bool inserted = role == CanaryRole::kTuning || role == CanaryRole::kEvaluation;
      c.candidates.push_back({s, tokenizer.encode(s), role, inserted ? o.repetitions : 0});
    }
  };
  add(CanaryRole::kTuning, o.tuning);
  add(CanaryRole::kEvaluation, o.count - o.tuning);
  add(CanaryRole::kReference, o.references);
  add(CanaryRole::kHeldout, heldout);

  std::vector<std::int64_t> train;
  for (std::int64_t i = 0; i < ds.num_documents(); ++i)
    if (ds.doc_splits[static_cast<std::size_t>(i)] == static_cast<std::uint8_t>(Split::kTrain)) train.push_back(i);
  if (static_cast<std::int64_t>(train.size()) < o.repetitions)
    UNLEARN_THROW(ConfigError, "cannot insert each canary " << o.repetitions << " times into distinct documents: the "
                                                            << "training split has " << train.size() << " documents");
  // Per canary, r distinct training documents (a partial Fisher-Yates shuffle of the training rows).
  DataRng site_rng(o.seed, 3);
  std::vector<std::vector<std::int32_t>> per_doc(static_cast<std::size_t>(ds.num_documents()));
  for (int k = 0; k < o.count; ++k) {
    for (int j = 0; j < o.repetitions; ++j) {
      const std::size_t pick = j + static_cast<std::size_t>(site_rng.below(train.size() - static_cast<std::size_t>(j)));
      std::swap(train[static_cast<std::size_t>(j)], train[pick]);
      per_doc[static_cast<std::size_t>(train[static_cast<std::size_t>(j)])].push_back(k);
    }
  }
  // Rebuild the token array once: start: [prefix secret sep]* document; end: document [sep prefix secret]*.
  std::vector<TokenId> tokens;
  std::vector<std::int64_t> offsets{0};
  tokens.reserve(ds.tokens.size() + static_cast<std::size_t>(o.count) * static_cast<std::size_t>(o.repetitions) * 16);
  for (std::int64_t i = 0; i < ds.num_documents(); ++i) {
    const auto& ins = per_doc[static_cast<std::size_t>(i)];
    const auto doc_begin = ds.tokens.begin() + ds.doc_offsets[static_cast<std::size_t>(i)];
    const auto doc_end = ds.tokens.begin() + ds.doc_offsets[static_cast<std::size_t>(i) + 1];
    const std::int64_t base = static_cast<std::int64_t>(tokens.size());
    if (o.position == "end") tokens.insert(tokens.end(), doc_begin, doc_end);
    for (std::int32_t k : ins) {
      if (o.position == "end") tokens.insert(tokens.end(), c.separator_tokens.begin(), c.separator_tokens.end());
      c.insertions.push_back({k, i, static_cast<std::int64_t>(tokens.size()) - base});
      const auto seq = c.sequence(static_cast<std::size_t>(k));
      tokens.insert(tokens.end(), seq.begin(), seq.end());
      if (o.position == "start") tokens.insert(tokens.end(), c.separator_tokens.begin(), c.separator_tokens.end());
    }
    if (o.position == "start") tokens.insert(tokens.end(), doc_begin, doc_end);
    offsets.push_back(static_cast<std::int64_t>(tokens.size()));
  }
  ds.tokens = std::move(tokens);
  ds.doc_offsets = std::move(offsets);
  ds.validate("dataset with canaries");
}

}  // namespace unlearn
