"""Paired comparison of two rankings: per-query scores, the randomisation test by full
enumeration, the bootstrap interval against the normal approximation, two models."""

import itertools

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.eval.metrics import summarize
from jointspace.eval.retrieval import retrieval_scores
from jointspace.eval.significance import compare_models, compare_rankings, per_query_scores


def _per_query(seed, n=60, noise=1.0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 6, n)
    base = np.eye(6)[keys] * 2
    q = base + noise * rng.normal(size=(n, 6))
    g = base + noise * rng.normal(size=(n, 6))
    return retrieval_scores(q, g, keys, keys, return_per_query=True)[1]


def test_per_query_scores_average_to_the_reported_metrics():
    per = _per_query(0)
    per["n_relevant"] = per["n_relevant"].copy()
    per["n_relevant"][:3] = 0          # queries without a relevant item are left out, as summarize does
    summary = summarize(per, ks=(1, 5), ndcg_k=10)
    for metric in ("mAP", "MRR", "R@1", "R@5", "nDCG@10"):
        scores = per_query_scores(per, metric)
        assert len(scores) == 57 and scores.mean() == pytest.approx(summary[metric], rel=1e-12)
    with pytest.raises(InputError, match=r"^metric: expected 'mAP', 'MRR', 'R@<k>' or 'nDCG@10', got 'medR'"):
        per_query_scores(per, "medR")
    with pytest.raises(InputError, match="^metric"):
        per_query_scores(per, "R@0")


def test_the_p_value_is_the_full_randomisation_test_by_hand():
    """Ten queries: 2**10 swaps, fewer than n_resamples, so the test is exact; by hand, the
    share of sign flips of the differences whose mean is at least as far from 0."""
    a, b = _per_query(1, n=10, noise=2.0), _per_query(2, n=10, noise=0.5)
    res = compare_rankings(a, b, "mAP", n_resamples=9999)
    d = b["ap"] - a["ap"]
    flips = np.array(list(itertools.product([1, -1], repeat=10)))
    means = (flips * d).mean(1)
    want = np.mean(np.abs(means) >= abs(d.mean()) * (1 - 1e-12))
    assert res["p_value"] == pytest.approx(want, rel=1e-12)
    assert res["difference"] == pytest.approx(d.mean()) and res["n_queries"] == 10
    assert res["a"] == pytest.approx(a["ap"].mean()) and res["b"] == pytest.approx(b["ap"].mean())


