"""The label filter's message: the labels listed in order, or none to list."""

import pytest
from fastapi.testclient import TestClient

import server_support as sup
from jointspace.server.app import create_app


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    sup.feature_model_index(folder)   # an index of vectors alone: no item carries a label
    return folder


def test_a_label_on_a_server_whose_items_have_none_is_refused_saying_so(folder):
    client = TestClient(create_app(folder / "idx"))
    assert client.get("/api/labels").json() == {"labels": []}
    r = client.post("/api/search", json={"item": 3, "label": "art"})
    assert r.status_code == 422
    assert r.json()["detail"] == "label: expected nothing, as no item of this server has a label, got 'art'"
    r = client.get("/api/items/3/similar", params={"label": "art"})
    assert r.status_code == 422 and r.json()["detail"].startswith("label: expected nothing, as no item")
    assert client.get("/api/items/3/similar", params={"label": "", "k": 2}).status_code == 200


def test_the_labels_a_refused_label_is_told_are_listed_in_order(folder):
    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model

    pairs = load_dataset("wikipedia", "test")
    model = load_model(folder / "m")
    index = Index.build(model.encode("image", pairs["image"]), spec="Flat", metadata=item_metadata(pairs, "image"))
    index.info.update({"model": str(folder / "m"), "modality": "image"})
    index.save(folder / "labelled")
    client = TestClient(create_app(folder / "labelled"))
    r = client.post("/api/search", json={"item": 3, "label": "arts"})
    names = sorted(pairs.label_names)
    assert r.status_code == 422
    assert r.json()["detail"] == ("label: expected a label of this server's items ("
                                  + ", ".join(map(repr, names)) + ") or nothing, got 'arts'")
