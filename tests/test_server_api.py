"""The JSON API over a tiny towered model: text, image and item queries, filters, cache, info."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

import server_support as sup


@pytest.fixture(scope="module")
def client():
    return TestClient(sup.make_app())


@pytest.fixture(scope="module")
def setup():
    return sup.towered_setup()


def test_text_search_answers_the_documented_shape_and_finds_the_colour(client):
    r = client.get("/api/search", params={"text": "a red square", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"results", "took_ms"} and body["took_ms"] > 0
    assert len(body["results"]) == 5
    for res in body["results"]:
        assert set(res) >= {"id", "score", "label", "text", "title", "media_url"}
    top = body["results"][0]
    assert top["label"] == "red" and top["text"] == "a red square"
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_scores_are_the_cosines_of_the_model_embeddings(client, setup):
    from jointspace.models.base import load_model

    model = load_model(setup["model"])
    q = model.encode("text", ["a green disc"])[0]
    imgs = model.encode("image", setup["paths"])
    cos = imgs @ q
    want = np.argsort(-cos)[:4]
    res = client.get("/api/search", params={"text": "a green disc", "k": 4}).json()["results"]
    assert [r["id"] for r in res] == want.tolist()
    assert np.allclose([r["score"] for r in res], cos[want], atol=1e-4)


def test_label_filter_keeps_only_that_label(client):
    res = client.get("/api/search", params={"text": "a red square", "k": 3, "label": "blue"}).json()["results"]
    assert len(res) == 3 and {r["label"] for r in res} == {"blue"}
    r = client.get("/api/search", params={"text": "a red square", "label": "no-such-label"})
    assert r.status_code == 422 and "no-such-label" in r.json()["detail"]


def test_label_filter_finds_items_an_approximate_index_does_not_reach(tmp_path, setup):
    # IVF with nprobe=1 visits one list: asking for every item still misses the other lists,
    # so the label's items are scored exhaustively instead.
    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.pairs import Pairs
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model

    model = load_model(setup["model"])
    z = model.encode("image", setup["paths"])
    names = list(sup.COLOURS)
    pairs = Pairs({"image": setup["paths"], "text": setup["texts"]},
                  labels=np.array([names.index(lab) for lab in setup["labels"]]), label_names=names)
    index = Index.build(z, spec="IVF4,Flat", metadata=item_metadata(pairs, "image"), search_params={"nprobe": 1})
    query = model.encode("text", ["a red square"])
    reached = set(index.search(query, k=40)[1][0].tolist()) - {-1}
    blue = [i for i, lab in enumerate(setup["labels"]) if lab == "blue"]
    assert not set(blue) <= reached             # the approximate search alone misses some
    index.info.update({"model": str(setup["model"]), "modality": "image"})
    index.save(tmp_path / "ivf")
    from jointspace.server.app import create_app

    res = TestClient(create_app([tmp_path / "ivf"], setup["model"])).get(
        "/api/search", params={"text": "a red square", "k": 10, "label": "blue"}).json()["results"]
    cos = z[blue] @ query[0]
    assert [r["id"] for r in res] == [blue[j] for j in np.argsort(-cos)]
    np.testing.assert_allclose([r["score"] for r in res], np.sort(cos)[::-1], atol=1e-5)


def test_more_like_this_on_an_ivf_fast_scan_index_re_embeds_the_item(tmp_path, setup):
    """FAISS cannot read a vector back from an IVF fast-scan index loaded from disk (it crashes
    the process): the item is embedded again from its file, and the label filter, which reads
    stored vectors too, scores a label's items by visiting every list instead."""
    from jointspace.cli.commands.index import item_metadata
    from jointspace.data.pairs import Pairs
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model
    from jointspace.server.app import create_app

    model = load_model(setup["model"])
    names = list(sup.COLOURS)
    pairs = Pairs({"image": setup["paths"], "text": setup["texts"]},
                  labels=np.array([names.index(lab) for lab in setup["labels"]]), label_names=names)
    index = Index.build(model.encode("image", setup["paths"]), spec="IVF2,PQ4x4fs",
                        metadata=item_metadata(pairs, "image"), search_params={"nprobe": 1})
    index.info.update({"model": str(setup["model"]), "modality": "image"})
    index.save(tmp_path / "fs")
    c = TestClient(create_app([tmp_path / "fs"], setup["model"]))
    scores, ids = Index.load(tmp_path / "fs").search(model.encode("image", [setup["paths"][6]]), k=4)
    keep = ids[0] != 6
    for r in (c.get("/api/items/6/similar", params={"k": 3}), c.post("/api/search", json={"item": 6, "k": 3})):
        assert r.status_code == 200, r.text
        assert [x["id"] for x in r.json()["results"]] == ids[0][keep][:3].tolist()
        np.testing.assert_allclose([x["score"] for x in r.json()["results"]], scores[0][keep][:3], atol=1e-5)
    # one list of two is searched (nprobe=1); a label's items in the other are found all the same
    query = model.encode("text", ["a red square"])
    scores, ids = Index.load(tmp_path / "fs").search(query, k=40, params={"nprobe": 2})
    reached = set(Index.load(tmp_path / "fs").search(query, k=40)[1][0].tolist())
    for colour in sup.COLOURS:
        mine = np.isin(ids[0], [i for i, lab in enumerate(setup["labels"]) if lab == colour])
        r = c.get("/api/search", params={"text": "a red square", "k": 10, "label": colour})
        assert r.status_code == 200 and sorted(x["id"] for x in r.json()["results"]) == sorted(ids[0][mine]), colour
        # ties (equal codes) in any order
        np.testing.assert_allclose([x["score"] for x in r.json()["results"]], scores[0][mine], atol=1e-5)
    assert len(reached - {-1}) < 40 and c.get("/api/health").status_code == 200


