// Subcommand dispatch, option parsing (Boost.Program_options), start-up logging and the MPI run policy.
#include "unlearn/app/cli.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <hdf5.h>
#include <mpi.h>
#include <torch/version.h>

#include <boost/version.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/resource.h>
#include <thread>

#include "unlearn/comm/mpi_communicator.h"
#include "unlearn/util/error.h"
#include "unlearn/util/numerics.h"

namespace unlearn {
namespace {

void print0(int rank, const std::string& text) {
  if (rank == 0) {
    std::cout << text << std::flush;
  }
}

std::string general_help(const std::vector<std::unique_ptr<Subcommand>>& subs) {
  std::ostringstream os;
  os << "unlearn: remove a forget set's influence from a tensor-parallel transformer LM with second-order updates.\n\n"
     << "Usage: [mpirun -np N | srun --mpi=pmix -n N] unlearn <command> [options]\n\n"
     << "Commands:\n";
  for (const auto& s : subs) {
    std::string n(s->name());
    n.resize(std::max<std::size_t>(n.size(), 14), ' ');
    os << "  " << n << s->summary() << '\n';
  }
  os << "\nEvery command takes --help, --config FILE.ini (the command line overrides it), --tp, --threads,\n"
     << "--log-level and --metrics FILE. Run `unlearn <command> --help` for its options.\n"
     << "Other flags: --version prints library versions.\n";
  return os.str();
}

void add_common_options(po::options_description& desc, CommonOptions& common) {
  desc.add_options()
      ("help,h", "print this help and exit")
      ("config", po::value<std::string>(&common.config_file)->value_name("FILE"),
       "INI file of options (key = value, sections allowed); command-line values override it")
      ("tp", po::value<int>(&common.tp)->default_value(1)->value_name("N"),
       "tensor-parallel size; must divide the number of ranks (world = dp x tp, tp groups are contiguous ranks)")
      ("threads", po::value<int>(&common.threads)->default_value(0)->value_name("N"),
       "intra-op threads per rank; 0 = cores on the node divided by the ranks on the node")
      ("log-level", po::value<std::string>(&common.log_level)->default_value("info")->value_name("LEVEL"),
       "debug | info | warn | error | quiet")
      ("metrics", po::value<std::string>(&common.metrics_file)->value_name("FILE"),
       "append one JSON object per event to FILE (rank 0), starting with the full configuration");
}

/// Every option with its value as a JSON object, and as aligned lines for the start-up log.
void describe_options(const po::variables_map& vm, std::string& json, std::string& table) {
  JsonObject obj;
  std::ostringstream os;
  for (const auto& [name, value] : vm) {
    if (name == "help") continue;
    const std::string text = option_value_text(value.value());
    obj.add(name, text);
    std::string padded = name;
    padded.resize(std::max<std::size_t>(padded.size(), 22), ' ');
    os << "  " << padded << " = " << text << (value.defaulted() ? "  (default)" : "") << '\n';
  }
  json = obj.str();
  table = os.str();
}

// Where each world rank runs, as a JSON array indexed by world rank, so a report shows the placement the grid got.
// The host is Slurm's node name when set: several slurmd on one machine (tests/slurm) share the processor name.
std::string placement_json(const ProcessGrid& grid) {
  struct Entry {
    char host[MPI_MAX_PROCESSOR_NAME];
    int tp_rank, dp_rank;
  };
  Entry mine{};
  if (const char* node = std::getenv("SLURMD_NODENAME"); node && *node) {
    std::strncpy(mine.host, node, sizeof(mine.host) - 1);
  } else {
    int len = 0;
    MPI_Get_processor_name(mine.host, &len);
  }
  mine.tp_rank = grid.tp_rank();
  mine.dp_rank = grid.dp_rank();
  std::vector<Entry> all(static_cast<std::size_t>(grid.world_size()));
  MPI_Allgather(&mine, sizeof(Entry), MPI_BYTE, all.data(), sizeof(Entry), MPI_BYTE, MPI_COMM_WORLD);
  std::string out = "[";
  for (std::size_t i = 0; i < all.size(); ++i) {
    all[i].host[sizeof(all[i].host) - 1] = '\0';
    out += (i ? "," : "") + JsonObject().add("host", all[i].host).add("tp_rank", all[i].tp_rank)
                                .add("dp_rank", all[i].dp_rank).str();
  }
  return out + "]";
}

int resolve_threads(int requested, int node_local_size) {
  if (requested > 0) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, node_local_size));
}

}  // namespace