def test_the_interval_agrees_with_the_normal_approximation_on_many_queries():
    a, b = _per_query(3, n=2000, noise=1.5), _per_query(4, n=2000, noise=1.0)
    res = compare_rankings(a, b, "mAP", n_resamples=4999, seed=1)
    d = b["ap"] - a["ap"]
    half = 1.959964 * d.std(ddof=1) / np.sqrt(d.size)
    assert res["ci_low"] == pytest.approx(d.mean() - half, abs=0.15 * half)
    assert res["ci_high"] == pytest.approx(d.mean() + half, abs=0.15 * half)
    assert res["ci_low"] < res["difference"] < res["ci_high"]
    narrow = compare_rankings(a, b, "mAP", n_resamples=4999, seed=1, confidence=0.5)
    assert res["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < res["ci_high"]


def test_equal_rankings_and_one_difference_everywhere():
    a = _per_query(5)
    same = compare_rankings(a, a, "R@1")
    assert (same["difference"], same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    shifted = {**a, "ap": a["ap"] + 0.01}
    res = compare_rankings(a, shifted, "mAP", n_resamples=999)
    assert res["ci_low"] == pytest.approx(0.01) and res["ci_high"] == pytest.approx(0.01)
    assert res["p_value"] <= 2 / 1000   # only the observed sign pattern and its mirror are as far from 0


def test_bad_input_names_the_argument():
    a = _per_query(6)
    with pytest.raises(InputError, match="^per_query_b: expected the queries of per_query_a"):
        compare_rankings(a, _per_query(6, n=50))
    with pytest.raises(InputError, match=r"^confidence: expected a level in \(0, 1\)"):
        compare_rankings(a, a, confidence=1.0)
    with pytest.raises(InputError, match="^n_resamples"):
        compare_rankings(a, a, n_resamples=5)


def test_compare_models_on_wikipedia():
    from jointspace import create_model, evaluate_retrieval, load_dataset

    data = load_dataset("wikipedia")
    cca = create_model("cca", n_components=5).fit(data["train"])
    scm = create_model("scm").fit(data["train"])
    rows = compare_models(cca, scm, data["test"], metrics=("mAP", "R@10"), n_resamples=999)
    assert [(r["direction"], r["metric"]) for r in rows] == [
        ("image->text", "mAP"), ("image->text", "R@10"), ("text->image", "mAP"), ("text->image", "R@10")]
    ours, theirs = evaluate_retrieval(cca, data["test"]), evaluate_retrieval(scm, data["test"])
    for r in rows:
        key = f"{r['direction']}/{r['metric']}"
        assert r["a"] == pytest.approx(ours[key]) and r["b"] == pytest.approx(theirs[key])
        assert 0 < r["p_value"] <= 1 and r["ci_low"] <= r["difference"] <= r["ci_high"]
    with pytest.raises(InputError, match="^metric"):
        compare_models(cca, scm, data["test"], metrics=("medR",))


def test_compare_models_refuses_a_misspelt_option_naming_it():
    from jointspace import create_model, load_dataset

    data = load_dataset("wikipedia")
    cca = create_model("cca", n_components=2).fit(data["train"])
    with pytest.raises(InputError, match=r"^n_resample: .*confidence, n_resamples, seed.*got 'n_resample'"):
        compare_models(cca, cca, data["test"], n_resample=99)


def test_eval_against_a_baseline_from_the_command_line(tmp_path, capsys):
    import json

    from cli_support import one_line, run
    from jointspace import load_dataset, load_model
    from jointspace.cli import main

    for name, args in (("cca", ["--n-components", "5"]), ("pls", ["--n-components", "5"])):
        assert main(["fit", "wikipedia", "--model", name, *args, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "eval", tmp_path / "pls", "--dataset", "wikipedia", "--against", tmp_path / "cca",
                         "--json")
    assert code == 0, err
    got = json.loads(out)["comparison"]
    want = compare_models(load_model(tmp_path / "cca"), load_model(tmp_path / "pls"), load_dataset("wikipedia")["test"],
                          metrics=("mAP", "R@1", "R@10"))
    assert got["baseline"] == str(tmp_path / "cca") and len(got["rows"]) == len(want) == 6
    for g, w in zip(got["rows"], want):
        assert (g["direction"], g["metric"]) == (w["direction"], w["metric"])
        assert {k: g[k] for k in w if k not in ("direction", "metric")} == \
            pytest.approx({k: v for k, v in w.items() if k not in ("direction", "metric")}, rel=1e-6)
    code, out, _ = run(capsys, "eval", tmp_path / "pls", "--dataset", "wikipedia", "--against", tmp_path / "cca")
    assert code == 0 and "paired randomisation test" in " ".join(out.split())
    assert "p (Holm)" in out and all(g["p_holm"] >= g["p_value"] for g in got["rows"])
    code, _, err = run(capsys, "eval", tmp_path / "pls", "--dataset", "wikipedia", "--against", tmp_path / "none")
    assert code == 2 and one_line(err) and err.startswith("error: --against: expected a saved model folder"), err
    code, _, err = run(capsys, "eval", tmp_path / "pls", "--dataset", "wikipedia", "--against", tmp_path / "cca",
                       "--csls", "5")
    assert code == 2 and one_line(err) and "--against: compares the models' plain rankings" in err


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_compare_models_ranks_the_embeddings_evaluate_retrieval_ranks(metric):
    """Under dot and euclidean, ``evaluate_retrieval`` ranks the unnormalised embeddings; the
    per-query scores compared must average to exactly its metrics."""
    from jointspace import create_model, evaluate_retrieval, load_dataset

    data = load_dataset("wikipedia")
    cca = create_model("cca", n_components=5).fit(data["train"])
    pls = create_model("pls", n_components=5).fit(data["train"])
    rows = compare_models(cca, pls, data["test"], metrics=("mAP", "R@1", "R@10"), metric=metric, n_resamples=99)
    ours = evaluate_retrieval(cca, data["test"], metric=metric)
    theirs = evaluate_retrieval(pls, data["test"], metric=metric)
    for r in rows:
        key = f"{r['direction']}/{r['metric']}"
        assert r["a"] == pytest.approx(ours[key], rel=1e-12) and r["b"] == pytest.approx(theirs[key], rel=1e-12)


@pytest.mark.parametrize("side", ["per_query_a", "per_query_b"])
def test_a_nan_score_is_refused_not_read_as_significant(side):
    """A NaN average precision made the randomisation test count no swap as extreme, p = 0.0."""
    a = _per_query(7, n=20)
    bad = {**a, "ap": a["ap"].copy()}
    bad["ap"][4] = np.nan
    other = {**a, "ap": a["ap"] + 0.05}
    pair = (bad, other) if side == "per_query_a" else (other, bad)
    with pytest.raises(InputError, match=rf"^{side}: expected finite per-query mAP scores, got NaN or Inf "
                                         r"\(first at query 4\)"):
        compare_rankings(*pair, "mAP", n_resamples=99)


def test_no_query_with_a_relevant_item_is_refused_as_summarize_refuses_it():
    """It returned NaN means with a p-value of 1.0 and an interval of [0, 0]."""
    a = _per_query(8, n=12)
    none = {**a, "n_relevant": np.zeros_like(a["n_relevant"])}
    with pytest.raises(InputError, match="no query has a relevant item"):
        summarize(none)
    with pytest.raises(InputError, match="^per_query_a, per_query_b: no query has a relevant item"):
        compare_rankings(none, none, "mAP")


def test_one_query_gets_the_exact_test_of_its_two_swaps():
    """One query with a relevant item: scipy's permutation test refuses a sample of one (a
    ValueError); by hand, the swaps give +d and -d, both as far from 0, so p = 1, and every
    bootstrap resample is that one difference."""
    a = {"n_relevant": np.array([0, 2, 0]), "ap": np.array([0.0, 0.25, 0.0]), "first_rank": np.array([0, 3, 0]),
         "ndcg": np.array([0.0, 0.4, 0.0])}
    b = {**a, "ap": np.array([0.0, 0.75, 0.0]), "first_rank": np.array([0, 1, 0])}
    d = 0.75 - 0.25
    want = np.mean([abs(s * d) >= abs(d) for s in (1, -1)])
    res = compare_rankings(a, b, "mAP")
    assert (res["n_queries"], res["difference"], res["ci_low"], res["ci_high"]) == (1, d, d, d)
    assert res["p_value"] == want == 1.0
    mrr = compare_rankings(a, b, "MRR")
    assert (mrr["a"], mrr["b"], mrr["p_value"]) == (1 / 3, 1.0, 1.0)


def test_holm_by_hand_and_as_the_step_down_procedure():
    from jointspace.eval.significance import holm

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0] and holm([]).size == 0
    rng = np.random.default_rng(0)
    p = np.r_[rng.random(8) ** 4, 0.01, 0.01]
    adjusted = holm(p)
    for alpha in (0.01, 0.02, 0.05, 0.1, 0.3):
        rejected, order = set(), np.argsort(p)   # Holm's procedure: step down while p_(i) <= alpha / (m - i + 1)
        for i, j in enumerate(order):
            if p[j] > alpha / (p.size - i):
                break
            rejected.add(int(j))
        assert set(np.flatnonzero(adjusted <= alpha).tolist()) == rejected
    for bad in ([0.2, np.nan], [[0.1]], [1.5], "x"):
        with pytest.raises(InputError, match=r"^p_values: expected a 1-D sequence of p-values in \[0, 1\]"):
            holm(bad)


def test_compare_models_adjusts_its_p_values_together():
    """The command line prints these rows side by side: six raw p-values read at once."""
    from jointspace import create_model, load_dataset
    from jointspace.eval.significance import holm

    data = load_dataset("wikipedia")
    cca = create_model("cca", n_components=5).fit(data["train"])
    pls = create_model("pls", n_components=5).fit(data["train"])
    rows = compare_models(cca, pls, data["test"], metrics=("mAP", "R@1", "R@10"), n_resamples=199)
    p = np.array([r["p_value"] for r in rows])
    m = len(rows)
    want = [min(1.0, max(min(1.0, (m - i) * q) for i, q in enumerate(np.sort(p)) if q <= v)) for v in p]
    assert len(rows) == 6 and [r["p_holm"] for r in rows] == pytest.approx(want, rel=1e-12)
    assert holm(p) == pytest.approx(want, rel=1e-12)
