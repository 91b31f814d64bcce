"""The orthogonality suite's quick run on spoken words: every row, its figures and its table."""

import pytest

from cli_support import run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_spoken_words_rows_and_the_multiplier_plot(tmp_path):
    from jointspace.bench import orthogonality as suite

    report = suite.run_dataset("spoken-words", quick=True, plot_dir=tmp_path)
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["no private parts", "private, no regulariser", *suite.GRID]
    assert "redundancy/private" not in rows["no private parts"]
    for name in suite.GRID:
        r = rows[name]
        assert -0.1 < r["redundancy/private"] <= 1 and 0 <= r["mAP"] <= 1 and r["ms_per_step"] > 0
        assert 0 <= r["probe/accent/audio/private"] <= 1 and r["probe/accent/chance"] == pytest.approx(0.5)
        assert r["settings"].startswith(f"{name}:")
    assert (tmp_path / "orthogonality-lagrange-spoken-words.png").stat().st_size > 1000
    header, cells = suite.table(report)
    assert len(cells) == len(rows) and all(len(c) == len(header) for c in cells)
    # the private parts take what the shared part leaves of the 80 MFCC statistics; abs_dot,
    # per sample, keeps parts of one size
    assert report["private_dim"] == 80 - 8 and (report["head"], report["loss"]) == ("linear", "clip")
    assert "private_dim=8" in rows["abs_dot"]["settings"] and "private_dim" not in rows["hsic"]["settings"]
    # every row refitted per seed; seed 0 is the row's own model, so its probes come back
    spread = report["probes_over_seeds"]
    assert list(spread) == list(rows)
    for name, s in spread.items():
        assert s["seeds"] == [0, 1] and s["diverged"] == []
        keys = [f"probe/content/{m}/shared" for m in ("audio", "text")] + ["probe/accent/audio/shared"]
        keys += ["probe/accent/audio/private"] if name != "no private parts" else []
        assert sorted(k for k in s if k.startswith("probe/")) == sorted(keys)
        for key in keys:
            p = s[key]
            assert p["values"][0] == pytest.approx(rows[name][key])
            assert p["mean"] == pytest.approx(sum(p["values"]) / 2)
            assert p["se"] == pytest.approx(abs(p["values"][0] - p["values"][1]) / 2)
    ratios = suite.style_ratios(report, "accent", "audio")
    # a row has a ratio where either part reads the accent above chance (with 10 speakers and
    # folds grouped by speaker, many rows read it at or below chance)
    for name in list(rows)[1:]:
        shared, private = (spread[name][f"probe/accent/audio/{part}"]["mean"] - 0.5 for part in ("shared", "private"))
        if shared > 0:
            assert ratios[name] == pytest.approx(private / shared)
        elif private > 0:
            assert ratios[name] == float("inf")
        else:
            assert name not in ratios
    assert report["style_ratios"]["accent"] == pytest.approx({k: v if v != float("inf") else None
                                                              for k, v in ratios.items()})


def test_choose_model_takes_the_best_head_and_loss_then_the_smallest_size_near_it(monkeypatch):
    from jointspace.bench import orthogonality as suite

    val_map = {("linear", "clip"): {8: 0.80, 16: 0.85, 32: 0.84, 64: 0.83},
               ("linear", "supervised"): {8: 0.80, 16: 0.85, 32: 0.84, 64: 0.83},   # a tie: the default wins
               ("mlp", "clip"): {8: 0.70, 16: 0.88, 32: 0.89, 64: 0.90},
               ("mlp", "supervised"): {8: 0.70, 16: 0.87, 32: 0.90, 64: 0.90}}      # ties mlp/clip's best
    monkeypatch.setattr(suite, "_fit", lambda train, dim, head, loss: (head, loss, dim))
    monkeypatch.setattr(suite, "_map", lambda model, val: val_map[model[:2]][model[2]])
    chosen, scores = suite.choose_model(None, None)
    # 0.90 is mlp/clip's best; the smallest size within 2% of it (>= 0.882) is 32
    assert chosen == {"head": "mlp", "loss": "clip", "dim": 32}
    assert len(scores) == 16 and scores["mlp/supervised/32"] == 0.90


