"""``jointspace serve``: what it checks about every index before it starts serving."""

import shutil

import pytest

from cli_support import run
from jointspace.cli import main


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two CCA models of wikipedia of the same width, and an index of each one's test texts."""
    root = tmp_path_factory.mktemp("serve")
    for name in ("a", "b"):
        assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "5", "--out", str(root / name)]) == 0
        assert main(["index", str(root / name), "--dataset", "wikipedia", "--split", "test", "--modality", "text",
                     "--out", str(root / f"text-{name}")]) == 0
    assert main(["index", str(root / "a"), "--dataset", "wikipedia", "--split", "test", "--modality", "image",
                 "--out", str(root / "image-a")]) == 0
    return root


def test_a_further_index_built_with_another_model_is_named_in_a_warning(two_models, capsys, monkeypatch):
    """Every --index is searched with the one model served: one built with another model (of the
    same width, so nothing else notices) gives scores that mean nothing, and serve says so, as
    it does when --model is not the first index's model."""
    root = two_models
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(app))
    capsys.readouterr()
    code, _, err = run(capsys, "serve", "--index", root / "image-a", "--index", root / "text-a", "--port", "0")
    assert code == 0 and len(served) == 1 and "warning" not in err
    code, _, err = run(capsys, "serve", "--index", root / "image-a", "--index", root / "text-b", "--port", "0")
    assert code == 0 and len(served) == 2
    assert err.strip() == (f"warning: --index {root / 'text-b'} was built with the model {root / 'b'}, not "
                           f"{root / 'a'}, the one served; its scores mean something only if both embed into "
                           "the same space")


def test_a_further_index_whose_model_was_saved_again_is_refused(tmp_path, capsys, monkeypatch):
    """The model served, saved again after a further index was built with it, no longer gives
    that index's vectors: refused as it is for the first index."""
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("the server started"))
    model = tmp_path / "m"
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "5", "--out", str(model)]) == 0
    assert main(["index", str(model), "--dataset", "wikipedia", "--split", "test", "--modality", "text",
                 "--out", str(tmp_path / "text")]) == 0
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "4", "--out", str(model)]) == 0
    assert main(["index", str(model), "--dataset", "wikipedia", "--split", "test", "--modality", "image",
                 "--out", str(tmp_path / "image")]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "serve", "--index", tmp_path / "image", "--index", tmp_path / "text", "--port", "0")
    assert code == 2 and "search page" not in out
    assert err.strip() == (f"error: --model/--index: the model at {str(model)!r} was saved again after this index "
                           "was built, so its vectors no longer match the index's; build the index again with "
                           "'jointspace index', or pass the model it was built with as --model RUN_DIR")


def test_port_0_serves_on_a_free_port_and_announces_that_one(two_models, capsys, monkeypatch):
    root = two_models
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(kw))
    capsys.readouterr()
    code, out, _ = run(capsys, "serve", "--index", root / "image-a", "--port", "0")
    port = served[0]["port"]
    assert code == 0 and 1024 <= port <= 65535
    assert f"jointspace search page: http://127.0.0.1:{port}/  (API docs: http://127.0.0.1:{port}/docs)" in out


def test_a_model_saved_again_while_the_server_loads_is_refused(two_models, tmp_path, capsys, monkeypatch):
    """A fit that saves another model of the same width into the model folder while serve loads
    its indexes would have the index searched with that model, the check already passed."""
    import jointspace.models.base as base

    model = tmp_path / "a"
    shutil.copytree(two_models / "a", model)
    assert main(["index", str(model), "--dataset", "wikipedia", "--split", "test", "--modality", "text",
                 "--out", str(tmp_path / "text")]) == 0
    other = tmp_path / "other"   # of the same width, fitted on other pairs
    assert main(["fit", "wikipedia", "--model", "cca", "--n-components", "5", "--split", "test", "--param",
                 "weight=1.0", "--out", str(other)]) == 0
    load, saved = base.load_model, []

    def load_after_a_fit(path):
        if not saved:
            saved.append(load(other).save(model))
        return load(path)

    monkeypatch.setattr(base, "load_model", load_after_a_fit)
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("the server started"))
    capsys.readouterr()
    code, out, err = run(capsys, "serve", "--index", tmp_path / "text", "--port", "0")
    assert saved and code == 2 and "search page" not in out
    assert "was saved again after this index was built" in err


@pytest.mark.parametrize("option", ["--index", "--model"])
def test_an_empty_index_or_model_folder_is_refused_naming_it(two_models, capsys, monkeypatch, option):
    """'' is no folder: not the current folder (--index), nor the index's own model (--model)."""
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("the server started"))
    capsys.readouterr()
    argv = ["--index", ""] if option == "--index" else ["--index", two_models / "image-a", "--model", ""]
    code, out, err = run(capsys, "serve", *argv, "--port", "0")
    what = "an index folder" if option == "--index" else "a saved model folder"
    assert code == 2 and out == "" and err.strip() == f"error: {option}: expected {what}, got ''"


def test_an_index_without_items_is_refused(two_models, tmp_path, capsys, monkeypatch):
    """Served, it answered every query with no results, as if nothing matched."""
    from jointspace.index.faiss_index import Index

    monkeypatch.setattr("uvicorn.run", lambda app, **kw: pytest.fail("the server started"))
    empty = Index(dim=5)
    empty.info.update(model=str(two_models / "a"), modality="text")
    empty.save(tmp_path / "empty")
    capsys.readouterr()
    code, out, err = run(capsys, "serve", "--index", two_models / "image-a", "--index", tmp_path / "empty",
                         "--port", "0")
    assert code == 2 and "search page" not in out
    assert err.strip() == (f"error: --index: expected an index with items to search, got {str(tmp_path / 'empty')!r} "
                           f"holding none; add some with 'jointspace index {tmp_path / 'empty'} --append --data DATA'")
