"""k-occurrence and the hubness measures, against brute-force counts and scipy's skewness."""

import numpy as np
import pytest
from scipy.stats import skew

from jointspace.errors import InputError
from jointspace.eval import hubness_report, k_occurrence
from jointspace.eval.hubness import csls_vectors


def _by_hand(q, g, k):
    """Each query's k nearest gallery rows by cosine, counted with Python loops."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    counts = [0] * len(g)
    for row in qn:
        scores = [float(row @ v) for v in gn]
        for j in sorted(range(len(g)), key=lambda j: (-scores[j], j))[:k]:
            counts[j] += 1
    return np.array(counts)


def test_k_occurrence_counts_each_querys_top_k():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(40, 6)), rng.normal(size=(25, 6))
    for k in (1, 3, 25):
        got = k_occurrence(q, g, k=k, chunk_size=7)
        np.testing.assert_array_equal(got, _by_hand(q, g, k))
        assert got.sum() == 40 * k
    # equal scores: the earlier gallery row first
    assert k_occurrence(np.ones((3, 2)), np.ones((4, 2)), k=2).tolist() == [3, 3, 0, 0]


def test_hubness_report_by_hand_and_against_scipy():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(200, 50)), rng.normal(size=(150, 50))
    n_k = k_occurrence(q, g, k=5)
    rep = hubness_report(q, g, k=5, hub_size=2.0)
    assert rep["skewness"] == pytest.approx(skew(n_k), rel=1e-12)
    mean = 1000 / 150   # 200 queries x 5 slots over 150 items: a hub is retrieved over 2 x 6.67 times
    assert rep["hub_occurrence"] == pytest.approx(n_k[n_k >= 2 * mean].sum() / 1000)
    assert 0 < rep["hub_occurrence"] < n_k[n_k >= 10].sum() / 1000
    assert rep["antihub_occurrence"] == pytest.approx(np.mean(n_k == 0))
    assert rep["robinhood"] == pytest.approx(0.5 * np.abs(n_k - mean).sum() / 1000)
    assert rep["max_occurrence"] == n_k.max() and rep["k"] == 5
    # a hand-worked case: occurrences [3, 0, 0] for three queries at k = 1
    one = hubness_report(np.ones((3, 2)), np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]]), k=1)
    assert one["hub_occurrence"] == 1.0 and one["antihub_occurrence"] == pytest.approx(2 / 3)
    assert one["robinhood"] == pytest.approx(0.5 * (2 + 1 + 1) / 3)
    assert one["skewness"] == pytest.approx(skew([3, 0, 0]))
    # every item retrieved equally often: no spread, skewness 0
    eye = np.eye(4)
    assert hubness_report(eye, eye, k=1) == {"k": 1, "skewness": 0.0, "hub_occurrence": 0.0,
                                              "antihub_occurrence": 0.0, "robinhood": 0.0, "max_occurrence": 1}


def test_a_central_item_is_a_hub_and_csls_takes_its_slots_away():
    """Queries and gallery drawn around one direction, plus an item at that direction: the
    item is near every query and a hub; CSLS (ranked by the inner product of its vectors)
    removes most of its occurrences and the skew."""
    rng = np.random.default_rng(2)
    centre = np.r_[1.0, np.zeros(19)]
    q = centre + 0.3 * rng.normal(size=(300, 20))
    g = np.vstack([centre, centre + 0.3 * rng.normal(size=(199, 20))])
    bank = centre + 0.3 * rng.normal(size=(300, 20))
    plain = hubness_report(q, g, k=10)
    # without hubs an item is retrieved about 300 * 10 / 200 = 15 times
    assert k_occurrence(q, g, k=10)[0] == plain["max_occurrence"] > 100
    qc, gc = csls_vectors(q, g, bank, k=10)
    corrected = hubness_report(qc, gc, k=10, metric="dot")
    assert k_occurrence(qc, gc, k=10, metric="dot")[0] < plain["max_occurrence"] / 3
    assert corrected["skewness"] < plain["skewness"] / 3 and corrected["robinhood"] < plain["robinhood"]


@pytest.mark.parametrize("m", [7, 14])
def test_an_item_exactly_hub_size_times_the_mean_is_a_hub(m):
    """29 queries all retrieve gallery row 0 (and with m = 14, 29 more row 1), so those rows'
    N_1 = 29 is exactly 7 times the mean occurrence (29 * (m // 7) / m): hubs under N_k >= h mean.
    In floating point 7 * (29 / 7) is 29.000000000000004, and they were not counted."""
    q = np.eye(m)[[0] * 29 + [1] * 29 * (m // 7 - 1)]
    n_k = k_occurrence(q, np.eye(m), 1)
    assert n_k[:m // 7].tolist() == [29] * (m // 7) and n_k.sum() == 29 * (m // 7)
    assert hubness_report(q, np.eye(m), 1, hub_size=7)["hub_occurrence"] == 1.0
    assert hubness_report(q, np.eye(m), 1, hub_size=7.5)["hub_occurrence"] == 0.0


def test_bad_input_names_the_argument():
    g = np.ones((5, 3))
    with pytest.raises(InputError, match=r"^k: expected an integer <= 5, got 6$"):
        k_occurrence(g, g, k=6)
    with pytest.raises(InputError, match="^gallery: expected 3 columns"):
        k_occurrence(g, np.ones((5, 2)))
    with pytest.raises(InputError, match="^hub_size"):
        hubness_report(g, g, k=1, hub_size=0)
    with pytest.raises(InputError, match="^queries"):
        k_occurrence(np.full((2, 3), np.nan), g, k=1)


def test_eval_hubness_reports_each_direction_before_and_after_csls(tmp_path, capsys):
    import json

    from cli_support import one_line, run
    from jointspace import load_dataset, load_model
    from jointspace.cli import main

    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "5", "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "eval", tmp_path / "m", "--dataset", "wikipedia", "--csls", "10", "--hubness", "5",
                         "--json")
    assert code == 0, err
    rows = json.loads(out)["hubness"]
    model, data = load_model(tmp_path / "m"), load_dataset("wikipedia")
    z = {m: model.encode(m, data["test"][m]) for m in ("image", "text")}
    bank = model.encode("text", data["train"]["text"])
    qv, gv = csls_vectors(z["text"], z["image"], bank, k=10)
    assert [(r["direction"], r["ranking"]) for r in rows] == [
        ("image->text", "cosine"), ("image->text", "CSLS (k=10)"), ("text->image", "cosine"), ("text->image", "CSLS (k=10)")]
    assert {k: v for k, v in rows[2].items() if k not in ("direction", "ranking")} == \
        pytest.approx(hubness_report(z["text"], z["image"], k=5))
    assert {k: v for k, v in rows[3].items() if k not in ("direction", "ranking")} == \
        pytest.approx(hubness_report(qv, gv, k=5, metric="dot"))
    code, out, err = run(capsys, "eval", tmp_path / "m", "--dataset", "wikipedia", "--hubness", "5")
    assert code == 0 and "hubness: how often each item is in a query's top 5" in out
    code, _, err = run(capsys, "eval", tmp_path / "m", "--dataset", "wikipedia", "--hubness", "100000")
    assert code == 2 and one_line(err) and "--hubness: expected K <= 693 (the items of --split test), got 100000" in err


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_eval_hubness_ranks_as_evaluated_under_dot_and_euclidean(tmp_path, capsys, metric):
    """--metric dot and euclidean rank the unnormalised embeddings (as evaluate_retrieval does),
    so the k-occurrence is counted on them."""
    import json

    from cli_support import run
    from jointspace import load_dataset, load_model
    from jointspace.cli import main

    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "5", "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "eval", tmp_path / "m", "--dataset", "wikipedia", "--metric", metric,
                         "--hubness", "5", "--json")
    assert code == 0, err
    rows = json.loads(out)["hubness"]
    model, test = load_model(tmp_path / "m"), load_dataset("wikipedia")["test"]
    z = {m: model.encode(m, test[m], normalize=False) for m in ("image", "text")}
    assert [(r["direction"], r["ranking"]) for r in rows] == [("image->text", metric), ("text->image", metric)]
    for row, (q, t) in zip(rows, (("image", "text"), ("text", "image"))):
        assert {k: v for k, v in row.items() if k not in ("direction", "ranking")} == \
            pytest.approx(hubness_report(z[q], z[t], k=5, metric=metric), rel=1e-12)
