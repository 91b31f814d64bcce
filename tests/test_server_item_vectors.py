"""Reading an indexed item's vector back for "more like this", whatever ids the index holds."""

import numpy as np
from fastapi.testclient import TestClient

import server_support as sup


def test_more_like_this_on_an_ivf_index_whose_ids_are_not_0_to_n(tmp_path):
    """FAISS's array id map takes only the ids 0 .. n-1: an IVF index built with other ids, or
    with an item removed (as ``index --append`` removes an edited file's), still reads its
    items' vectors back, so a model of feature vectors (nothing to embed again) finds neighbours."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=8).fit(pairs)
    model.save(tmp_path / "m")
    z = model.encode("image", pairs["image"])
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    for name, first, removed in (("offset", 5000, None), ("removed", 0, 3)):
        index = Index.build(z, spec="IVF4,Flat", ids=range(first, first + len(z)), search_params={"nprobe": 4})
        if removed is not None:
            index.remove([removed])
        index.info.update({"model": str(tmp_path / "m"), "modality": "image"})
        index.save(tmp_path / name)
        c = TestClient(create_app(tmp_path / name))
        r = c.get(f"/api/items/{first + 7}/similar", params={"k": 4})
        assert r.status_code == 200, (name, r.text)
        cos = zn @ zn[7]
        cos[[7] + ([removed - first] if removed is not None else [])] = -np.inf
        assert [x["id"] - first for x in r.json()["results"]] == np.argsort(-cos)[:4].tolist(), name
        np.testing.assert_allclose([x["score"] for x in r.json()["results"]], np.sort(cos)[::-1][:4], atol=1e-5)


def test_an_item_whose_file_has_gone_is_not_found_and_named_by_its_file_name(tmp_path):
    """An index FAISS cannot read vectors back from (IVF fast-scan) embeds the item's file
    again: a file gone from the server is the server's matter (404, as for its media), named
    by its file name only, never the client's (422) nor with the server's folders."""
    import shutil

    import server_support as sup
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model
    from jointspace.server.app import create_app

    setup = sup.towered_setup()
    paths = []
    for p in setup["paths"]:
        paths.append(str(shutil.copy(p, tmp_path / ("private-" + p.rsplit("/", 1)[-1]))))
    model = load_model(setup["model"])
    index = Index.build(model.encode("image", paths), spec="IVF2,PQ4x4fs", metadata={"path": paths})
    index.info.update({"model": str(setup["model"]), "modality": "image"})
    index.save(tmp_path / "fs")
    c = TestClient(create_app([tmp_path / "fs"], setup["model"]))
    assert c.get("/api/items/4/similar", params={"k": 2}).status_code == 200
    (tmp_path / "private-green_square_0.png").unlink()
    gone = paths.index(str(tmp_path / "private-green_square_0.png"))
    for r in (c.get(f"/api/items/{gone}/similar", params={"k": 2}), c.post("/api/search", json={"item": gone})):
        assert r.status_code == 404, r.text
        assert r.json()["detail"] == (f"item {gone}: its file private-green_square_0.png cannot be read on the "
                                      "server to embed it again (file 'private-green_square_0.png' does not exist)")


def test_an_item_that_can_neither_be_read_back_nor_embedded_again_is_refused_without_a_traceback(tmp_path, caplog):
    """An IVF fast-scan index keeps no vectors to read back, and a model of feature vectors
    embeds no files: "more like this" cannot be answered there.  That is a limit of what the
    server holds, said as a refused request (422, as for a query the model cannot embed), not
    a server error with a traceback logged on every click."""
    import logging

    from jointspace.server.app import create_app

    sup.feature_model_index(tmp_path, spec="IVF2,PQ4x4fs")
    c = TestClient(create_app(tmp_path / "idx"), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO):
        answers = [c.get("/api/items/5/similar", params={"k": 2}), c.post("/api/search", json={"item": 5})]
    for r in answers:
        assert r.status_code == 422, r.text
        assert r.json() == {"detail": "item 5: its vector cannot be read back from this index (IVF2,PQ4x4fs) "
                                      "nor re-embedded"}
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR], caplog.text
