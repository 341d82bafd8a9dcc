#include "solver_state.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <regex>

#include "unlearn/io/checkpoint.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {
constexpr const char* kFormat = "unlearn-solver-state";

std::vector<TensorBlock> state_blocks(const CgState& st, const TransformerModel& model, const ProcessGrid& grid,
                                      const std::vector<std::size_t>& subset, at::Tensor& history) {
  std::vector<TensorBlock> blocks;
  for (const auto& [v, name] : {std::pair<const ShardedVector*, const char*>{&st.x, "x."}, {&st.r, "r."},
                                {&st.p, "p."}})
    for (auto& b : parameter_blocks(model, grid, subset, v->shards(), name)) blocks.push_back(std::move(b));
  TensorBlock h;  // [iterations, 4]: iteration, relative residual, curvature, seconds (for the report)
  h.name = "history";
  h.local = history;
  h.global_shape = {history.size(0), 4};
  h.owner = grid.world_rank() == 0;
  blocks.push_back(std::move(h));
  return blocks;
}
}  // namespace

std::string solver_state_path(const std::string& dir, const SolverStateId& id) {
  char name[64];
  std::snprintf(name, sizeof(name), "cg-r%03lld-i%06lld.h5", static_cast<long long>(id.request),
                static_cast<long long>(id.iteration));
  return dir + "/" + name;
}

std::optional<SolverStateId> latest_solver_state(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  static const std::regex pattern(R"(cg-r(\d{3})-i(\d{6})\.h5)");
  std::optional<SolverStateId> best;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const SolverStateId id{std::stoll(m[1].str()), std::stoll(m[2].str())};
    if (!best || id.request > best->request || (id.request == best->request && id.iteration > best->iteration))
      best = id;
  }
  return best;
}

void save_solver_state(const std::string& dir, std::int64_t request, const CgState& st, const TransformerModel& model,
                       const ProcessGrid& grid, const std::vector<std::size_t>& subset,
                       const std::string& fingerprint) {
  at::Tensor history = at::zeros({static_cast<std::int64_t>(st.history.size()), 4}, at::kDouble);
  for (std::size_t i = 0; i < st.history.size(); ++i) {
    const auto& h = st.history[i];
    history[static_cast<std::int64_t>(i)].copy_(
        at::tensor({static_cast<double>(h.iteration), h.relative_residual, h.curvature, h.seconds}, at::kDouble));
  }
  Attributes attrs;
  attrs["format"] = std::string(kFormat);
  attrs["request"] = request;
  attrs["iteration"] = static_cast<std::int64_t>(st.iteration);
  attrs["rz"] = st.rz;
  attrs["residual_norm"] = st.residual_norm;
  attrs["fingerprint"] = fingerprint;
  write_tensor_file(solver_state_path(dir, {request, st.iteration}), grid.world(), attrs,
                    state_blocks(st, model, grid, subset, history));
}

CgState load_solver_state(const std::string& dir, const SolverStateId& id, const ShardedVector& like,
                          const TransformerModel& model, const ProcessGrid& grid,
                          const std::vector<std::size_t>& subset, const std::string& fingerprint) {
  const std::string path = solver_state_path(dir, id);
  const FileInfo info = read_file_info(path, grid.world());
  auto attr = [&](const char* key) -> const AttributeValue& {
    const auto it = info.attributes.find(key);
    if (it == info.attributes.end()) UNLEARN_THROW(AgreedIoError, "'" << path << "' lacks the attribute '" << key << "'");
    return it->second;
  };
  if (attribute_to_string(attr("format")) != kFormat)
    UNLEARN_THROW(AgreedIoError, "'" << path << "' is not a solver state file");
  if (attribute_to_string(attr("fingerprint")) != fingerprint)
    UNLEARN_THROW(AgreedError, "cannot resume from '" << path << "': it was written with other unlearning options "
                                                      "or another input checkpoint");
  // Typed reads: std::get on an attribute of another type threw std::bad_variant_access on every rank, which
  // aborted the job with "std::get: wrong index for variant" (found by tests/reliability/bad_input.sh).
  auto number = [&](const char* key, bool integer) -> const AttributeValue& {
    const AttributeValue& v = attr(key);
    if (integer ? !std::holds_alternative<std::int64_t>(v) : !std::holds_alternative<double>(v))
      UNLEARN_THROW(AgreedIoError, "'" << path << "': attribute '" << key << "' is not "
                                       << (integer ? "an integer" : "a float") << " (a damaged solver state)");
    return v;
  };
  CgState st;
  st.iteration = static_cast<int>(std::get<std::int64_t>(number("iteration", true)));
  st.rz = std::get<double>(number("rz", false));
  st.residual_norm = std::get<double>(number("residual_norm", false));
  st.x = like.zeros_like();
  st.r = like.zeros_like();
  st.p = like.zeros_like();
  const TensorInfo* h = info.find("history");
  if (!h || h->shape.size() != 2) UNLEARN_THROW(AgreedIoError, "'" << path << "' has no CG history");
  at::Tensor history = at::zeros({h->shape[0], 4}, at::kDouble);
  std::vector<TensorBlock> blocks = state_blocks(st, model, grid, subset, history);
  read_tensor_blocks(path, grid.world(), blocks, /*verify_digest=*/true);
  for (std::int64_t i = 0; i < history.size(0); ++i)
    st.history.push_back({static_cast<int>(history[i][0].item<double>()), history[i][1].item<double>(),
                          history[i][2].item<double>(), history[i][3].item<double>()});
  return st;
}

}  // namespace unlearn
