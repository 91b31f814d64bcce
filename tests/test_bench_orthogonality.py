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
    # every row refitted per seed; seed 0 is the row's own model, so its probe comes back
    spread = report["content_over_seeds"]
    assert list(spread) == list(rows)
    for name, s in spread.items():
        assert s["seeds"] == [0, 1]
        for m in ("audio", "text"):
            p = s[f"probe/content/{m}/shared"]
            assert p["values"][0] == pytest.approx(rows[name][f"probe/content/{m}/shared"])
            assert p["mean"] == pytest.approx(sum(p["values"]) / 2)
            assert p["se"] == pytest.approx(abs(p["values"][0] - p["values"][1]) / 2)


def test_figures_option_is_refused_for_a_suite_without_figures(capsys, tmp_path):
    code, _, err = run(capsys, "bench", "wikipedia", "--figures", str(tmp_path))
    assert code == 2 and "--figures: suite 'wikipedia' draws no figures" in err