def test_results_in_another_modality(client):
    res = client.get("/api/search", params={"text": "a cyan disc", "k": 2, "modality": "text"}).json()["results"]
    assert [r["text"] for r in res] == ["a cyan disc", "a cyan disc"]
    assert all(r["media_url"] is None for r in res)
    r = client.get("/api/search", params={"text": "x", "modality": "audio"})
    assert r.status_code == 422 and "audio" in r.json()["detail"]


def test_repeated_text_uses_the_cache(client):
    first = client.get("/api/search", params={"text": "a pink disc unique-1"}).json()
    again = client.get("/api/search", params={"text": "a pink disc unique-1"}).json()
    assert first["timings"]["cached"] is False and again["timings"]["cached"] is True
    assert [r["id"] for r in first["results"]] == [r["id"] for r in again["results"]]
    uncached = client.get("/api/search", params={"text": "a pink disc unique-1", "cache": "false"}).json()
    assert uncached["timings"]["cached"] is False


def test_image_upload_query_finds_the_same_colour(client):
    data = sup.png_bytes(sup.draw(sup.COLOURS["blue"], "disc", seed=99))
    r = client.post("/api/search", files={"file": ("query.png", data, "image/png")}, data={"k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["modality"] == "image" and len(body["results"]) == 4
    assert body["results"][0]["label"] == "blue"


def test_json_body_search_by_text_and_item(client):
    r = client.post("/api/search", json={"text": "a yellow square", "k": 2})
    assert r.status_code == 200 and r.json()["results"][0]["label"] == "yellow"
    r = client.post("/api/search", json={"item": 0, "k": 3})
    assert r.status_code == 200 and 0 not in [x["id"] for x in r.json()["results"]]


def test_more_like_this_excludes_the_item_and_matches_its_vector(client, setup):
    from jointspace.models.base import load_model

    r = client.get("/api/items/4/similar", params={"k": 3})
    assert r.status_code == 200
    res = r.json()["results"]
    assert 4 not in [x["id"] for x in res] and len(res) == 3
    model = load_model(setup["model"])
    z = model.encode("image", setup["paths"])
    cos = z @ z[4]
    cos[4] = -np.inf
    assert [x["id"] for x in res] == np.argsort(-cos)[:3].tolist()
    r = client.get("/api/items/4/similar", params={"k": 2, "target": "text"})
    assert r.status_code == 200 and all(x["modality"] == "text" for x in r.json()["results"])


def test_item_details_media_info_health_docs(client, setup):
    item = client.get("/api/items/2").json()
    assert item["id"] == 2 and item["label"] == "red" and item["media_url"].startswith("/api/items/2/media")
    assert item["file"] == "red_disc_0.png" and "path" not in item     # no server paths in answers
    assert str(setup["root"]) not in client.get("/api/info").text
    media = client.get(item["media_url"])
    assert media.status_code == 200 and media.headers["content-type"] == "image/png"
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(media.content)).size == (48, 48)
    info = client.get("/api/info").json()
    assert info["indexes"]["image"]["ntotal"] == 40 and info["model"]["raw_query_modalities"] == ["image", "text"]
    assert info["model"]["name"] == "towers"
    assert info["model"]["display_name"] == "rcca over efficientnet-lite0 + minilm"
    assert client.get("/api/health").json()["status"] == "ok"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text   # no CDN
    assert "cdn." not in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/search" in spec["paths"] and "/api/items/{id}/similar" in spec["paths"]
    for path in ("/api/search", "/api/items/{id}/similar"):
        k = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "k")
        assert k["schema"]["type"] == "integer" and k["schema"]["default"] == 10 and k["schema"]["maximum"] == 1000
    assert client.get("/api/labels").json()["labels"] == sorted(sup.COLOURS)
    assert client.get("/api/items/9999").status_code == 404
    # every JSON body the server takes, the published schema takes (and one it refuses, the schema refuses)
    import jsonschema

    body = spec["paths"]["/api/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for query, status in (({"text": "red", "target": None}, 200), ({"text": "red", "target": "image"}, 422),
                          ({"item": 0, "target": None}, 200), ({"text": "red", "k": 3, "label": None}, 200)):
        assert client.post("/api/search", json=query).status_code == status, query
        assert jsonschema.Draft202012Validator(body).is_valid(query) == (status == 200), query


