#!/usr/bin/python3
"""Compare the C++ model's loss, gradient, H.v and G.v (group /cpp of an exchange file)
with the independent PyTorch reference.

    /usr/bin/python3 tests/oracle/check_model.py FILE.h5 [--tol 1e-8]

Prints, per quantity, the norm-wise relative error ||cpp - ref|| / ||ref|| over all
parameters concatenated and the worst single tensor.  A quantity passes when every
tensor's relative error is <= tol (design 3.0: tolerances are per tensor; this also bounds
the global error).  /cpp/hv and /cpp/gv are skipped when absent.
Exit: 0 all pass, 1 some mismatch, 2 malformed or unreadable file.
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402


def check(data, tol, out=None):
    """Returns (exit code, {quantity: (global rel err, worst name, worst rel err)})."""
    out = out or sys.stdout
    cfg, params, batch, v, cpp = data["cfg"], data["params"], data["batch"], data["v"], data["cpp"]
    if cpp is None:
        raise rm.MalformedFile("no /cpp group: this is a bare fixture, the C++ test must add its results")
    if "loss" not in cpp or "grad" not in cpp:
        raise rm.MalformedFile("/cpp must hold at least 'loss' and 'grad'")
    ref = rm.reference_products(params, cfg, batch, v, want_hv="hv" in cpp, want_gv="gv" in cpp)
    n_par = sum(t.numel() for t in params.values())
    B, T = batch["tokens"].shape
    print("%s: %d layers, d_model %d, %d heads (%d kv), vocab %d, %d parameters; batch %dx%d, %d targets"
          % (cfg["family"], cfg["n_layers"], cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"],
             cfg["vocab_size"], n_par, B, T, int((batch["targets"] != -1).sum())), file=out)
    results = {}
    ok = True
    lref = float(ref["loss"])
    lerr = abs(cpp["loss"] - lref) / abs(lref)
    results["loss"] = (lerr, "loss", lerr)
    good = lerr <= tol  # also False for NaN
    ok &= good
    print("  %-5s rel err %.3e  (cpp %.17g, ref %.17g)  %s"
          % ("loss", lerr, cpp["loss"], lref, "ok" if good else "FAIL"), file=out)
    for q in ("grad", "hv", "gv"):
        if q not in cpp:
            print("  %-5s skipped (absent)" % q, file=out)
            continue
        tot, (wname, werr) = rm.rel_err(cpp[q], ref[q])
        results[q] = (tot, wname, werr)
        good = werr <= tol and tot <= tol and not math.isnan(tot)
        ok &= good
        print("  %-5s rel err %.3e  worst tensor %.3e (%s)  %s"
              % (q, tot, werr, wname, "ok" if good else "FAIL"), file=out)
    print("%s (tol %.1e)" % ("PASS" if ok else "FAIL", tol), file=out)
    return (0 if ok else 1), results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--tol", type=float, default=1e-8)
    a = ap.parse_args(argv)
    try:
        data = rm.load_exchange(a.file)
        code, _ = check(data, a.tol)
    except rm.MalformedFile as e:
        print("check_model: malformed exchange file %s: %s" % (a.file, e), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
