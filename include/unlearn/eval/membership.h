// Membership-inference attacks on per-token log-probabilities (design 3.5): the scores, the AUC between members
// (forget documents) and non-members (held-out documents), and bootstrap confidence intervals. An unlearned model
// should leave the attack near chance (AUC 0.5). eval layer, no LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unlearn {

/// Loss attack (Yeom et al. 2018): minus the mean token negative log-likelihood (nats). Higher: more likely a member.
double mia_loss_score(const std::vector<double>& token_nll);

/// Min-k% probability (Shi et al. 2024): the mean log-probability of the fraction k (0 < k <= 1) of tokens with the
/// lowest probability (at least one token). Higher: more likely a member.
double mia_min_k_score(const std::vector<double>& token_nll, double k);

/// zlib ratio (Carlini et al. 2021): minus the summed NLL (bits) divided by the zlib-compressed size (bits) of the
/// document's bytes, so text that is only easy because it is repetitive does not look like a member.
double mia_zlib_score(const std::vector<double>& token_nll, const std::string& document_bytes);

/// Size in bytes of `bytes` compressed by zlib at level 9.
std::size_t zlib_compressed_size(const std::string& bytes);

/// Area under the ROC curve of `members` against `non_members`: P(member score > non-member score) + 1/2 P(tie),
/// by ranks in O(n log n). ConfigError when either side is empty or a score is not finite.
double roc_auc(const std::vector<double>& members, const std::vector<double>& non_members);

struct AucInterval {
  double auc = 0, lower = 0, upper = 0;  // point estimate and percentile bootstrap interval
  double level = 0.95;
  int resamples = 0;
};
/// Percentile bootstrap: both groups resampled with replacement `resamples` times (stratified), deterministic for
/// `seed`.
AucInterval bootstrap_auc(const std::vector<double>& members, const std::vector<double>& non_members, int resamples,
                          std::uint64_t seed, double level = 0.95);

/// Percentile bootstrap interval of a mean (e.g. mean exposure over canaries), same conventions.
AucInterval bootstrap_mean(const std::vector<double>& values, int resamples, std::uint64_t seed, double level = 0.95);

}  // namespace unlearn