def test_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    # uptime checks and link checkers ask with HEAD
    assert client.head("/").status_code == 200 and client.head("/api/health").status_code == 200
    for url in ("/api/items/0/media", "/api/search?text=red", "/api/items/0", "/api/labels", "/api/info", "/docs"):
        r = client.head(url)   # every GET route, as its 405's Allow says
        assert r.status_code == 200 and r.content == b"", url
    assert set(client.put("/docs").headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_page_declares_an_icon_that_is_served(client):
    """A browser asks for the page's icon on every load (``/favicon.ico`` unless the page names
    one); a 404 there is a console error."""
    import re
    from xml.etree import ElementTree

    links = re.findall(r"<link\b[^>]*>", client.get("/").text)
    icons = [link for link in links if re.search(r'\brel="(shortcut )?icon"', link)]
    assert len(icons) == 1, links
    href = re.search(r'\bhref="([^"]+)"', icons[0]).group(1)
    r = client.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert ElementTree.fromstring(r.content).tag == "{http://www.w3.org/2000/svg}svg"
    # pages that name no icon (the API's /docs, a JSON document) leave the browser at /favicon.ico
    ico = client.get("/favicon.ico")
    assert ico.status_code == 200 and ico.headers["content-type"].startswith("image/svg+xml")
    assert ico.content == r.content


def test_feature_model_serves_items_but_refuses_raw_text(tmp_path):
    """A CCA model over Wikipedia feature vectors: no towers, so no raw text queries."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=8).fit(pairs)
    model.save(tmp_path / "m")
    labels = [pairs.label_names[int(v)] for v in pairs.labels]
    index = Index.build(model.encode("image", pairs["image"]), spec="Flat", metadata={"label": labels})
    index.info.update({"model": str(tmp_path / "m"), "modality": "image"})
    index.save(tmp_path / "idx")
    c = TestClient(create_app(tmp_path / "idx"))
    r = c.get("/api/search", params={"text": "a castle"})
    nothing_raw = ("embeds no raw queries (its items are feature vectors): search by an item id, 'item' in a "
                   "JSON body or /api/items/{id}/similar")
    assert r.status_code == 422
    assert r.json()["detail"] == f"text: this model cannot embed a raw text query; it {nothing_raw}"
    r = c.post("/api/search", files={"file": ("q.png", sup.png_bytes(sup.draw((1, 2, 3), "disc")), "image/png")})
    assert r.status_code == 415 and r.json()["detail"] == f"file 'q.png' is an image file, but this model {nothing_raw}"
    r = c.get("/api/items/5/similar", params={"k": 5})
    assert r.status_code == 200 and len(r.json()["results"]) == 5
    assert r.json()["results"][0]["media_url"] is None
    assert c.get("/api/items/5/media").status_code == 404


def test_more_like_this_on_a_compressed_index_queries_by_the_exact_vector_it_keeps(tmp_path):
    """An on-disk IVF-PQ index keeps the exact vectors for re-ranking: an item's own vector is
    that one, not its PQ code decoded, so the scores are the exact cosines."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.ondisk import build_on_disk
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=8).fit(pairs)
    model.save(tmp_path / "m")
    z = model.encode("image", pairs["image"])
    build_on_disk([z], tmp_path / "idx", spec="IVF2,PQ2", train_size=z.shape[0], search_params={"nprobe": 2},
                  info={"model": str(tmp_path / "m"), "modality": "image"})
    c = TestClient(create_app(tmp_path / "idx"))
    res = c.get("/api/items/5/similar", params={"k": 5}).json()["results"]
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    cos = zn @ zn[5]
    cos[5] = -np.inf
    assert [r["id"] for r in res] == np.argsort(-cos)[:5].tolist()
    np.testing.assert_allclose([r["score"] for r in res], np.sort(cos)[::-1][:5], atol=1e-5)


