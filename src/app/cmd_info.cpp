// `unlearn info`: library versions, the process grid and where every rank runs (a placement check for Slurm).
#include <ATen/ATen.h>

#include <cstring>
#include <sstream>

#include "unlearn/app/subcommands.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

constexpr std::int64_t kHostBytes = 64;

class InfoCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "info"; }
  std::string_view summary() const override { return "print versions, the DP x TP grid and each rank's host"; }
  void add_options(po::options_description&, po::positional_options_description&) override {}

  int run(AppContext& ctx) override {
    const ProcessGrid& g = ctx.grid;
    // Row per rank: world, tp, dp, node-local rank, then the host name bytes.
    at::Tensor mine = at::zeros({4 + kHostBytes}, at::TensorOptions().dtype(at::kLong));
    auto* p = mine.data_ptr<std::int64_t>();
    p[0] = g.world_rank();
    p[1] = g.tp_rank();
    p[2] = g.dp_rank();
    p[3] = g.node_local_rank();
    const std::string& host = process_host();
    for (std::int64_t i = 0; i < kHostBytes && i < static_cast<std::int64_t>(host.size()); ++i)
      p[4 + i] = static_cast<unsigned char>(host[static_cast<std::size_t>(i)]);
    at::Tensor all = at::empty({g.world_size(), 4 + kHostBytes}, mine.options());
    g.world().all_gather(mine, all);

    std::ostringstream os;
    os << "rank  tp_rank  dp_rank  node_rank  host\n";
    for (int r = 0; r < g.world_size(); ++r) {
      const auto* row = all[r].data_ptr<std::int64_t>();
      std::string h;
      for (std::int64_t i = 0; i < kHostBytes && row[4 + i] != 0; ++i) h.push_back(static_cast<char>(row[4 + i]));
      char line[160];
      std::snprintf(line, sizeof(line), "%4lld  %7lld  %7lld  %9lld  %s\n", static_cast<long long>(row[0]),
                    static_cast<long long>(row[1]), static_cast<long long>(row[2]), static_cast<long long>(row[3]),
                    h.c_str());
      os << line;
    }
    log_info0(os.str().substr(0, os.str().size() - 1));
    return 0;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_info_command() { return std::make_unique<InfoCommand>(); }

}  // namespace unlearn
