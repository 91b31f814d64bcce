"""What create_app refuses before it serves: a model folder saved again since an index was built
with it, limits out of range."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

import server_support as sup
from jointspace.errors import InputError
from jointspace.index.faiss_index import Index
from jointspace.models.base import create_model, saved_model_digest
from jointspace.server.app import create_app


@pytest.fixture()
def built(tmp_path):
    """A model, an index of its test images recording the model's digest (as 'jointspace
    index' does), and the test pairs."""
    pairs, _ = sup.feature_model_index(tmp_path)
    index = Index.load(tmp_path / "idx")
    index.info["model_sha256"] = saved_model_digest(tmp_path / "m")
    index.save(tmp_path / "idx")
    return tmp_path, pairs


def test_an_unchanged_model_is_served_and_scores_are_its_cosines(built):
    folder, pairs = built
    client = TestClient(create_app(folder / "idx"))
    got = client.get("/api/items/3/similar", params={"k": 3}).json()["results"]
    from jointspace.models.base import load_model

    vecs = load_model(folder / "m").encode("image", pairs["image"])
    cos = vecs @ vecs[3]
    cos[3] = -np.inf
    want = np.argsort(-cos)[:3]
    assert [r["id"] for r in got] == want.tolist()
    np.testing.assert_allclose([r["score"] for r in got], cos[want], atol=1e-5)


def test_a_model_saved_again_since_the_index_was_built_is_refused(built):
    """Another model of the same width saved into the folder: the index's vectors are not its
    vectors, and nothing else (the width) tells them apart."""
    folder, pairs = built
    create_model("cca", n_components=8).fit(pairs.subset(np.arange(0, len(pairs), 2))).save(folder / "m")
    with pytest.raises(InputError) as err:
        create_app(folder / "idx")
    assert str(err.value) == (f"index: {folder / 'idx'}: the model at {str(folder / 'm')!r} was saved again after "
                              "this index was built, so its vectors no longer match the index's; build the index "
                              "again with 'jointspace index', or pass the model it was built with")
    with pytest.raises(InputError, match="was saved again after this index was built"):
        create_app(folder / "idx", folder / "m")   # the same folder, named


@pytest.mark.parametrize("option, value, message", [
    ("max_k", 0, "max_k: expected an integer >= 1, got 0"),
    ("max_k", 2.5, "max_k: expected an integer, got 2.5"),
    ("cache_size", -1, "cache_size: expected an integer >= 0, got -1"),
    ("max_batch", 0, "max_batch: expected an integer >= 1, got 0"),
    ("max_upload_bytes", 0, "max_upload_bytes: expected an integer >= 1, got 0"),
    ("max_pixels", "big", "max_pixels: expected an integer, got 'big'"),
])
def test_create_app_refuses_limits_out_of_range_naming_them(built, option, value, message):
    """max_k=0 made a service refusing every k ('k: expected an integer from 1 to 0'), and
    max_k=2.5 was cut to 2 without a word."""
    folder, _ = built
    with pytest.raises(InputError) as err:
        create_app(folder / "idx", **{option: value})
    assert str(err.value) == message
