"""``jointspace search``: the query options and the options that go with them."""

import pytest

from cli_support import one_line, run
from jointspace.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wiki_index(tmp_path_factory):
    """An index of Wikipedia's test images under a CCA model (no towers)."""
    root = tmp_path_factory.mktemp("search-queries")
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "4", "--out", str(root / "run")]) == 0
    assert main(["index", str(root / "run"), "--dataset", "wikipedia", "--modality", "image",
                 "--out", str(root / "idx")]) == 0
    return root / "idx"


@pytest.mark.parametrize("query, option, value", [
    (["--text", "a castle"], "--modality", "image"),
    (["--image", "castle.png"], "--dataset", "wikipedia"),
    (["--audio", "castle.wav"], "--split", "train"),
])
def test_query_row_options_with_another_query_are_refused(wiki_index, capsys, query, option, value):
    """--modality, --dataset and --split pick the row of --query-row; with a free query they
    were dropped without a word (--text 'a castle' --modality image still searched with text)."""
    code, out, err = run(capsys, "search", wiki_index, *query, option, value)
    assert code == 2 and one_line(err) and out == ""
    assert (f"{option}: only used with --query-row N (it picks the query's row); got {option} {value!r} "
            f"with {query[0]}") in err


def test_an_index_without_items_is_refused(wiki_index, capsys, tmp_path):
    """An index saved before anything was added printed an empty table and exited 0, as if
    nothing matched the query."""
    from jointspace.index.faiss_index import Index

    empty = Index(dim=4)
    empty.info.update(model=str(wiki_index.parent / "run"), modality="image", dataset="wikipedia", split="test")
    empty.save(tmp_path / "empty")
    code, out, err = run(capsys, "search", tmp_path / "empty", "--query-row", "1", "--json")
    assert code == 2 and one_line(err) and out == ""
    assert (f"INDEX: expected an index with items to search, got {str(tmp_path / 'empty')!r} holding none; add some "
            f"with 'jointspace index {tmp_path / 'empty'} --append --data DATA'") in err


def test_a_query_row_modality_the_model_does_not_know_names_modality(wiki_index, capsys, tmp_path):
    """A row of an arrays file read as a modality the model lacks was 'query: the model knows
    image, text; it cannot encode audio queries', naming no option and not what was given."""
    import numpy as np

    from jointspace import load_dataset

    arrays = tmp_path / "features.npz"
    np.savez(arrays, T=load_dataset("wikipedia", "test")["text"][:5])
    code, out, err = run(capsys, "search", wiki_index, "--query-row", "1", "--dataset", arrays,
                         "--modality", "audio=T")
    assert code == 2 and one_line(err) and out == ""
    assert ("--modality: expected a modality of the model (image, text) to encode the query row with, "
            "got 'audio=T'") in err


def test_no_same_label_count_against_an_index_without_labels(wiki_index, capsys, tmp_path):
    """A labelled query row against an index that stores no labels printed '* same label as
    the query: 0 of 3', as if no result shared it."""
    import numpy as np

    from jointspace import load_dataset

    arrays = tmp_path / "features.npz"
    np.savez(arrays, I=load_dataset("wikipedia", "test")["image"][:20])
    idx = tmp_path / "idx"
    assert main(["index", str(wiki_index.parent / "run"), "--data", str(arrays), "--modality", "image",
                 "--modality", "image=I", "--out", str(idx)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "search", idx, "--query-row", "3", "--dataset", "wikipedia", "--split", "test",
                         "--modality", "text", "-k", "3")
    assert code == 0, err
    assert "history" in out and "same label as the query" not in out   # the query's label, in the title
    code, out, err = run(capsys, "search", wiki_index, "--query-row", "3", "-k", "3")
    assert code == 0 and "* same label as the query: " in out