std::string option_value_text(const boost::any& v) {
  if (v.empty()) return "";
  if (const auto* p = boost::any_cast<std::string>(&v)) return *p;
  if (const auto* p = boost::any_cast<int>(&v)) return std::to_string(*p);
  if (const auto* p = boost::any_cast<long>(&v)) return std::to_string(*p);
  if (const auto* p = boost::any_cast<long long>(&v)) return std::to_string(*p);
  if (const auto* p = boost::any_cast<unsigned>(&v)) return std::to_string(*p);
  if (const auto* p = boost::any_cast<unsigned long>(&v)) return std::to_string(*p);  // std::uint64_t
  if (const auto* p = boost::any_cast<unsigned long long>(&v)) return std::to_string(*p);
  if (const auto* p = boost::any_cast<double>(&v)) {
    char buf[32];  // the shortest text that reads back as the same double: exact, and 0.1 stays "0.1"
    const auto r = std::to_chars(buf, buf + sizeof(buf), *p);
    return std::string(buf, r.ptr);
  }
  if (const auto* p = boost::any_cast<bool>(&v)) return *p ? "true" : "false";
  if (const auto* p = boost::any_cast<std::vector<std::string>>(&v)) {
    std::string s;
    for (const auto& x : *p) s += (s.empty() ? "" : ",") + x;
    return s;
  }
  return "<value>";
}


std::vector<std::string> version_lines() {
  std::vector<std::string> out;
  out.push_back(std::string("unlearn ") + "0.1.0");
  out.push_back(std::string("LibTorch ") + TORCH_VERSION + (at::hasCUDA() ? " (CUDA available)" : " (no CUDA device)"));
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string mpi_line(mpi, static_cast<std::size_t>(len));
  mpi_line.resize(std::strlen(mpi_line.c_str()));  // Open MPI counts the terminating NUL in len
  if (auto nl = mpi_line.find_first_of("\r\n"); nl != std::string::npos) mpi_line.resize(nl);
  out.push_back("MPI " + mpi_line);
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  out.push_back("HDF5 " + std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel) + " (parallel)");
  out.push_back(std::string("Boost ") + BOOST_LIB_VERSION);
  out.push_back(std::string("NCCL backend ") + (nccl_available_in_build() ? "compiled in" : "not built"));
  out.push_back("BLAS " + numerics_description());
  return out;
}

int run_mpi_program(int argc, char** argv, const std::function<Action(int, int)>& configure) {
  int provided = 0;
  // FUNNELED: CPU autograd runs backward on the calling thread, so collectives inside autograd Functions come
  // from the main thread.
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "unlearn: error: MPI_Init_thread failed\n");
    return 1;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int host_len = 0;
  MPI_Get_processor_name(host, &host_len);
  set_process_identity(rank, std::string(host, static_cast<std::size_t>(host_len)));

  auto abort_job = [&](const std::string& what) {
    log_error(what);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; this keeps the compiler and a broken MPI honest
  };

  Action action;
  try {
    action = configure(rank, size);
  } catch (const ConfigError& e) {
    // Thrown identically on every rank before any communication: one message, clean exit everywhere.
    if (rank == 0) std::fprintf(stderr, "unlearn: error: %s\n", e.what());
    MPI_Finalize();
    return 1;
  } catch (const std::exception& e) {
    abort_job(e.what());
  }

  int rc = 0;
  if (action) {
    try {
      rc = action();
    } catch (const std::exception& e) {
      if (!dynamic_cast<const Agreed*>(&e)) abort_job(e.what());
      // Every rank threw this at the same point: one message, and MPI still works, so finalise normally.
      if (rank == 0) std::fprintf(stderr, "unlearn: error: %s\n", e.what());
      action = nullptr;
      MPI_Finalize();
      return 1;
    } catch (...) {
      abort_job("unknown exception");
    }
  }
  action = nullptr;  // communicators in the closure are freed before MPI_Finalize
  MPI_Finalize();
  return rc;
}