def test_more_like_this_on_a_sharded_index_reads_the_vector_from_its_shard(tmp_path):
    """A sharded index has no FAISS index of its own: an item's vector is read from the shard
    holding it, so a model of feature vectors (nothing to embed again) finds its neighbours."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.index.sharded import ShardedIndex
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=8).fit(pairs)
    model.save(tmp_path / "m")
    z = model.encode("image", pairs["image"])
    half = len(z) // 2
    index = ShardedIndex([Index.build(z[:half], spec="Flat"),
                          Index.build(z[half:], spec="Flat", ids=range(half, len(z)))])
    index.info.update({"model": str(tmp_path / "m"), "modality": "image"})
    index.save(tmp_path / "idx")
    c = TestClient(create_app(tmp_path / "idx"))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    for item, r in ((5, c.get("/api/items/5/similar", params={"k": 4})),
                    (half + 7, c.post("/api/search", json={"item": half + 7, "k": 4}))):
        assert r.status_code == 200, r.text
        cos = zn @ zn[item]
        cos[item] = -np.inf
        assert [x["id"] for x in r.json()["results"]] == np.argsort(-cos)[:4].tolist()
        np.testing.assert_allclose([x["score"] for x in r.json()["results"]], np.sort(cos)[::-1][:4], atol=1e-5)


def test_info_names_a_collection_file_by_its_name_only(tmp_path):
    """``jointspace index`` records where an own collection was read (its absolute path): the
    API names it as it names item files, by the file name, so no server path reaches a client."""
    from jointspace.data.datasets import load_dataset
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app

    pairs = load_dataset("wikipedia", "test")
    model = create_model("cca", n_components=4).fit(pairs)
    model.save(tmp_path / "m")
    index = Index.build(model.encode("image", pairs["image"][:50]), spec="Flat")
    private = tmp_path / "private" / "holiday photos.csv"
    index.info.update({"model": str(tmp_path / "m"), "modality": "image", "dataset": str(private),
                       "dataset_builtin": False, "split": "all",
                       "appended": [{"dataset": str(tmp_path / "more.jsonl"), "dataset_builtin": False, "added": 3},
                                    {"dataset": "wikipedia", "dataset_builtin": True, "added": 2}]})
    index.save(tmp_path / "idx")
    r = TestClient(create_app(tmp_path / "idx")).get("/api/info")
    info = r.json()["indexes"]["image"]["info"]
    assert info["dataset"] == "holiday photos.csv" and info["split"] == "all"
    assert [a["dataset"] for a in info["appended"]] == ["more.jsonl", "wikipedia"]
    assert str(tmp_path) not in r.text


def test_a_model_reading_text_through_its_default_tower_takes_text_queries(tmp_path):
    """A CLIP-style model fitted on MiniLM features (no towers named) embeds raw texts through
    MiniLM, as its raw_kind says; the service takes text queries for it as the library does."""
    from jointspace.data.pairs import Pairs
    from jointspace.index.faiss_index import Index
    from jointspace.models.base import create_model
    from jointspace.server.app import create_app
    from jointspace.towers import create_tower

    texts = [f"a {c} {s}" for c in ("red", "green", "blue", "black") for s in ("square", "disc", "star")]
    t = create_tower("minilm").embed(texts)
    shape = (t @ np.random.default_rng(0).normal(size=(384, 16))).astype(np.float32)
    model = create_model("clip", dim=8, epochs=2, batch_size=4).fit(Pairs({"text": t, "shape": shape}))
    assert model.raw_kind("text") == "text" and getattr(model, "towers", None) is None
    model.save(tmp_path / "m")
    z = model.encode("shape", shape)
    index = Index.build(z, spec="Flat", metadata={"text": texts})
    index.info.update({"model": str(tmp_path / "m"), "modality": "shape"})
    index.save(tmp_path / "idx")
    c = TestClient(create_app(tmp_path / "idx"))
    assert c.get("/api/info").json()["model"]["raw_query_modalities"] == ["text"]
    r = c.get("/api/search", params={"text": "a red square", "k": 3})
    assert r.status_code == 200, r.text
    cos = z @ model.encode("text", ["a red square"])[0]
    assert [x["id"] for x in r.json()["results"]] == np.argsort(-cos)[:3].tolist()
    np.testing.assert_allclose([x["score"] for x in r.json()["results"]], np.sort(cos)[::-1][:3], atol=1e-5)


def test_about_panel_plots_are_listed_and_served(tmp_path):
    from jointspace.viz.curves import plot_curves

    (tmp_path / "metrics.csv").write_text("step,loss\n1,2.0\n2,1.0\n")
    plot_curves(tmp_path, tmp_path / "plots" / "curves.png")
    c = TestClient(sup.make_app(plots_dir=tmp_path / "plots"))
    assert c.get("/api/info").json()["plots"] == ["curves"]
    r = c.get("/api/plots/curves.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    r = c.get("/api/plots/map.png")
    assert r.status_code == 404 and "jointspace plot map" in r.json()["detail"]


def test_plots_folder_under_the_home_folder(tmp_path, monkeypatch):
    # `serve --plots=~/plots` reaches the server unexpanded (no shell expands ~ after '='), and is checked expanded
    import shutil

    sup.engine()   # loaded first: the towers' ONNX exports are cached under the real home folder
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "plots").mkdir()
    shutil.copyfile(sup.towered_setup()["paths"][0], tmp_path / "plots" / "map.png")
    c = TestClient(sup.make_app(plots_dir="~/plots"))
    assert c.get("/api/info").json()["plots"] == ["map"]
    r = c.get("/api/plots/map.png")
    assert r.status_code == 200 and r.content == (tmp_path / "plots" / "map.png").read_bytes()


@pytest.fixture(scope="module")
def audio_client():
    from jointspace.server.app import create_app

    s = sup.audio_setup()
    return TestClient(create_app(s["index"]))


@pytest.mark.parametrize("pitch", ["low", "high"])
def test_audio_upload_finds_the_same_pitch(audio_client, pitch):
    data = sup.wav_bytes(sup.tone(sup.PITCHES[pitch], seed=123))
    r = audio_client.post("/api/search", files={"file": ("clip.wav", data, "audio/wav")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["modality"] == "audio"
    assert [x["label"] for x in body["results"]] == [pitch] * 3
    media = audio_client.get(body["results"][0]["media_url"])
    assert media.status_code == 200 and media.headers["content-type"] == "audio/wav"


def test_audio_upload_resampled_long_and_corrupt(audio_client):
    y = sup.tone(sup.PITCHES["middle"], seed=5, sr=44100)
    r = audio_client.post("/api/search", files={"file": ("44k.wav", sup.wav_bytes(y, 44100), "audio/wav")})
    assert r.status_code == 200 and r.json()["results"][0]["label"] == "middle"
    long = sup.wav_bytes(np.zeros(16000 * 61, np.float32))
    r = audio_client.post("/api/search", files={"file": ("long.wav", long, "audio/wav")})
    assert r.status_code == 413 and "61.0 s" in r.json()["detail"]
    bad = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20
    r = audio_client.post("/api/search", files={"file": ("bad.wav", bad, "audio/wav")})
    assert r.status_code == 415 and "bad.wav" in r.json()["detail"]
    png = sup.png_bytes(sup.draw((1, 2, 3), "disc"))
    r = audio_client.post("/api/search", files={"file": ("pic.png", png, "image/png")})
    assert r.status_code == 415 and "embeds only audio, text" in r.json()["detail"]
    assert audio_client.get("/api/health").json()["status"] == "ok"


def test_audio_upload_whose_header_leaves_its_length_out(audio_client):
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, sup.tone(sup.PITCHES["middle"], seed=5), 16000, format="FLAC")
    data = bytearray(buf.getvalue())
    # STREAMINFO (after "fLaC" and its 4-byte block header): total samples 0 means "unknown", as a stream writes it
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = fields.to_bytes(8, "big")
    r = audio_client.post("/api/search", files={"file": ("stream.flac", bytes(data), "audio/flac")})
    assert r.status_code == 415, r.text
    assert r.json()["detail"] == ("file 'stream.flac': its header does not say how long the sound is (as a stream "
                                  "writes it); save it again with its length, or as WAV")


def test_item_details_name_every_copy_by_its_file_name_only(client, monkeypatch):
    """An index built from a folder records every path of an item's content (``extra.paths``):
    the service answers with their file names, never the server's folders."""
    engine = client.app.state.engine
    real = engine.item

    def with_copies(modality, item_id):
        meta = dict(real(modality, item_id))
        meta["extra"] = {**(meta.get("extra") or {}), "paths": ["/srv/private/a/b.png", "/srv/other/c.png"]}
        return meta

    monkeypatch.setattr(engine, "item", with_copies)
    r = client.get("/api/items/2")
    assert r.status_code == 200 and r.json()["extra"]["paths"] == ["b.png", "c.png"] and "/srv/" not in r.text


