"""Kernel CCA speed and accuracy.

1. Exact kernel CCA at n = 2,000 (Wikipedia training features) against pyrcca's kernel CCA on
   the same problem (pyrcca's Gaussian kernel, normalised by its top eigenvalue, and its
   ridge K^2 + c I): the correlations of the canonical variates K alpha, K beta must agree,
   then the solver times are compared (kernels included on both sides), in alternating rounds
   after one untimed run of each.
   Ours solves it in the kernels' eigenbases (``solve_kernel_cca(form="dual")``); pyrcca
   solves one 2n x 2n generalised eigenproblem.
2. The scalable kernel CCA (Nystroem features + linear regularised CCA) at n = 20,000 on
   synthetic nonlinear two-view data: its fit time, and its correlation gap to the exact
   solution on a 2,000-sample subsample.

Writes benchmarks/results/kernel_cca.json.  ``--quick`` runs small sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jointspace import load_dataset  # noqa: E402
from jointspace.models._kernels import kernel_eig, kernel_matrix, solve_kernel_cca  # noqa: E402
from jointspace.models.kernel_cca import KernelCCA  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine, positive_int, save, side_by_side, timeit  # noqa: E402


def _patch_pyrcca():
    """pyrcca 0.2 calls ``scipy.linalg.eigh(..., eigvals=...)``, removed in SciPy 1.14; map it."""
    import rcca
    from scipy.linalg import eigh as scipy_eigh

    def eigh(a, b=None, eigvals=None, **kw):
        return scipy_eigh(a, b, subset_by_index=eigvals, **kw)

    rcca.rcca.eigh = eigh
    return rcca


def _median_time(fn, repeats):
    """(median seconds, every time, last result) of ``repeats`` timed runs."""
    r = timeit(fn, repeats, warmup=0, keep_result=True)
    return r["median_s"], r["times_s"], r["result"]


def ours_dual(x, y, sigma, reg, k):
    """pyrcca's problem solved in the kernels' eigenbases: dual coefficients (alpha, beta)."""
    spec = {"kernel": "rbf", "gamma": 1.0 / (2 * sigma ** 2)}
    eigs = []
    for d in (x, y):
        u, lam = kernel_eig(kernel_matrix(d, d, spec), "view")
        eigs.append((u, lam / lam.max()))  # pyrcca divides each kernel by its top eigenvalue
    alpha, beta, _ = solve_kernel_cca(eigs[0], eigs[1], k, (reg, reg), form="dual")
    return alpha, beta


def theirs(rcca, x, y, sigma, reg, k):
    """pyrcca's kernel CCA solver (kernels + one 2n x 2n generalised eigenproblem)."""
    return tuple(rcca.rcca.kcca([x, y], reg, k, kernelcca=True, ktype="gaussian", gausigma=sigma))


def _variate_corr(rcca, x, y, sigma, alpha, beta):
    """Correlations of the canonical variates K_x alpha, K_y beta (pyrcca's kernels)."""
    kx = rcca.rcca._make_kernel(x, ktype="gaussian", gausigma=sigma)
    ky = rcca.rcca._make_kernel(y, ktype="gaussian", gausigma=sigma)
    u, v = kx @ alpha, ky @ beta
    u, v = u - u.mean(0), v - v.mean(0)
    return (u * v).sum(0) / np.sqrt((u * u).sum(0) * (v * v).sum(0))


def exact_vs_pyrcca(n, k, reg, repeats):
    rcca = _patch_pyrcca()
    train = load_dataset("wikipedia", split="train")
    x = np.sqrt(train["image"][:n])
    y = train["text"][:n]
    sigma = 1.0
    fns = {"ours": lambda: ours_dual(x, y, sigma, reg, k), "pyrcca": lambda: theirs(rcca, x, y, sigma, reg, k),
           "model": lambda: KernelCCA(n_components=k, kernel="rbf", gamma=1 / (2 * sigma ** 2), reg=reg,
                                      method="exact").fit(x, y)}
    (a1, b1), (a2, b2) = fns["ours"](), fns["pyrcca"]()     # the results compared; also a warm-up
    fns["model"]()
    # alternating rounds, so a change in the machine's load falls on both solvers alike
    runs = side_by_side(fns, repeats=repeats, warmup=0)
    (t_ours, ours_times), (t_theirs, their_times), (t_model, model_times) = (
        (runs[n]["median_s"], runs[n]["times_s"]) for n in ("ours", "pyrcca", "model"))
    rho_ours = _variate_corr(rcca, x, y, sigma, a1, b1)
    rho_theirs = _variate_corr(rcca, x, y, sigma, a2, b2)
    return {"n": n, "n_components": k, "reg": reg,
            "kernel": f"gaussian sigma={sigma} (pyrcca's, top-eigenvalue normalised)",
            "repeats": repeats,
            "ours_s": t_ours, "pyrcca_s": t_theirs, "speedup": t_theirs / t_ours,
            "ours_times": ours_times, "pyrcca_times": their_times,
            "kcca_model_fit_s": t_model, "kcca_model_times": model_times,
            "max_abs_corr_diff": float(np.max(np.abs(rho_ours - rho_theirs))),
            "corr_ours": rho_ours.tolist(), "corr_pyrcca": rho_theirs.tolist()}


def synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    a, b = rng.normal(size=(4, 20)), rng.normal(size=(4, 15))
    x = np.tanh(z @ a) + 0.3 * rng.normal(size=(n, 20))
    y = (z @ b) ** 2 / 4 + 0.3 * rng.normal(size=(n, 15))
    return x, y


def _held_out_corr(model, x, y):
    u, v = model.transform(x, y)
    u, v = u - u.mean(0), v - v.mean(0)
    return (u * v).sum(0) / np.sqrt((u * u).sum(0) * (v * v).sum(0))


def scalable(n, n_sub, m, k, reg, repeats):
    x, y = synthetic(n + 2000)
    xt, yt = x[n:], y[n:]
    x, y = x[:n], y[:n]
    params = dict(n_components=k, kernel="rbf", gamma=(1 / 20, 1 / 15), reg=reg)
    t_big, big_times, big = _median_time(
        lambda: KernelCCA(method="nystroem", n_features=m, **params).fit(x, y), repeats)
    xs, ys = x[:n_sub], y[:n_sub]
    t_exact, _, exact = _median_time(lambda: KernelCCA(method="exact", **params).fit(xs, ys), 1)
    approx_sub = KernelCCA(method="nystroem", n_features=m, **params).fit(xs, ys)
    return {"n": n, "n_features": m, "n_components": k, "reg": reg, "repeats": repeats,
            "nystroem_fit_s": t_big, "nystroem_times": big_times,
            "exact_fit_s_on_subsample": t_exact, "subsample": n_sub,
            "subsample_corr_exact": exact.canonical_correlations_.tolist(),
            "subsample_corr_nystroem": approx_sub.canonical_correlations_.tolist(),
            "subsample_gap_max": float(np.max(np.abs(exact.canonical_correlations_
                                                     - approx_sub.canonical_correlations_))),
            "held_out_corr_nystroem_full_n": _held_out_corr(big, xt, yt).tolist(),
            "held_out_corr_exact_subsample": _held_out_corr(exact, xt, yt).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (n = 500 / 4,000)")
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--threads", type=positive_int, default=None,
                    help="BLAS threads for both sides (default: the library's own choice)")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    n_exact, n_big, n_sub, m = (500, 4000, 500, 300) if args.quick else (2000, 20000, 2000, 1000)
    res = {"threads": args.threads, "quick": args.quick, "repeats": args.repeats, "machine": machine(),
           "exact_vs_pyrcca": exact_vs_pyrcca(n_exact, 5, 0.1, args.repeats),
           "scalable": scalable(n_big, n_sub, m, 5, 0.05, max(1, args.repeats // 2 if args.quick else args.repeats))}
    e, s = res["exact_vs_pyrcca"], res["scalable"]
    print(f"{'kernel CCA, n':<34}{e['n']:>10}")
    print(f"{'  ours (eigenbasis) median s':<34}{e['ours_s']:>10.2f}")
    print(f"{'  pyrcca median s':<34}{e['pyrcca_s']:>10.2f}")
    print(f"{'  speed-up (pyrcca / ours)':<34}{e['speedup']:>10.2f}")
    print(f"{'  max |corr ours - pyrcca|':<34}{e['max_abs_corr_diff']:>10.2e}")
    print(f"{'  KernelCCA model fit median s':<34}{e['kcca_model_fit_s']:>10.2f}")
    print(f"{'scalable kernel CCA, n':<34}{s['n']:>10}")
    print(f"{'  Nystroem m':<34}{s['n_features']:>10}")
    print(f"{'  fit median s':<34}{s['nystroem_fit_s']:>10.2f}")
    print(f"{'  exact on subsample, s':<34}{s['exact_fit_s_on_subsample']:>10.2f}")
    print(f"{'  max corr gap on subsample':<34}{s['subsample_gap_max']:>10.2e}")
    out = save("kernel_cca", res)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
