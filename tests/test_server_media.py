"""Media of indexed items: rendered images kept in memory within limits, files that cannot be
shown named by their file name only."""

import pytest
from fastapi.testclient import TestClient

import server_support as sup


@pytest.fixture(scope="module")
def client():
    return TestClient(sup.make_app(), raise_server_exceptions=False)


def test_media_kept_in_memory_stays_within_its_byte_limit(client, monkeypatch):
    from collections import OrderedDict

    from jointspace.server import media

    monkeypatch.setattr(media, "_cache", OrderedDict())
    monkeypatch.setattr(media, "_cached_bytes", 0, raising=False)
    monkeypatch.setattr(media, "_MAX_CACHED_BYTES", 2000, raising=False)
    sizes = []
    for item in range(12):
        r = client.get(f"/api/items/{item}/media", params={"full": "true"})
        assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
        sizes.append(len(r.content))
    kept = sum(len(v) for v in media._cache.values())
    assert sum(sizes) > 2000 and 0 < kept <= 2000 and kept == media._cached_bytes
    again = client.get("/api/items/11/media", params={"full": "true"})   # the latest is kept and served again
    assert again.content == r.content and media._cached_bytes == kept


def test_an_indexed_svg_that_cannot_be_drawn_is_named_by_its_file_name(client, tmp_path, monkeypatch):
    svg = tmp_path / "private" / "broken.svg"
    svg.parent.mkdir()
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><rect width=")
    monkeypatch.setattr(client.app.state.engine, "media_path", lambda modality, item_id: svg)
    r = client.get("/api/items/0/media")
    assert r.status_code == 404, r.text
    assert r.json()["detail"].startswith("media: the image broken.svg cannot be shown (cannot render the SVG")
    assert str(tmp_path) not in r.text


def test_an_indexed_image_that_cannot_be_decoded_is_named_by_its_file_name(client, tmp_path, monkeypatch):
    broken = tmp_path / "private" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    monkeypatch.setattr(client.app.state.engine, "media_path", lambda modality, item_id: broken)
    r = client.get("/api/items/0/media", params={"full": "true"})
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == ("media: the image broken.png cannot be shown (file 'broken.png' has an image "
                                  "header but cannot be decoded (truncated or corrupt: cannot identify image file "
                                  "'broken.png'))")


def test_an_image_waiting_too_long_for_a_decode_slot_is_429_not_404(client, monkeypatch):
    """Every decode slot busy is a moment's wait (429, as for an upload), not a missing image."""
    import threading
    from collections import OrderedDict

    from jointspace.server import media, uploads

    monkeypatch.setattr(media, "_cache", OrderedDict())
    monkeypatch.setattr(uploads, "_decode_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(uploads, "SLOT_WAIT_S", 0.05)
    uploads._decode_slots.acquire()                       # a decode already running
    try:
        r = client.get("/api/items/3/media")
    finally:
        uploads._decode_slots.release()
    assert r.status_code == 429 and "try again" in r.json()["detail"], r.text
    spec = client.get("/openapi.json").json()
    assert "429" in spec["paths"]["/api/items/{id}/media"]["get"]["responses"]
    assert client.get("/api/items/3/media").status_code == 200


def test_an_indexed_aiff_sound_is_served_as_a_sound(tmp_path):
    """A manifest may name .aiff sounds (or sounds of any suffix): their media is the sound file,
    with its type read from the suffix or the file's first bytes, not a failed attempt at a picture."""
    import soundfile as sf

    from jointspace.index.faiss_index import Index
    from jointspace.models.base import load_model
    from jointspace.server.app import create_app

    setup = sup.audio_setup()
    paths = []
    for i, name in enumerate(("a.aiff", "b.aif", "c.sound")):
        sf.write(tmp_path / name, sup.tone(220.0 * (i + 1), seed=i), 16000, format="AIFF")
        paths.append(str(tmp_path / name))
    model = load_model(setup["model"])
    index = Index.build(model.encode("audio", paths), spec="Flat", metadata={"path": paths})
    index.info.update({"model": str(setup["model"]), "modality": "audio"})
    index.save(tmp_path / "idx")
    c = TestClient(create_app(tmp_path / "idx"))
    for i, path in enumerate(paths):
        r = c.get(f"/api/items/{i}/media")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/aiff" and r.content == open(path, "rb").read()
    spec = c.get("/openapi.json").json()
    assert "audio/aiff" in spec["paths"]["/api/items/{id}/media"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("given, status", [("bytes=abc", 400), ("items=0-1", 400), ("bytes=5-1", 400),
                                           ("bytes=100000000-", 416)])
def test_a_range_of_a_sound_it_cannot_serve_is_refused_in_json(given, status):
    """A player asks for a sound in byte ranges (206); a Range header refused is answered in JSON
    naming the header, as the API description says of every error, not in plain text."""
    from jointspace.server.app import create_app

    setup = sup.audio_setup()
    c = TestClient(create_app(setup["index"]))
    whole = open(setup["paths"][0], "rb").read()
    r = c.get("/api/items/0/media", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == whole[10:20]
    r = c.get("/api/items/0/media", headers={"Range": given})
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert r.json()["detail"] == (f"Range header: expected bytes=FIRST-LAST, FIRST- or -SUFFIX within the "
                                  f"{len(whole):,} bytes of the sound, got {given!r}"
                                  + (" (it starts past the end)" if status == 416 else ""))
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{len(whole)}"
    spec = c.get("/openapi.json").json()["paths"]["/api/items/{id}/media"]["get"]["responses"]
    assert {"206", str(status)} <= set(spec) and "audio/wav" in spec["206"]["content"]


def test_few_images_are_drawn_at_once(client, monkeypatch):
    """A full-size rendering holds several copies of the pixels from decoding to PNG: requests
    arriving together are drawn a few at a time, not all at once."""
    import threading
    import time
    from collections import OrderedDict
    from concurrent.futures import ThreadPoolExecutor

    import jointspace.towers.inputs as inputs
    from jointspace.server import media, uploads

    monkeypatch.setattr(media, "_cache", OrderedDict())
    drawing, most, lock = [0], [0], threading.Lock()
    real = inputs.load_image

    def slow_load_image(*args, **kwargs):   # as a 12-megapixel photo takes a while
        with lock:
            drawing[0] += 1
            most[0] = max(most[0], drawing[0])
        try:
            time.sleep(0.1)
            return real(*args, **kwargs)
        finally:
            with lock:
                drawing[0] -= 1

    monkeypatch.setattr(inputs, "load_image", slow_load_image)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: client.get(f"/api/items/{i}/media", params={"full": "true"}), range(6)))
    assert [r.status_code for r in answers] == [200] * 6
    assert 1 <= most[0] <= uploads.DECODE_SLOTS
