// The `unlearn` command line: subcommands, shared options, start-up logging, and the MPI run policy.
// app layer: the top of the dependency order.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "unlearn/comm/process_grid.h"
#include "unlearn/util/log.h"

namespace unlearn {

namespace po = boost::program_options;

/// Options every subcommand takes (group "Common options").
struct CommonOptions {
  std::string config_file;      // --config: INI file; the command line overrides it
  int tp = 1;                   // --tp: tensor-parallel size (world = dp x tp)
  std::string log_level = "info";
  std::string metrics_file;     // --metrics: JSON-lines file written by rank 0
  int threads = 0;              // --threads: intra-op threads per rank; 0 = cores on the node / ranks on the node
};

/// An option's value as text: the config record of every output, and resume fingerprints (doubles in their shortest
/// exact form).
std::string option_value_text(const boost::any& value);

/// What a running subcommand gets: the grid, the options, the metrics sink and the full validated config.
struct AppContext {
  ProcessGrid& grid;
  const CommonOptions& common;
  const po::variables_map& options;
  MetricsWriter& metrics;       // enabled on world rank 0 only
  std::string config_json;      // every option and its value, recorded in every output
  std::string placement_json;   // per world rank: host (Slurm node name when set), tp_rank, dp_rank
};

class Subcommand {
 public:
  virtual ~Subcommand() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;  // one line for `unlearn --help`
  /// Positional usage shown in `unlearn NAME --help`, e.g. "comm".
  virtual std::string_view usage() const { return ""; }
  virtual void add_options(po::options_description& desc, po::positional_options_description& pos) = 0;
  /// Validation identical on every rank, before any communication; throws ConfigError.
  virtual void validate(const po::variables_map& vm, const CommonOptions& common, int world_size) const {}
  virtual int run(AppContext& ctx) = 0;
};

/// Every subcommand `unlearn` offers, in `--help` order.
std::vector<std::unique_ptr<Subcommand>> make_subcommands();

/// Runs `body` under MPI with the project's failure policy:
/// - `configure(world_rank, world_size)` must not communicate and must throw ConfigError identically on every rank
///   for bad input: rank 0 prints one message, all ranks finalise MPI and return 1;
/// - any exception from the returned action (or any non-ConfigError from configure) is logged with the rank prefix,
///   then MPI_Abort ends the whole job, so no rank hangs in a collective another rank will never join.
using Action = std::function<int()>;
int run_mpi_program(int argc, char** argv,
                    const std::function<Action(int world_rank, int world_size)>& configure);

/// Communication and memory of every rank over a span of `wall_s` seconds that began when comm_usage() was `since`.
struct ResourceUsage {
  struct Spread {
    double min = 0, mean = 0, max = 0;  // over ranks
  };
  double wall_s = 0;                     // rank 0's
  Spread comm_seconds, comm_fraction;    // time inside collectives, and its fraction of each rank's wall_s
  Spread peak_rss_bytes;                 // peak resident set since the process started
  std::int64_t comm_calls = 0, comm_bytes = 0;  // rank 0's
  std::string json() const;
  std::string describe() const;  // one line for the log
};
/// Collective over `world`.
ResourceUsage measure_resource_usage(Communicator& world, const CommUsage& since, double wall_s);

/// Entry point of the `unlearn` executable.
int unlearn_main(int argc, char** argv);

/// Library and build versions, one per line ("LibTorch 1.13.0", ...).
std::vector<std::string> version_lines();

}  // namespace unlearn