int unlearn_main(int argc, char** argv) {
  return run_mpi_program(argc, argv, [argc, argv](int rank, int world_size) -> Action {
    auto subs = make_subcommands();
    const std::string first = argc > 1 ? argv[1] : "";
    if (first.empty() || first == "-h" || first == "--help" || first == "help") {
      print0(rank, general_help(subs));
      if (first.empty()) throw ConfigError("no command given (see the list above)");
      return nullptr;
    }
    if (first == "--version") {
      std::string text;
      for (const auto& line : version_lines()) text += line + "\n";
      print0(rank, text);
      return nullptr;
    }
    std::shared_ptr<Subcommand> sub;
    for (auto& s : subs)
      if (s->name() == first) sub = std::move(s);
    if (!sub) UNLEARN_THROW(ConfigError, "unknown command '" << first << "'; run `unlearn --help` for the list");

    auto common = std::make_shared<CommonOptions>();
    po::options_description common_desc("Common options");
    add_common_options(common_desc, *common);
    po::options_description sub_desc(std::string("Options of `unlearn ") + std::string(sub->name()) + "`");
    po::positional_options_description pos;
    sub->add_options(sub_desc, pos);
    po::options_description all;
    all.add(sub_desc).add(common_desc);

    auto vm = std::make_shared<po::variables_map>();
    try {
      po::store(po::command_line_parser(argc - 1, argv + 1).options(all).positional(pos).run(), *vm);
      if (vm->count("help")) {
        std::ostringstream os;
        os << "Usage: unlearn " << sub->name() << ' ' << sub->usage() << " [options]\n" << sub->summary() << "\n\n"
           << all << '\n';
        print0(rank, os.str());
        return nullptr;
      }
      if (vm->count("config")) {
        const std::string path = (*vm)["config"].as<std::string>();
        // A directory opens as an empty stream: without this check it passed as an empty config file (found by
        // tests/reliability/bad_input.sh).
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec))
          UNLEARN_THROW(ConfigError, "config file '" << path << "' is a directory");
        std::ifstream in(path);
        if (!in) UNLEARN_THROW(ConfigError, "cannot open config file '" << path << "'");
        // Values already stored from the command line win: po::store never overwrites.
        po::store(po::parse_config_file(in, all, false), *vm);
      }
      po::notify(*vm);
    } catch (const po::error& e) {
      UNLEARN_THROW(ConfigError, "unlearn " << sub->name() << ": " << e.what());
    }

    set_log_level(parse_log_level(common->log_level));
    if (common->threads < 0) UNLEARN_THROW(ConfigError, "--threads must be >= 0, got " << common->threads);
    validate_grid(world_size, common->tp);
    sub->validate(*vm, *common, world_size);

    return [sub, common, vm, rank]() -> int {
      const auto start = std::chrono::steady_clock::now();
      ProcessGrid grid(make_mpi_communicator(MPI_COMM_WORLD), common->tp);
      const int threads = resolve_threads(common->threads, grid.node_local_size());
      at::set_num_threads(threads);

      // Rank 0 opens the metrics file; every rank learns whether it could, so a bad path is one agreed error.
      MetricsWriter metrics;
      std::string metrics_error;
      if (rank == 0) {
        try {
          metrics = MetricsWriter(common->metrics_file);
        } catch (const Error& e) {
          metrics_error = e.what();
        }
      }
      if (!grid.world().all_agree(metrics_error.empty()))
        UNLEARN_THROW(AgreedError, (rank == 0 ? metrics_error : std::string("rank 0 cannot open the metrics file")));
      std::string config_json, config_table;
      describe_options(*vm, config_json, config_table);
      for (const auto& line : version_lines()) log_info0(line);
      log_info0("command: unlearn " + std::string(sub->name()));
      log_info0("options:\n" + config_table.substr(0, config_table.empty() ? 0 : config_table.size() - 1));
      log_info0("grid: " + grid.describe() + ", " + std::to_string(threads) + " thread(s) per rank");
      metrics.write(JsonObject().add("event", "start").add("command", sub->name()).add_raw("config", config_json)
                        .add("numerics", numerics_description()).add("world_size", grid.world_size()).add("tp", grid.tp_size()).add("dp", grid.dp_size()));

      AppContext ctx{grid, *common, *vm, metrics, config_json, placement_json(grid)};
      const int rc = sub->run(ctx);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      metrics.write(JsonObject().add("event", "end").add("command", sub->name()).add("exit_code", rc)
                        .add("seconds", seconds));
      return rc;
    };
  });
}

ResourceUsage measure_resource_usage(Communicator& world, const CommUsage& since, double wall_s) {
  const CommUsage now = comm_usage();  // before the reductions below, which are collectives too
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto spread = [&](double local) {
    ResourceUsage::Spread s;
    s.min = world.all_reduce_scalar(local, ReduceOp::kMin);
    s.mean = world.all_reduce_scalar(local, ReduceOp::kSum) / world.size();
    s.max = world.all_reduce_scalar(local, ReduceOp::kMax);
    return s;
  };
  ResourceUsage u;
  u.wall_s = wall_s;
  const double comm_s = now.seconds - since.seconds;
  u.comm_seconds = spread(comm_s);
  u.comm_fraction = spread(wall_s > 0 ? comm_s / wall_s : 0.0);
  u.peak_rss_bytes = spread(static_cast<double>(ru.ru_maxrss) * 1024.0);  // Linux reports KiB
  u.comm_calls = now.calls - since.calls;
  u.comm_bytes = now.bytes - since.bytes;
  return u;
}

std::string ResourceUsage::json() const {
  auto spread = [](const Spread& s) { return JsonObject().add("min", s.min).add("mean", s.mean).add("max", s.max).str(); };
  return JsonObject()
      .add("wall_s", wall_s)
      .add_raw("comm_seconds", spread(comm_seconds))
      .add_raw("comm_fraction", spread(comm_fraction))
      .add("comm_calls", comm_calls)
      .add("comm_bytes", comm_bytes)
      .add_raw("peak_rss_bytes", spread(peak_rss_bytes))
      .str();
}

std::string ResourceUsage::describe() const {
  char line[256];
  std::snprintf(line, sizeof line,
                "resources: %.1f%% of %.2f s inside collectives (mean over ranks; max %.2f s), %lld calls; peak "
                "memory per rank %.0f MiB (largest rank)",
                100.0 * comm_fraction.mean, wall_s, comm_seconds.max, static_cast<long long>(comm_calls),
                peak_rss_bytes.max / 1048576.0);
  return line;
}

}  // namespace unlearn
