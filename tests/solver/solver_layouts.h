// Layout independence of the solver (float64), shared by the CPU solver tests and the GPU ones: for every TP x DP
// layout of the world, with the model on `device`, the Philox noise is bit-identical to the serial CPU draw,
// per-document gradients, the Woodbury inverse and the F^-1/4 transform equal the serial values (1e-10), and CG on
// the damped GGN with a fixed iteration count equals the serial iterate (1e-9); all of it again with the solver
// vectors and Fisher rows split over DP (design 3.4).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "../model/layout_equivalence.h"
#include "solver_fixtures.h"
#include "unlearn/solver/cg.h"

namespace unlearn::testing {

/// The Fisher store's three products of v (λ = 1e-2): Woodbury inverse, F^-1/4 transform, diagonal form.
struct FisherProducts {
  ShardedVector wood, root, diag;
};
inline FisherProducts fisher_products(const FisherStore& store, const ShardedVector& v) {
  FisherProducts out;
  store.solve(1e-2, v, out.wood);
  store.inverse_quartic_root(1e-2, v, out.root);
  store.inverse_sqrt_diagonal(1e-2, v, out.diag);
  return out;
}

inline void expect_solver_layouts_match_serial_cpu(const std::string& device) {
  const auto world = std::shared_ptr<Communicator>(make_mpi_communicator(MPI_COMM_WORLD));
  ModelConfig cfg = tiny_config(Family::kGpt2);
  auto local = make_local_communicator(), local_dp = make_local_communicator();
  TransformerModel ref(cfg, *local);
  ref.init_random(13, test_init());
  const auto ref_all = ref.select("");
  const auto docs = documents(70, 5, 9, cfg.vocab_size);
  const Batch sample = make_batch(71, 2, 10, cfg.vocab_size);
  const ShardedVector ref_noise = philox_normal(ref.zeros(ref_all), placement_of(ref, ref_all), 99, 3);
  DocumentGradients ref_dg = document_gradients(ref, *local_dp, ref_all, docs);
  const FisherStore ref_store(ref_dg.rows, ref_dg.total_tokens);
  const ShardedVector ref_v = random_vector(ref, ref_all, 5);
  const FisherProducts ref_f = fisher_products(ref_store, ref_v);
  ShardedVector ref_cg;
  Curvature ref_curv(ref, *local_dp, ref_all);
  ref_curv.prepare({sample});
  CurvatureOperator ref_G(ref_curv, CurvatureKind::kGgn);
  DampedOperator ref_A(ref_G, 0.1);
  CgOptions fixed;
  fixed.max_iters = 10;
  fixed.rtol = 0.0;
  solve_cg(ref_A, ref_v, ref_cg, fixed);

  for_each_layout(world, device, [&](const ProcessGrid& grid) {
    cfg.device = device;
    TransformerModel model(cfg, grid.tp());
    model.init_random(13, test_init());
    const auto all = model.select("");
    const ShardedVector noise = philox_normal(model.zeros(all), placement_of(model, all), 99, 3);
    for (std::size_t j = 0; j < all.size(); ++j)
      EXPECT_TRUE(noise[j].cpu().equal(model.local_slice(model.parameters()[all[j]], ref_noise[j])))
          << model.parameters()[all[j]].name;
    DocumentGradients dg = document_gradients(model, grid.dp(), all, docs);
    EXPECT_EQ(dg.total_tokens, ref_dg.total_tokens);
    for (std::size_t d = 0; d < dg.rows.size(); ++d)
      EXPECT_LE(worst_rel_err(dg.rows[d], ref_dg.rows[d], model, all), 1e-10) << "document " << d;
    const FisherStore store(dg.rows, dg.total_tokens);
    const ShardedVector v = random_vector(model, all, 5);
    const FisherProducts f = fisher_products(store, v);
    EXPECT_LE(worst_rel_err(f.wood, ref_f.wood, model, all), 1e-10);
    EXPECT_LE(worst_rel_err(f.root, ref_f.root, model, all), 1e-10);
    EXPECT_LE(worst_rel_err(f.diag, ref_f.diag, model, all), 1e-10);
    ShardedVector x;
    // CG on the damped GGN with each DP rank holding half the sample rows.
    Curvature curv(model, grid.dp(), all);
    Batch my_rows = sample;
    if (grid.dp_size() > 1) {
      const std::int64_t rows = sample.tokens.size(0);
      const Range r = split_range(rows, grid.dp_size(), grid.dp_rank());
      my_rows.tokens = sample.tokens.narrow(0, r.start, r.size);
      my_rows.targets = sample.targets.narrow(0, r.start, r.size);
      my_rows.segments = sample.segments.narrow(0, r.start, r.size);
      my_rows.positions = sample.positions.narrow(0, r.start, r.size);
    }
    curv.prepare({my_rows});
    CurvatureOperator G(curv, CurvatureKind::kGgn);
    DampedOperator A(G, 0.1);
    const CgResult res = solve_cg(A, v, x, fixed);
    EXPECT_EQ(res.iterations, 10);
    EXPECT_LE(worst_rel_err(x, ref_cg, model, all), 1e-9);

    // Design 3.4: the same with the Fisher rows and the CG vectors split over DP (each rank keeps 1/DP of its
    // TP shard); gathered back, every result equals the serial one.
    const DpPartition part(model.zeros(all), grid.dp(), grid.world());
    const ShardedVector noise_part = philox_normal(part.slice(model.zeros(all)),
                                                   slice_placement(placement_of(model, all), part), 99, 3);
    const ShardedVector noise_whole = part.gather(noise_part);
    for (std::size_t j = 0; j < all.size(); ++j)
      EXPECT_TRUE(noise_whole[j].equal(noise[j])) << "DP chunks of the noise: " << model.parameters()[all[j]].name;
    DocumentGradients chunks = document_gradients(model, grid.dp(), all, docs, &part);
    for (std::size_t j = 0; j < all.size(); ++j) EXPECT_EQ(chunks.rows[0][j].numel(), part.length(j));
    const FisherStore sharded_store(chunks.rows, chunks.total_tokens);
    const ShardedVector v_part = part.slice(v);
    const FisherProducts fp = fisher_products(sharded_store, v_part);
    EXPECT_LE(worst_rel_err(part.gather(fp.wood), ref_f.wood, model, all), 1e-10);
    EXPECT_LE(worst_rel_err(part.gather(fp.root), ref_f.root, model, all), 1e-10);
    EXPECT_LE(worst_rel_err(part.gather(fp.diag), ref_f.diag, model, all), 1e-10);
    ShardedVector x_part;
    const auto [inside, outside] = store.split_norms(v);
    const auto [inside_part, outside_part] = sharded_store.split_norms(v_part);
    EXPECT_NEAR(inside_part, inside, 1e-10 * inside);
    EXPECT_NEAR(outside_part, outside, 1e-10 * outside);
    CurvatureOperator G_part(curv, CurvatureKind::kGgn, &part);
    DampedOperator A_part(G_part, 0.1);
    const CgResult res_part = solve_cg(A_part, v_part, x_part, fixed);
    EXPECT_EQ(res_part.iterations, 10);
    EXPECT_LE(worst_rel_err(part.gather(x_part), ref_cg, model, all), 1e-9);
  });
}

}  // namespace unlearn::testing