def test_style_ratio_by_hand():
    from jointspace.bench import orthogonality as suite

    report = {"rows": [{"probe/accent/chance": 0.5}],
              "probes_over_seeds": {
                  "no private parts": {"probe/accent/audio/shared": {"mean": 0.7}},
                  "hsic": {"probe/accent/audio/shared": {"mean": 0.6}, "probe/accent/audio/private": {"mean": 0.95}},
                  "club": {"probe/accent/audio/shared": {"mean": 0.5}, "probe/accent/audio/private": {"mean": 0.8}},
                  # neither part above chance: no ratio (it was inf, as if only the private part held it)
                  "weight": {"probe/accent/audio/shared": {"mean": 0.4}, "probe/accent/audio/private": {"mean": 0.45}}}}
    ratios = suite.style_ratios(report, "accent", "audio")
    assert ratios == {"hsic": pytest.approx(0.45 / 0.1), "club": float("inf")}


def test_figures_help_names_every_suite_that_draws_figures():
    # it named orthogonality only, though fusion draws its matcher's alignment maps too
    import importlib
    import inspect

    from jointspace.bench import list_suites
    from jointspace.cli import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    help_text = next(a.help for a in bench._actions if "--figures" in a.option_strings)
    drawing = [name for name in list_suites()
               if "plot_dir" in inspect.signature(importlib.import_module(
                   f"jointspace.bench.{name.replace('-', '_')}").run).parameters]
    assert drawing and all(f"{name}:" in help_text for name in drawing), (drawing, help_text)


def test_figures_option_is_refused_for_a_suite_without_figures(capsys, tmp_path):
    code, _, err = run(capsys, "bench", "wikipedia", "--figures", str(tmp_path))
    assert code == 2 and "--figures: suite 'wikipedia' draws no figures" in err


def test_a_diverging_value_is_recorded_and_not_chosen(monkeypatch):
    from jointspace.bench import orthogonality as suite
    from jointspace.errors import InputError, TrainingDiverged

    def fit(train, dim, private_dim, regularizers, **settings):
        value = float(regularizers[0].split(":")[1])
        if value >= 10:
            raise TrainingDiverged("diverged", step=7, epoch=0, value=float("nan"))
        return value

    monkeypatch.setattr(suite, "_fit", fit)
    monkeypatch.setattr(suite, "_map", lambda model, val: 0.9)
    monkeypatch.setattr(suite, "_private_redundancy", lambda model, val: 1 / model)
    value, tried = suite.choose_value(None, None, "lagrange", 8, 0.9, (0.1, 1.0, 10.0))
    assert value == 1.0 and tried[10.0] == {"diverged": 7}
    assert "10 diverged at step 7" in suite._tried(tried)
    with pytest.raises(InputError, match="lagrange: training diverged at every value tried"):
        suite.choose_value(None, None, "lagrange", 8, 0.9, (10.0, 100.0))


def test_accent_probes_keep_each_speaker_within_one_fold():
    """The accent is probed on speakers the probe never saw: each speaker here has an offset of
    its own and an accent drawn per speaker, so an ungrouped probe reads the accent off the
    speaker (accuracy 1) and a grouped one cannot."""
    import numpy as np

    from jointspace.bench import orthogonality as suite
    from jointspace.data.pairs import Pairs
    from jointspace.eval.probes import probe_accuracy

    assert all(spec["groups"] == {"accent": "speaker"} for spec in suite.DATASETS.values())
    rng = np.random.default_rng(0)
    speaker = np.repeat(np.arange(20), 15)
    private = rng.normal(scale=3.0, size=(20, 24))[speaker] + 0.1 * rng.normal(size=(300, 24))
    accent = np.array(["a", "b"] * 10)[speaker].tolist()
    test = Pairs({"audio": private}, labels=np.arange(300) % 3,
                 metadata={"accent": accent, "speaker": [f"s{k}" for k in speaker]})
    parts = {"audio": {"shared": rng.normal(size=(300, 4)), "private": private}}
    out = suite._probes(parts, test, {"audio": "accent"}, suite.DATASETS["spoken-words"]["groups"])
    grouped = probe_accuracy(private, accent, groups=test.metadata["speaker"])["accuracy"]
    assert out["probe/accent/audio/private"] == grouped
    assert probe_accuracy(private, accent)["accuracy"] > 0.95 and grouped < 0.75
