"""The ``make bench`` scripts time both sides of a comparison alike: alternating rounds after
an untimed run, and training throughput without its first step."""

from __future__ import annotations

import pytest

from bench_scripts_support import capture_save, longest_run, script


def test_contrastive_bench_throughput_leaves_out_the_first_step():
    module = script("bench_contrastive")
    # a run started at t = 0: the first step ends at 5 s (one-time costs), then 1 s and 1.5 s
    rate = module.steady_rate(0.0, [5.0, 6.0, 7.5], batch=10)
    assert rate["pairs_per_s"] == pytest.approx(2 * 10 / 2.5)     # not 3 * 10 / 7.5
    assert rate["timed_steps"] == 2 and rate["first_step_s"] == 5.0


def test_contrastive_bench_head_only_run_reports_the_steady_rate():
    import math

    module = script("bench_contrastive")
    res = module.bench_head_only(n=64, batch=16, dim=8, epochs=2, threads=1, precision="fp32")
    assert res["steps"] == 8 and res["timed_steps"] == 7
    assert 0 < res["first_step_s"] < res["wall_s"]
    # the steady rate: 7 steps of 16 pairs in the time after the first step, which is at most
    # the wall time less the first step
    assert res["pairs_per_s"] >= 7 * 16 / (res["wall_s"] - res["first_step_s"]) and math.isfinite(res["pairs_per_s"])


def test_eval_bench_times_ours_and_the_reference_in_alternating_rounds(monkeypatch):
    """Five runs of ours then five of the reference put a change in the machine's load on one
    side: the same --quick run gave 115x and 23x for the pair-id case."""
    module = script("bench_eval")
    capture_save(module, monkeypatch)
    calls = []
    metrics = {"mAP": 0.5, "R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "MRR": 0.4, "medR": 2.0, "meanR": 3.0,
               "nDCG@10": 0.6}

    def stub(name):
        return lambda *a, **k: calls.append(name) or dict(metrics)

    monkeypatch.setattr(module, "retrieval_scores", stub("ours"))
    monkeypatch.setattr(module, "argsort_reference", stub("argsort"))
    monkeypatch.setattr(module, "sklearn_reference", stub("sklearn"))
    monkeypatch.setattr(module, "peak_memory", lambda fn: 2**20)
    module.main(["--quick", "--repeats", "5", "--big-repeats", "1"])
    compared = calls[1:]                              # after the large case, ours alone
    assert compared.count("argsort") >= 10 and compared.count("sklearn") >= 5
    assert longest_run(compared) <= 2                # rounds rotate: ours, ref, ref, ours, ...


def test_kernel_cca_bench_times_the_solvers_in_alternating_rounds(monkeypatch):
    """Timed one after the other, the pyrcca / ours speed-up read 2.05 and 0.81 in two --quick runs."""
    import numpy as np

    module = script("bench_kernel_cca")
    calls = []
    coef = (np.ones((10, 2)), np.ones((10, 2)))

    class Model:
        def __init__(self, **params):
            self.params = params

        def fit(self, x, y):
            calls.append("model")
            return self

    monkeypatch.setattr(module, "_patch_pyrcca", lambda: None)
    monkeypatch.setattr(module, "load_dataset", lambda *a, **k: {"image": np.ones((10, 3)), "text": np.ones((10, 2))})
    monkeypatch.setattr(module, "ours_dual", lambda *a: calls.append("ours") or coef)
    monkeypatch.setattr(module, "theirs", lambda *a: calls.append("pyrcca") or coef)
    monkeypatch.setattr(module, "KernelCCA", Model)
    monkeypatch.setattr(module, "_variate_corr", lambda *a: np.zeros(2))
    res = module.exact_vs_pyrcca(10, 2, 0.1, repeats=5)
    assert [calls.count(n) for n in ("ours", "pyrcca", "model")] == [6, 6, 6]    # one untimed run, five timed
    assert longest_run(calls) == 1
    assert len(res["ours_times"]) == len(res["pyrcca_times"]) == 5
    assert res["speedup"] == pytest.approx(res["pyrcca_s"] / res["ours_s"])


