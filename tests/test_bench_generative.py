"""The generative suite on a small sample, with its grids of generations (``--figures``)."""

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_figures_option_writes_each_variants_grid(tmp_path):
    # `bench generative --figures DIR` was refused ('draws no figures'): the suite named its folder out_dir
    from jointspace.bench import generative
    from jointspace.cli.commands.bench import _figures_dir

    folder = _figures_dir("generative", str(tmp_path / "figures"))
    report = generative.run(variants=["ae"], limit=300, epochs=1, test_limit=40, plot_dir=folder)
    assert [row["method"] for row in report["rows"]] == ["ae"]
    assert (tmp_path / "figures" / "generative-ae.png").stat().st_size > 0
