"""CCA fit speed: ours vs scikit-learn's CCA (NIPALS) and cca-zoo's CCA, side by side.

n = 20,000 samples, d_x = d_y = 512, k = 10.  Also reports the achieved GFLOP/s of the
covariance step next to this machine's measured GEMM rate in the dtype the step computes in:
float64, also for float32 views (they are multiplied in float64 blocks); the float32 GEMM rate
is reported beside it.  The step's flops are those it needs: 2 n d^2 for X'Y and n d (d + 1)
for each of X'X and Y'Y, which NumPy computes as a symmetric product (SYRK), half a GEMM.

    python benchmarks/bench_cca.py [--n 20000] [--d 512] [--k 10] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _util import machine, positive_int, save, side_by_side, timeit  # noqa: E402


def data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 16))
    x = z @ rng.normal(size=(16, d)) + rng.normal(size=(n, d))
    y = z @ rng.normal(size=(16, d)) + rng.normal(size=(n, d))
    return x.astype(np.float32), y.astype(np.float32)


def gemm_gflops(n: int, d: int, dtype, repeats: int) -> float:
    """The machine's matrix-product rate (GFLOP/s) in ``dtype`` on the covariance step's shapes:
    ``A.T @ B`` with A, B of shape (n, 2d), 2 n (2d)^2 flops.  Two distinct operands: NumPy runs
    ``A.T @ A`` as a SYRK, about half the work, which would read as twice the rate."""
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(n, 2 * d)).astype(dtype) for _ in range(2))
    return 2.0 * n * (2 * d) ** 2 / timeit(lambda: a.T @ b, repeats=repeats)["median_s"] / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=positive_int, default=20000)
    ap.add_argument("--d", type=positive_int, default=512)
    ap.add_argument("--k", type=positive_int, default=10)
    ap.add_argument("--repeats", type=positive_int, default=5)
    ap.add_argument("--quick", action="store_true", help="n=4000, d=128, 3 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.d, args.repeats = 4000, 128, 3
    if args.k > min(args.d, args.n - 1):
        ap.error(f"--k: expected at most min(--d, --n - 1) = {min(args.d, args.n - 1)} canonical pairs, "
                 f"got {args.k}")
    from cca_zoo.linear import CCA as ZooCCA
    from sklearn.cross_decomposition import CCA as SkCCA

    from jointspace.models.cca import CCA, covariances

    x, y = data(args.n, args.d)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    res = {"n": args.n, "d": args.d, "k": args.k, "repeats": args.repeats, "quick": args.quick, "machine": machine()}

    res["gemm_float32_gflops"] = gemm_gflops(args.n, args.d, np.float32, args.repeats)
    res["gemm_float64_gflops"] = gemm_gflops(args.n, args.d, np.float64, args.repeats)
    cov_dtype = str(covariances(x[:2], y[:2])[2].dtype)   # the dtype its products run in
    cov = timeit(lambda: covariances(x, y), repeats=args.repeats)
    cov_flops = 2.0 * args.n * args.d * args.d + 2.0 * args.n * args.d * (args.d + 1)  # X'Y; X'X and Y'Y
    res["covariance_dtype"] = cov_dtype
    res["covariance_flops"] = cov_flops
    res["covariance_gflops"] = cov_flops / cov["median_s"] / 1e9
    res["covariance_of_gemm"] = res["covariance_gflops"] / res[f"gemm_{cov_dtype}_gflops"]

    fast = {
        "jointspace float32": lambda: CCA(n_components=args.k).fit(x, y),
        "jointspace float64": lambda: CCA(n_components=args.k).fit(x64, y64),
        "cca-zoo": lambda: ZooCCA(n_components=args.k).fit([x64, y64]),
    }
    # the closed-form fits in alternating rounds after a warm-up, so a change of load falls on
    # all of them alike; scikit-learn's iterative NIPALS (minutes a fit at full size) after them,
    # without a warm-up
    res.update(side_by_side(fast, repeats=args.repeats))
    res["scikit-learn"] = timeit(lambda: SkCCA(n_components=args.k, scale=False).fit(x64, y64),
                                 repeats=max(3, args.repeats), warmup=0)
    for name in (*fast, "scikit-learn"):
        print(f"{name:20s} median {res[name]['median_s']:.3f} s", flush=True)
    ours = res["jointspace float32"]["median_s"]
    res["speedup_vs_sklearn"] = res["scikit-learn"]["median_s"] / ours
    res["speedup_vs_cca_zoo"] = res["cca-zoo"]["median_s"] / ours
    res["speedup64_vs_sklearn"] = res["scikit-learn"]["median_s"] / res["jointspace float64"]["median_s"]
    res["speedup64_vs_cca_zoo"] = res["cca-zoo"]["median_s"] / res["jointspace float64"]["median_s"]
    print(f"covariance step {res['covariance_gflops']:.0f} GFLOP/s in {cov_dtype}, "
          f"{res['covariance_of_gemm']:.0%} of {cov_dtype} GEMM ({res[f'gemm_{cov_dtype}_gflops']:.0f} GFLOP/s); "
          f"float32 GEMM {res['gemm_float32_gflops']:.0f} GFLOP/s")
    print(f"speed-up vs scikit-learn: {res['speedup_vs_sklearn']:.1f}x (float64 input: "
          f"{res['speedup64_vs_sklearn']:.1f}x); vs cca-zoo: {res['speedup_vs_cca_zoo']:.2f}x "
          f"(float64 input: {res['speedup64_vs_cca_zoo']:.2f}x)")
    print("wrote", save("cca", res))


if __name__ == "__main__":
    main()