def test_contrastive_bench_times_the_losses_in_alternating_rounds(monkeypatch):
    import itertools

    import torch.nn.functional as F

    import jointspace.objectives.contrastive as contrastive

    module = script("bench_contrastive")
    calls = []
    clip_loss, cross_entropy = contrastive.clip_loss, F.cross_entropy

    def ours(*a, **k):
        calls.append("ours")
        return clip_loss(*a, **k)

    def reference_half(*a, **k):        # the reference takes two cross-entropies a run
        calls.append("reference")
        return cross_entropy(*a, **k)

    monkeypatch.setattr(contrastive, "clip_loss", ours)
    monkeypatch.setattr(F, "cross_entropy", reference_half)
    res = module.bench_loss(8, 4, repeats=5)
    assert res["values_agree"]
    assert len(res["ours_times_s"]) == len(res["reference_times_s"]) == 5
    ours_in_a_row = [len(list(run)) for name, run in itertools.groupby(calls) if name == "ours"]
    assert sum(ours_in_a_row) == 7 and max(ours_in_a_row) == 2       # a warm-up and 5 rounds, rotating


def test_cca_bench_times_the_closed_form_fits_in_alternating_rounds(monkeypatch):
    import itertools

    import cca_zoo.linear
    import sklearn.cross_decomposition

    import jointspace.models.cca

    module = script("bench_cca")
    capture_save(module, monkeypatch)
    monkeypatch.setattr(module, "gemm_gflops", lambda *a: 1.0)
    calls = []

    def recording(cls, name):
        class Recorded(cls):
            def fit(self, *args, **kwargs):
                data = args[0][0] if isinstance(args[0], list) else args[0]
                calls.append(f"{name} {data.dtype}")
                return super().fit(*args, **kwargs)
        return Recorded

    monkeypatch.setattr(jointspace.models.cca, "CCA", recording(jointspace.models.cca.CCA, "ours"))
    monkeypatch.setattr(cca_zoo.linear, "CCA", recording(cca_zoo.linear.CCA, "cca-zoo"))
    monkeypatch.setattr(sklearn.cross_decomposition, "CCA",
                        recording(sklearn.cross_decomposition.CCA, "scikit-learn"))
    module.main(["--n", "200", "--d", "5", "--k", "2", "--repeats", "5"])
    fast = [c for c in calls if not c.startswith("scikit-learn")]
    assert sorted(set(fast)) == ["cca-zoo float64", "ours float32", "ours float64"]
    assert all(fast.count(c) == 6 for c in set(fast))                      # a warm-up and 5 rounds
    assert max(len(list(run)) for _, run in itertools.groupby(fast)) == 1  # rotating, never twice in a row
    assert calls[len(fast):] == ["scikit-learn float64"] * 5


def test_datasets_bench_times_the_idx_readers_in_alternating_rounds(monkeypatch, tmp_path):
    import gzip
    import itertools

    import numpy as np

    import jointspace.data.idx
    from jointspace.data.datasets import fashion_mnist

    module = script("bench_datasets")
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in images.shape)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + images.tobytes())
    monkeypatch.setattr(fashion_mnist, "DEFAULT_ROOT", tmp_path)
    calls = []
    read_idx, gzip_open = jointspace.data.idx.read_idx, gzip.open
    monkeypatch.setattr(jointspace.data.idx, "read_idx", lambda p: calls.append("ours") or read_idx(p))

    class Gzip:
        @staticmethod
        def open(*a, **k):
            calls.append("reference")
            return gzip_open(*a, **k)

    monkeypatch.setattr(module, "gzip", Gzip)
    res = module.bench_idx(repeats=5)
    assert res["ours_median_s"] > 0 and res["reference_median_s"] > 0
    assert calls.count("ours") == calls.count("reference") == 7       # the check, a warm-up, 5 rounds
    assert max(len(list(run)) for _, run in itertools.groupby(calls)) == 2