def test_audio_upload_of_an_aiff_file_is_accepted_and_in_the_schema(audio_client):
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, sup.tone(sup.PITCHES["high"], seed=7), 16000, format="AIFF")
    r = audio_client.post("/api/search", files={"file": ("clip.aiff", buf.getvalue(), "audio/aiff")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    assert [x["label"] for x in r.json()["results"]] == ["high"] * 3
    body = audio_client.get("/openapi.json").json()["paths"]["/api/search"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]
    assert "audio/aiff" in form["encoding"]["file"]["contentType"].split(", ")
    assert "AIFF" in form["schema"]["properties"]["file"]["description"]


def test_audio_upload_of_an_mp3_file_is_a_sound_query(audio_client, tmp_path):
    """The audio tower reads MP3 and a folder's .mp3 sounds are indexed: an MP3 upload, known by
    its first bytes, is searched as the library searches that file."""
    import soundfile as sf

    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model

    s = sup.audio_setup()
    sf.write(tmp_path / "clip.mp3", sup.tone(sup.PITCHES["low"], seed=7), 16000, format="MP3")
    data = (tmp_path / "clip.mp3").read_bytes()
    r = audio_client.post("/api/search", files={"file": ("clip.mp3", data, "audio/mpeg")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    scores, ids = Index.load(s["index"]).search(load_model(s["model"]).encode("audio", [tmp_path / "clip.mp3"]), k=3)
    assert [x["id"] for x in r.json()["results"]] == ids[0].tolist() and r.json()["results"][0]["label"] == "low"
    np.testing.assert_allclose([x["score"] for x in r.json()["results"]], scores[0], atol=1e-5)
    form = audio_client.get("/openapi.json").json()["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert "audio/mpeg" in form["multipart/form-data"]["encoding"]["file"]["contentType"].split(", ")
