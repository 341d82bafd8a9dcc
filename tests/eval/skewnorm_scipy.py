"""Oracle: our skew-normal maximum-likelihood fit against scipy.stats.skewnorm.fit (Debian's python3-scipy).

Issue 7's criterion: our maximised log-likelihood >= scipy's - 1e-6, and the extrapolated exposure of scores in the
lower tail within 0.05 bit of the one from scipy's fit. The parameters themselves are ill-conditioned (a flat
likelihood in the shape) and are not compared. Usage: skewnorm_scipy.py PROBE
"""
import json
import subprocess
import sys

import numpy as np
from scipy import stats

probe = sys.argv[1]
rng = np.random.default_rng(20261128)
cases = {
    "right-skewed n=1000": stats.skewnorm.rvs(5.0, loc=30, scale=4, size=1000, random_state=rng),
    "left-skewed n=500": stats.skewnorm.rvs(-3.0, loc=-2, scale=0.5, size=500, random_state=rng),
    "normal n=1000": rng.normal(25.0, 3.0, size=1000),
    # Px of 9-digit secrets under a model: a sum of per-digit surprisals, skewed by the hard digits.
    "sum of surprisals n=2000": rng.gamma(2.0, 1.0, size=(2000, 9)).sum(axis=1) + 20.0,
    "small n=50": stats.skewnorm.rvs(2.0, loc=10, scale=2, size=50, random_state=rng),
}
fail = False
for name, x in cases.items():
    a, loc, scale = stats.skewnorm.fit(x)
    ll_scipy = stats.skewnorm.logpdf(x, a, loc, scale).sum()
    # Lower-tail scores: the sample's minimum, and 1 and 2 standard deviations below it.
    px = [x.min(), x.min() - x.std(), x.min() - 2 * x.std()]
    out = subprocess.run([probe], input=" ".join(map(repr, x)) + "\n" + " ".join(map(repr, px)) + "\n",
                         capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout)
    # Both likelihoods by the same (scipy's) formula, so the comparison is of the optima, not the arithmetic.
    ll_ours = stats.skewnorm.logpdf(x, ours["shape"], ours["location"], ours["scale"]).sum()
    exp_scipy = [-stats.skewnorm.logcdf(p, a, loc, scale) / np.log(2) for p in px]
    worst = max(abs(e - s) for e, s in zip(ours["exposure"], exp_scipy))
    ok = ll_ours >= ll_scipy - 1e-6 and worst <= 0.05 and abs(ll_ours - ours["log_likelihood"]) < 1e-6 * abs(ll_ours)
    fail |= not ok
    print("%s %-26s loglik ours %.8f scipy %.8f (diff %+.2e); exposure ours %s scipy %s (worst %.4f bit)"
          % ("ok  " if ok else "FAIL", name, ll_ours, ll_scipy, ll_ours - ll_scipy,
             " ".join("%.3f" % e for e in ours["exposure"]), " ".join("%.3f" % e for e in exp_scipy), worst))
sys.exit(1 if fail else 0)
