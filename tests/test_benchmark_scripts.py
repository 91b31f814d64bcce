"""The speed and memory scripts of ``benchmarks/`` (``make bench``): their arguments and the
figures they compute, on inputs small enough for the unit-test run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name: str):
    """The module ``benchmarks/<name>.py``, imported as its own module (not run)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ran(Exception):
    """Raised by a stubbed first step: the script got past its arguments."""


def _ran(*args, **kwargs):
    raise Ran


#: (script, arguments, its first step after parsing, stubbed so a run that is not refused stops there)
BAD_COUNTS = [
    ("bench_cca", ["--repeats", "0"], "data"),
    ("bench_cca", ["--k", "-1"], "data"),
    ("bench_eval", ["--quick", "--repeats", "0"], "make_data"),
    ("bench_eval", ["--quick", "--big-repeats", "0"], "make_data"),
    ("bench_kernel_cca", ["--quick", "--repeats", "0"], "exact_vs_pyrcca"),
    ("bench_contrastive", ["--quick", "--repeats", "0"], "bench_loss"),
    ("bench_datasets", ["--quick", "--repeats", "0"], "bench_openclipart"),
    ("bench_towers", ["--quick", "--repeats", "0"], "gemm_gflops"),
    ("bench_index", ["--quick", "--nq", "0"], "bench_exact"),
]


