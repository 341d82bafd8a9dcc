// Writes an oracle exchange file (tests/oracle/README.md): config attributes, global float64 parameters, a batch,
// a direction v and this implementation's loss, gradient, H·v and G·v at TP = 1. The Python reference
// (tests/oracle/check_model.py, Debian's python3-torch) recomputes them independently.
// Usage: oracle_export OUT.h5 gpt2|llama [n_kv_heads]
#include <hdf5.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model_fixtures.h"

namespace {

using namespace unlearn;
using namespace unlearn::testing;

void check(herr_t rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("HDF5 failed: ") + what);
}
hid_t checked(hid_t id, const char* what) {
  if (id < 0) throw std::runtime_error(std::string("HDF5 failed: ") + what);
  return id;
}

void write_tensor(hid_t parent, const std::string& name, const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  const hid_t space = checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), "space");
  const hid_t type = c.scalar_type() == at::kLong ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  const at::Tensor data = c.scalar_type() == at::kLong ? c : c.to(at::kDouble);
  const hid_t ds =
      checked(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name.c_str());
  check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()), name.c_str());
  H5Dclose(ds);
  H5Sclose(space);
}

void write_attr(hid_t obj, const std::string& key, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size() ? value.size() : 1);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = checked(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), key.c_str());
  check(H5Awrite(a, type, value.c_str()), key.c_str());
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
}

template <typename T>
void write_attr_num(hid_t obj, const std::string& key, T value, hid_t type) {
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = checked(H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), key.c_str());
  check(H5Awrite(a, type, &value), key.c_str());
  H5Aclose(a);
  H5Sclose(space);
}

void write_vector(hid_t file, const std::string& group, const TransformerModel& model,
                  const std::vector<std::size_t>& subset, const ShardedVector& v) {
  const hid_t g = checked(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), group.c_str());
  for (std::size_t j = 0; j < subset.size(); ++j) write_tensor(g, model.parameters()[subset[j]].name, v[j]);
  H5Gclose(g);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: oracle_export OUT.h5 gpt2|llama [n_kv_heads]\n");
    return 2;
  }
  try {
    const Family family = parse_family(argv[2]);
    const ModelConfig cfg = tiny_config(family, argc > 3 ? std::atoi(argv[3]) : 12);
    auto tp = make_local_communicator(), dp = make_local_communicator();
    TransformerModel model(cfg, *tp);
    model.init_random(2024, test_init());
    const auto all = model.select("");
    const Batch batch = make_batch(55, 3, 14, cfg.vocab_size);
    Curvature curv(model, *dp, all);
    curv.prepare({batch});
    const ShardedVector v = random_vector(model, all, 99);

    const hid_t file = checked(H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), argv[1]);
    for (const auto& [key, value] : cfg.to_map()) {
      if (key == "family" || key == "dtype" || key == "device") {
        write_attr(file, key, value);
      } else if (key == "norm_eps" || key == "rope_theta") {
        write_attr_num(file, key, std::stod(value), H5T_NATIVE_DOUBLE);
      } else {
        write_attr_num(file, key, static_cast<std::int64_t>(std::stoll(value)), H5T_NATIVE_INT64);
      }
    }
    write_vector(file, "/params", model, all, model.values(all));
    const hid_t b = checked(H5Gcreate2(file, "/batch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "batch");
    write_tensor(b, "tokens", batch.tokens);
    write_tensor(b, "targets", batch.targets);
    write_tensor(b, "segments", batch.segments);
    write_tensor(b, "positions", batch.positions);
    H5Gclose(b);
    write_vector(file, "/v", model, all, v);
    const hid_t cpp = checked(H5Gcreate2(file, "/cpp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "cpp");
    write_tensor(cpp, "loss", at::full({}, curv.loss(), at::kDouble));
    H5Gclose(cpp);
    write_vector(file, "/cpp/grad", model, all, curv.gradient());
    write_vector(file, "/cpp/hv", model, all, curv.hvp(v));
    write_vector(file, "/cpp/gv", model, all, curv.gvp(v));
    H5Fclose(file);
    std::printf("wrote %s: %s, loss %.17g\n", argv[1], cfg.describe().c_str(), curv.loss());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "oracle_export: %s\n", e.what());
    return 1;
  }
  return 0;
}
