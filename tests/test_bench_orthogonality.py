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


def test_figures_option_is_refused_for_a_suite_without_figures(capsys, tmp_path):
    code, _, err = run(capsys, "bench", "wikipedia", "--figures", str(tmp_path))
    assert code == 2 and "--figures: suite 'wikipedia' draws no figures" in err