@pytest.mark.parametrize("name, argv, first", BAD_COUNTS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_count_below_one_is_refused_naming_the_option(name, argv, first, monkeypatch, capsys):
    module = script(name)
    monkeypatch.setattr(module, first, _ran)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {argv[-2]}: expected an integer >= 1, got '{argv[-1]}'" in err


def test_positive_int_reads_counts_and_refuses_the_rest():
    util = script("_util")
    assert util.positive_int("1") == 1 and util.positive_int("20000") == 20000
    for bad in ("0", "-3", "2.5", "five", ""):
        with pytest.raises(Exception, match=f"expected an integer >= 1, got {bad!r}"):
            util.positive_int(bad)


@pytest.mark.parametrize("argv, option", [
    (["--hnsw-data", "gaussain"], "--hnsw-data: expected a comma-separated list of latent, gaussian, got 'gaussain'"),
    (["--hnsw-data", "latent,Gaussian"], "--hnsw-data: expected a comma-separated list of latent, gaussian, "
                                         "got 'latent,Gaussian'"),
    (["--ef", "16,abc"], "--ef: expected a comma-separated list of integers >= 1, got '16,abc'"),
    (["--ef", "0,16"], "--ef: expected a comma-separated list of integers >= 1, got '0,16'"),
])
def test_index_bench_refuses_an_unknown_data_kind_or_ef(argv, option, monkeypatch, capsys):
    module = script("bench_index")
    monkeypatch.setattr(module, "bench_hnsw", _ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--skip-exact", *argv])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(option)


def test_index_bench_data_kinds():
    """"latent" rows lie near a 32-d subspace, "gaussian" rows spread over all 512 dimensions;
    any other name is refused rather than read as "latent"."""
    import numpy as np

    module = script("bench_index")
    share = {}
    for kind in ("latent", "gaussian"):
        x = module.data(kind, 2000, 512, seed=0)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
        s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
        share[kind] = s[:module.LATENT].sum() / s.sum()
    assert share["latent"] > 0.99         # noise 0.3 / sqrt(512) per dimension: 0.9998 here
    assert share["gaussian"] < 0.2        # 32 of 512 isotropic dimensions: 1/16, 0.128 at the top of a sample spectrum
    with pytest.raises(ValueError, match="kind: expected one of latent, gaussian, got 'gaussain'"):
        next(module.blocks("gaussain", 10, 8, 0))


@pytest.mark.parametrize("given", ["tourch,onnx", "", "onnx,onnx"])
def test_server_bench_refuses_unknown_runtimes_before_building(given, monkeypatch, capsys):
    module = script("bench_server")
    monkeypatch.setattr(module, "build_index", _ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--quick", "--runtimes", given])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "--runtimes: expected a comma-separated list of distinct runtimes among torch, onnx, torch-bf16, "
        f"got {given!r}")


def test_cca_bench_compares_the_covariance_step_with_gemm_in_its_own_dtype(monkeypatch):
    """The float32 views are multiplied in float64, so the covariance step's rate is set against
    the float64 GEMM rate (it was set against float32's, which runs about twice as fast)."""
    import numpy as np

    module = script("bench_cca")
    saved = {}
    monkeypatch.setattr(module, "save", lambda name, payload: saved.setdefault(name, payload))
    rates = {"float32": 300.0, "float64": 100.0}
    monkeypatch.setattr(module, "gemm_gflops", lambda n, d, dtype, repeats: rates[np.dtype(dtype).name])
    module.main(["--n", "300", "--d", "6", "--k", "2", "--repeats", "1"])
    res = saved["cca"]
    assert res["covariance_dtype"] == "float64"
    assert res["covariance_flops"] == 2 * 300 * 6 * 6 + 2 * 300 * 6 * 7     # X'Y, then X'X and Y'Y by SYRK
    assert res["gemm_float32_gflops"] == 300.0 and res["gemm_float64_gflops"] == 100.0
    assert res["covariance_of_gemm"] == pytest.approx(res["covariance_gflops"] / 100.0)


def test_cca_bench_gemm_rate_counts_a_full_product(monkeypatch):
    """2 n (2d)^2 flops over the median time of ``A.T @ B``, two distinct (n, 2d) operands."""
    import numpy as np

    module = script("bench_cca")
    seen = []

    def fake_timeit(fn, repeats):
        seen.append(fn())
        return {"median_s": 0.5}

    monkeypatch.setattr(module, "timeit", fake_timeit)
    assert module.gemm_gflops(1000, 50, np.float64, 3) == pytest.approx(2 * 1000 * 100 ** 2 / 0.5 / 1e9)
    product = seen[0]
    assert product.shape == (100, 100) and product.dtype == np.float64
    assert not np.allclose(product, product.T)     # A.T @ B, not the symmetric A.T @ A


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


def _capture_save(module, monkeypatch) -> dict:
    saved = {}

    def save(name, payload):
        saved[name] = payload
        return BENCH / "results" / f"{name}.json"

    monkeypatch.setattr(module, "save", save)
    return saved


def test_eval_bench_results_record_the_machine_and_settings(monkeypatch):
    module = script("bench_eval")
    saved = _capture_save(module, monkeypatch)
    metrics = {"mAP": 0.5, "R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "MRR": 0.4, "medR": 2.0, "meanR": 3.0,
               "nDCG@10": 0.6}
    for name in ("retrieval_scores", "argsort_reference", "sklearn_reference"):
        monkeypatch.setattr(module, name, lambda *a, **k: dict(metrics))
    monkeypatch.setattr(module, "peak_memory", lambda fn: 2**20)
    module.main(["--quick", "--repeats", "2", "--big-repeats", "1"])
    res = saved["eval"]
    assert res["machine"] == module.machine() and res["machine"]["cpus"] >= 1
    assert (res["quick"], res["repeats"], res["big_repeats"], res["d"]) == (True, 2, 1, 64)
    assert res["sizes"] == {"large": 20_000, "mid": 5_000, "wikipedia": 693}


def test_contrastive_bench_results_record_the_machine_and_settings(monkeypatch):
    module = script("bench_contrastive")
    saved = _capture_save(module, monkeypatch)
    monkeypatch.setattr(module, "bench_loss", lambda b, d, r: {
        "reference_median_s": 1.0, "ours_median_s": 0.5, "ratio_ours_over_reference": 0.5, "values_agree": True})
    rate = {"pairs_per_s": 10.0, "steps": 2, "first_step_s": 1.0, "peak_rss_mib": 100.0}
    monkeypatch.setattr(module, "bench_head_only", lambda *a: dict(rate))
    monkeypatch.setattr(module, "bench_full_tower", lambda *a: dict(rate))
    module.main(["--quick", "--repeats", "3", "--threads", "2"])
    res = saved["contrastive"]
    assert res["machine"] == module.machine()
    assert (res["quick"], res["repeats"], res["threads"]) == (True, 3, 2)


def test_kernel_cca_bench_results_record_the_machine_and_settings(monkeypatch):
    module = script("bench_kernel_cca")
    saved = _capture_save(module, monkeypatch)
    monkeypatch.setattr(module, "exact_vs_pyrcca", lambda *a: {
        "n": 500, "ours_s": 1.0, "pyrcca_s": 2.0, "speedup": 2.0, "max_abs_corr_diff": 0.0, "kcca_model_fit_s": 1.0})
    monkeypatch.setattr(module, "scalable", lambda *a: {
        "n": 4000, "n_features": 300, "nystroem_fit_s": 1.0, "exact_fit_s_on_subsample": 1.0, "subsample_gap_max": 0.0})
    module.main(["--quick", "--repeats", "4"])
    res = saved["kernel_cca"]
    assert res["machine"] == module.machine()
    assert (res["quick"], res["repeats"]) == (True, 4)


def test_towers_bench_sets_each_runtime_against_gemm_in_its_own_dtype():
    """torch-bf16's GFLOP/s is a share of the bfloat16 GEMM rate (it read 102% of float32's)."""
    module = script("bench_towers")
    text = {"paths": {"torch": {"gflops": 29.2}, "onnx": {"gflops": 33.3}, "torch-bf16": {"gflops": 45.0}}}
    image = {"paths": {"torch": {"gflops": 12.6}, "onnx": {"gflops": 54.7}}}
    module.set_gemm_fractions((image, text), gemm_float32=44.3, gemm_bf16=79.6)
    assert text["paths"]["torch-bf16"]["gemm_fraction"] == pytest.approx(45.0 / 79.6)
    assert text["paths"]["torch-bf16"]["gemm_dtype"] == "bfloat16"
    assert text["paths"]["onnx"]["gemm_fraction"] == pytest.approx(33.3 / 44.3)
    assert image["paths"]["torch"]["gemm_fraction"] == pytest.approx(12.6 / 44.3)
    assert image["paths"]["onnx"]["gemm_dtype"] == "float32"


def test_towers_bench_fails_on_drifted_vectors_not_on_missed_speed_targets(monkeypatch, capsys):
    """The text tower's 4x batch target is out of reach on two cores (1.9x at best): a run that
    missed it exited 1, and ``make bench`` reported bench_towers.py as failed."""
    module = script("bench_towers")
    saved = _capture_save(module, monkeypatch)
    cos = {"onnx": 0.999999, "torch-bf16": 0.99993}

    def paths(runtimes, unit):
        return {r: {unit: 100.0, "gflops": 10.0, "gemm_fraction": 0.5, "cosine_min_to_torch": cos.get(r, 1.0),
                    "single_ms_p50": 5.0, "single_ms_p90": 6.0} for r in runtimes}

    image = {"paths": paths(module.RUNTIMES, "images_per_s"), "ratio": 3.6, "flops_per_image": 7.7e8,
             "decode_ms_per_image": 5.0, "candidates": {}}
    text = {"paths": paths(module.TEXT_RUNTIMES, "sentences_per_s"), "ratio": 1.9, "latency_ratio": 3.1,
            "ratios": {}, "latency_ratios": {}, "fastest_batch": "onnx", "fastest_single": "onnx",
            "flops_per_sentence": 2.8e8, "candidates": {}}
    photos = {"decode_ms_per_image": {}, "paths": {}, "ratio": 6.0}
    cache = {"tower": "t", "runtime": "onnx", "first_run_s": 1.0, "second_run_s_median": 0.01, "ratio": 0.01,
             "ok": True}

    class Proc:
        def __init__(self, runtime):
            pass

        def close(self):
            pass

    monkeypatch.setattr(module, "gemm_gflops", lambda **kw: 100.0)
    monkeypatch.setattr(module, "RuntimeProcess", Proc)
    monkeypatch.setattr(module, "_images", lambda folder, n: [])
    monkeypatch.setattr(module, "_photos", lambda folder, n: [])
    monkeypatch.setattr(module, "bench_images", lambda *a: image)
    monkeypatch.setattr(module, "bench_photos", lambda *a: photos)
    monkeypatch.setattr(module, "bench_text", lambda *a: text)
    monkeypatch.setattr(module, "bench_cache", lambda *a: dict(cache))
    assert module.main(["--quick"]) == 0                      # image 3.6x and text 1.9x: targets missed
    assert not saved["towers"]["targets"]["text_throughput"]["met"]
    assert "speed targets missed (reported, not a failure): image_throughput, text_throughput" in capsys.readouterr().out
    image["paths"]["onnx"]["cosine_min_to_torch"] = 0.998     # ONNX Runtime's vectors drifted: a failure
    assert module.main(["--quick"]) == 1
    assert "FAILED: image tower, onnx: cosine 0.998000 to torch float32" in capsys.readouterr().out


@pytest.mark.parametrize("argv, most", [(["--d", "4", "--k", "10"], 4), (["--n", "6", "--d", "8", "--k", "7"], 5)])
def test_cca_bench_refuses_more_pairs_than_the_data_hold(argv, most, monkeypatch, capsys):
    module = script("bench_cca")
    monkeypatch.setattr(module, "data", _ran)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        f"--k: expected at most min(--d, --n - 1) = {most} canonical pairs, got {argv[-1]}")


def _longest_run(calls: list) -> int:
    longest = run = 1
    for before, now in zip(calls, calls[1:]):
        run = run + 1 if now == before else 1
        longest = max(longest, run)
    return longest


def test_eval_bench_times_ours_and_the_reference_in_alternating_rounds(monkeypatch):
    """Five runs of ours then five of the reference put a change in the machine's load on one
    side: the same --quick run gave 115x and 23x for the pair-id case."""
    module = script("bench_eval")
    _capture_save(module, monkeypatch)
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
    assert _longest_run(compared) <= 2                # rounds rotate: ours, ref, ref, ours, ...


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
    assert _longest_run(calls) == 1
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
    _capture_save(module, monkeypatch)
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


def test_server_bench_refuses_a_missing_baseline_revision_before_building(monkeypatch):
    module = script("bench_server")
    monkeypatch.setattr(module, "build_index", _ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--quick", "--baseline", "no-such-revision"])
    assert str(info.value.code).startswith("--baseline: 'no-such-revision' is not a commit of this git checkout")


def test_index_bench_names_recall_by_its_k():
    """With --k 5 the sweep recorded recall@5 under 'recall_at_10'."""
    module = script("bench_index")
    res = module.bench_hnsw("latent", 500, 16, 20, 5, [4, 4096], 40, repeats=1, seed=3)
    assert res["k"] == 5 and all("recall_at_10" not in row for row in res["sweep"])
    last = res["sweep"][-1]                          # efSearch 4096 over 500 vectors: exhaustive
    assert last["efSearch"] == 4096 and last["recall_at_5"] == 1.0
    assert res["recall_at_that_efSearch"] == 1.0 or res["efSearch_for_0.95"] == 4


def test_contrastive_openclipart_results_record_the_machine_and_settings(monkeypatch, tmp_path):
    import json

    import jointspace.bench._contrastive as oc_contrastive
    import jointspace.bench.zeroshot as zeroshot

    module = script("bench_contrastive")
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(oc_contrastive, "openclipart_features", lambda: {"train": [0], "val": [0], "test": [0]})
    row = {"method": "clip", "text->image/R@10": 0.5, "text->image/mAP": 0.4, "image->text/R@10": 0.5,
           "image->text/mAP": 0.4, "fit_s": 1.0}
    monkeypatch.setattr(oc_contrastive, "openclipart_contrastive_rows", lambda data, seeds: [row])
    monkeypatch.setattr(oc_contrastive, "fit_openclipart", lambda variant, data: None)
    monkeypatch.setattr(zeroshot, "bench_zeroshot", lambda limit, model: [{"method": "m", "n": limit, "top1": 0.5,
                                                                            "top5": 0.9}])
    assert module.main(["--openclipart", "--threads", "2", "--zeroshot-limit", "300"]) == 0
    res = json.loads((tmp_path / "results" / "contrastive_openclipart.json").read_text())
    assert res["machine"] == module.machine()
    assert (res["threads"], res["zeroshot_limit"], res["seeds"]) == (2, 300, [0, 1, 2, 3, 4])


def test_cca_and_datasets_results_record_the_repeats(monkeypatch):
    cca = script("bench_cca")
    saved = _capture_save(cca, monkeypatch)
    monkeypatch.setattr(cca, "gemm_gflops", lambda *a: 1.0)
    cca.main(["--n", "200", "--d", "5", "--k", "2", "--repeats", "2"])
    assert (saved["cca"]["repeats"], saved["cca"]["quick"], saved["cca"]["n"]) == (2, False, 200)

    datasets = script("bench_datasets")
    saved = _capture_save(datasets, monkeypatch)
    for name in ("bench_openclipart", "bench_spoken_words"):
        monkeypatch.setattr(datasets, name, lambda quick, repeats: {"skipped": "stubbed"})
    monkeypatch.setattr(datasets, "bench_idx", lambda repeats: {"skipped": "stubbed"})
    datasets.main(["--quick", "--repeats", "3"])
    assert (saved["datasets"]["repeats"], saved["datasets"]["quick"]) == (3, True)
