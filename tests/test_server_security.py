"""Hostile requests: each gets a 4xx with a clear message and the server stays healthy."""

import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

import server_support as sup


@pytest.fixture(scope="module")
def client():
    return TestClient(sup.make_app(max_upload_bytes=200_000), raise_server_exceptions=False)


def _healthy(client):
    assert client.get("/api/health").json()["status"] == "ok"
    assert client.get("/api/search", params={"text": "a red disc", "k": 1}).status_code == 200


@pytest.mark.parametrize("url", [
    "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/media",
    "/api/items/%2Fetc%2Fpasswd/media",
    "/api/items/0/media/../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/plots/..%2F..%2Fetc%2Fpasswd.png",
    "/api/items/0/media?path=/etc/passwd&modality=../../etc",
])
def test_path_traversal_is_refused(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code)
    assert b"root:" not in r.content
    _healthy(client)


def test_media_is_looked_up_by_id_only(client):
    r = client.get("/api/items/0/media", params={"path": "/etc/passwd"})
    assert r.status_code == 422 and "unknown parameters 'path'" in r.json()["detail"]   # no path ever taken
    r = client.get("/api/items/0/media")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"   # the item's own image
    r = client.get("/api/items/-1/media")
    assert r.status_code == 404 and "no such item" in r.json()["detail"]


def test_upload_over_the_size_limit(client):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * 400_000
    r = client.post("/api/search", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413
    assert "upload too large" in r.json()["detail"] and "limit" in r.json()["detail"]
    _healthy(client)


def test_upload_over_the_default_10mb_limit():
    c = TestClient(sup.make_app())
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (11 * 1024 * 1024)
    r = c.post("/api/search", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "10 MB" in r.json()["detail"]
    _healthy(c)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height that decompresses to a huge image (tiny on the wire)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit greyscale
    row = b"\0" + b"\0" * width
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()   # a few rows are enough
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side,needle", [(10_000, "10000x10000 = 100,000,000 pixels"), (30_000, "decompression bomb")])
def test_decompression_bomb_is_refused_before_decoding(client, side, needle):
    bomb = _png_header_only(side, side)
    assert len(bomb) < 100_000
    r = client.post("/api/search", files={"file": ("bomb.png", bomb, "image/png")})
    assert r.status_code == 413
    assert needle in r.json()["detail"] and "limit of 40,000,000 pixels" in r.json()["detail"]
    _healthy(client)


@pytest.mark.parametrize("name,data,ctype", [
    ("cat.png", b"hello, I am not a picture\n" * 10, "image/png"),
    ("cat.jpg", bytes(range(256)) * 4, "image/jpeg"),
    ("empty.png", b"", "image/png"),
])
def test_non_image_with_an_image_name(client, name, data, ctype):
    r = client.post("/api/search", files={"file": (name, data, ctype)})
    assert r.status_code == 415
    assert name in r.json()["detail"] and "not a supported image" in r.json()["detail"]
    _healthy(client)


def test_svg_upload_is_named_as_such(client):
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'
    r = client.post("/api/search", files={"file": ("cat.svg", svg, "image/svg+xml")})
    assert r.status_code == 415 and "SVG drawing" in r.json()["detail"] and "PNG or JPEG" in r.json()["detail"]


def test_truncated_image_is_refused(client):
    data = sup.png_bytes(sup.draw((10, 200, 10), "disc"))[:60]
    r = client.post("/api/search", files={"file": ("cut.png", data, "image/png")})
    assert r.status_code == 415 and "cannot be decoded" in r.json()["detail"]
    _healthy(client)


def test_an_undecodable_image_is_named_without_a_python_repr(client):
    data = b"II*\x00" + b"0" * 100   # a TIFF signature, then nothing PIL can read
    r = client.post("/api/search", files={"file": ("z.png", data, "image/png")})
    assert r.status_code == 415 and "cannot be decoded" in r.json()["detail"]
    assert "0x" not in r.json()["detail"] and "<" not in r.json()["detail"], r.json()["detail"]
    _healthy(client)


def test_audio_file_for_a_model_without_audio(client):
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, np.float32), 16000, format="WAV")
    r = client.post("/api/search", files={"file": ("clip.wav", buf.getvalue(), "audio/wav")})
    assert r.status_code == 415 and "embeds only image, text" in r.json()["detail"]


@pytest.mark.parametrize("k", ["0", "1000000", "-3", "abc", "2.5", "1_0", "\uff11\uff10"])
def test_k_out_of_bounds(client, k):
    r = client.get("/api/search", params={"text": "a red square", "k": k})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("k: expected an integer from 1 to 1000")
    r = client.post("/api/search", files={"file": ("q.png", sup.png_bytes(sup.draw((1, 2, 3), "disc")), "image/png")},
                    data={"k": k})
    assert r.status_code == 422 and r.json()["detail"].startswith("k: expected")
    r = client.get("/api/items/0/similar", params={"k": k})
    assert r.status_code == 422 and r.json()["detail"].startswith("k: expected")
    _healthy(client)


@pytest.mark.parametrize("body", [b"{\"text\": \"a red", b"not json at all", b"\xff\xfe\x00", b""])
def test_malformed_json(client, body):
    r = client.post("/api/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    assert "not valid JSON" in r.json()["detail"]
    _healthy(client)


def test_deeply_nested_json_is_refused_not_a_server_error(client):
    r = client.post("/api/search", content=b"[" * 50000 + b"]" * 50000, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    _healthy(client)


@pytest.mark.parametrize("body,needle", [
    ([1, 2], "expected a JSON object"),
    ({"text": 5}, "text: expected a string"),
    ({"text": "x", "item": 1}, "exactly one of"),
    ({"text": "x", "k": 0}, "k: expected an integer"),
    ({"text": "x", "k": True}, "k: expected an integer"),
    ({"text": "x", "evil": 1}, "unknown fields 'evil'"),
    ({"item": "../../etc/passwd"}, "item: expected an integer item id"),
    ({"text": "car", "modality": ["x"]}, "modality: expected a string, got a JSON array"),
    ({"item": 0, "target": {"a": 1}}, "target: expected a string, got a JSON object"),
    ({"item": 0, "label": ["red"]}, "label: expected a string, got a JSON array"),
    ({"text": "car", "target": "text"}, "target: only with 'item'"),
])
def test_bad_json_fields(client, body, needle):
    r = client.post("/api/search", json=body)
    assert r.status_code == 422 and needle in r.json()["detail"]


def test_empty_and_missing_queries(client):
    for blank in ("   ", "\u200b", "\x00", " \u200b\ufeff\t"):   # nothing visible: zero-width, NUL, BOM
        r = client.get("/api/search", params={"text": blank})
        assert r.status_code == 422 and "with a visible character" in r.json()["detail"]
    r = client.get("/api/search")
    assert r.status_code == 422 and "text" in r.json()["detail"]
    r = client.post("/api/search", data={"k": "3"}, files={"other": ("x.txt", b"x", "text/plain")})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    r = client.post("/api/search", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    r = client.get("/api/search", params={"text": "x" * 5000})
    assert r.status_code == 422 and "2,000 characters" in r.json()["detail"]
    _healthy(client)


def test_default_bind_is_loopback():
    import inspect

    from jointspace.cli.commands import serve as serve_cmd
    from jointspace.server.app import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    import argparse

    p = argparse.ArgumentParser()
    serve_cmd.register(p.add_subparsers())
    args = p.parse_args(["serve", "--index", "x"])
    assert args.host == "127.0.0.1"


def test_serve_command_refuses_bad_arguments(tmp_path, capsys):
    from jointspace.cli import main

    assert main(["serve", "--index", str(tmp_path / "missing")]) == 2
    assert main(["serve", "--index", str(tmp_path), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err
    assert main(["serve", "--index", str(tmp_path), "--max-batch", "0"]) == 2
    assert main(["serve", "--index", str(tmp_path), "--cache-size", "-3"]) == 2
    assert "--cache-size: expected an integer >= 0" in capsys.readouterr().err
    assert main(["serve", "--index", str(tmp_path), "--allowed-host", "evil.example/x"]) == 2
    assert "--allowed-host: expected a host name" in capsys.readouterr().err


def test_streamed_upload_without_length_is_cut_off_at_the_limit(client):
    def body():
        for _ in range(40):
            yield b"x" * 10_000          # 400 kB in chunks, no Content-Length

    r = client.post("/api/search", content=body(),
                    headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 413 and "upload too large" in r.json()["detail"]
    _healthy(client)


HUGE = "9" * 5000


def test_a_5000_digit_k_is_refused_everywhere(client):
    png = sup.png_bytes(sup.draw((1, 2, 3), "disc"))
    answers = [client.get("/api/search", params={"text": "a red square", "k": HUGE}),
               client.get("/api/items/0/similar", params={"k": HUGE}),
               client.post("/api/search", files={"file": ("q.png", png, "image/png")}, data={"k": HUGE}),
               client.post("/api/search", content=b'{"text": "red", "k": ' + HUGE.encode() + b"}",
                           headers={"content-type": "application/json"}),
               client.post("/api/search", content=b'{"item": 0, "k": ' + HUGE.encode() + b"}",
                           headers={"content-type": "application/json"})]
    for r in answers:
        assert r.status_code == 422, r.text[:300]
        assert r.json()["detail"] == "k: expected an integer from 1 to 1000, got a 5,000-digit number"
    _healthy(client)


@pytest.mark.parametrize("body", [b'{"text": "\\ud800"}', b'{"text": "a red \\udfff square"}',
                                  b'{"text": "red", "label": "\\ud800"}', b'{"item": 0, "target": "\\ud800"}'])
def test_a_lone_surrogate_is_refused(client, body):
    r = client.post("/api/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "lone surrogate" in r.json()["detail"]


@pytest.mark.parametrize("item_id", ["+12", "12.0", "%2012", "1_2", "0x0c", "1e1", "\uff11\uff12"])
def test_item_ids_are_plain_digits(client, item_id):
    for url in (f"/api/items/{item_id}", f"/api/items/{item_id}/similar", f"/api/items/{item_id}/media"):
        r = client.get(url)
        assert r.status_code == 422, (url, r.status_code)
        assert r.json()["detail"].startswith("id: expected an item id (an integer written with digits only)")
    assert client.get("/api/items/12").json()["id"] == 12
    r = client.post("/api/search", json={"item": "12"})
    assert r.status_code == 422 and r.json()["detail"].startswith("item: expected an integer item id")


def test_ids_no_item_can_have_are_not_found(client):
    for url in (f"/api/items/{HUGE}", f"/api/items/{HUGE}/similar", "/api/items/-3"):
        r = client.get(url)
        assert r.status_code == 404 and "no such item" in r.json()["detail"] and len(r.text) < 200
    r = client.post("/api/search", content=b'{"item": ' + HUGE.encode() + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 404 and "a 5,000-digit number: no such item" in r.json()["detail"]


@pytest.mark.parametrize("item_id, named", [
    ("-1", "-1"), ("-01", "-1"), ("1000000", "1000000"), ("9999999999999999999", "9999999999999999999"),
    ("-99999999999999999999", "a 20-digit number"), ("-" + HUGE, "a 5,000-digit number"),
])
def test_an_id_in_the_path_is_named_as_the_same_id_in_a_body(client, item_id, named):
    """The item of /api/items/ID is named as a JSON body's item is: -1 written as -1, not as
    the string '-1'."""
    expected = f"item {named}: no such item in the image index"
    for url in (f"/api/items/{item_id}", f"/api/items/{item_id}/similar", f"/api/items/{item_id}/media"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["detail"] == expected, (url, r.text)
    if not item_id.lstrip("-").startswith("0"):   # JSON writes no leading zero
        r = client.post("/api/search", content=b'{"item": ' + item_id.encode() + b"}",
                        headers={"content-type": "application/json"})
        assert r.status_code == 404 and r.json()["detail"] == expected, r.text


@pytest.mark.parametrize("request_args", [
    ("get", "/api/search", {"params": {"text": "red", "k": "x" * 50_000}}),
    ("get", "/api/search", {"params": {"text": "red", "label": "x" * 50_000}}),
    ("get", "/api/search", {"params": {"text": "red", "cache": "x" * 50_000}}),
    ("get", "/api/items/" + "x" * 50_000, {}),
    ("post", "/api/search", {"json": {"item": 0, "modality": "x" * 150_000}}),
    ("post", "/api/search", {"json": {"text": "x", "k": {"a": "b" * 150_000}}}),
    ("post", "/api/search", {"json": {"text": "x", "y" * 150_000: 1}}),
    ("post", "/api/search", {"json": {"text": "x" * 150_000}}),
])
def test_messages_do_not_echo_the_input(client, request_args):
    method, url, kwargs = request_args
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == 422 and len(r.content) < 700, r.text[:700]
    detail = r.json()["detail"]
    assert "{'a'" not in detail and "characters)" in detail or "JSON object" in detail or "2,000" in detail


def test_every_answer_carries_security_headers(client):
    from jointspace.server.middleware import csp

    answers = [client.get("/"), client.get("/static/app.js"), client.get("/api/health"), client.get("/docs"),
               client.get("/openapi.json"), client.get("/api/items/9999"), client.get("/nowhere"),
               client.post("/api/search", files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 400_000)})]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        policy = r.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answers[0].headers["content-security-policy"] == csp()      # the page: no inline script at all
    assert "'unsafe-inline'" not in answers[3].headers["content-security-policy"]
    assert "'sha256-" in answers[3].headers["content-security-policy"]   # Swagger UI's one inline script, by hash


def test_405_lists_every_method_of_the_path(client):
    r = client.request("OPTIONS", "/api/search")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = client.delete("/api/items/3")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def _flat_png(width: int, height: int, depth: int, colour_type: int, channels: int, value: int = 90) -> bytes:
    """A PNG of one flat value per sample, written row by row (tiny on the wire, large decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\0" + bytes([value]) * (width * channels * depth // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_16_bit_image_is_reduced_before_conversion(client):
    from jointspace.server.uploads import decode_image

    data = _flat_png(6000, 6600, 16, 0, 1)            # every sample 0x5A5A = 23130
    assert len(data) < 100_000
    rgb = decode_image(data, "deep.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (600, 545, 3)   # box-reduced 11x: shorter side >= 512
    assert (rgb == round(23130 * 255 / 65535)).all()
    r = client.post("/api/search", files={"file": ("deep.png", data, "image/png")})
    assert r.status_code == 200 and r.json()["query"]["file"] == "deep.png"


def test_an_extreme_aspect_ratio_is_refused(client):
    r = client.post("/api/search", files={"file": ("line.png", _flat_png(39_000_000, 1, 8, 0, 1), "image/png")})
    assert r.status_code == 422
    assert r.json()["detail"] == ("file 'line.png': the image is 39000000x1, an aspect ratio of 39,000,000:1; "
                                  "the limit is 20:1")
    _healthy(client)


def test_decoded_bytes_are_bounded_not_only_pixels(client):
    r = client.post("/api/search", files={"file": ("big.png", _flat_png(6000, 6600, 8, 6, 4), "image/png")})
    assert r.status_code == 413   # 39.6 Mpx is under the pixel limit, but RGBA takes 151 MB decoded
    assert r.json()["detail"] == ("file 'big.png': the image is 6000x6600 in mode RGBA, 151 MB decoded; "
                                  "the limit is 128 MB")


def test_reduction_is_a_box_average():
    from PIL import Image

    from jointspace.server.uploads import decode_image

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (1200, 2100, 3), dtype=np.uint8)
    rgb = decode_image(sup.png_bytes(img), "noise.png")
    want = img.reshape(600, 2, 1050, 2, 3).astype(np.float64).mean(axis=(1, 3))   # 2x2 blocks
    assert rgb.shape == (600, 1050, 3) and np.abs(rgb - want).max() <= 0.5 + 1e-9
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    jpeg = decode_image(buf.getvalue(), "photo.jpg")       # decoded at half scale by the JPEG decoder itself
    assert jpeg.shape == (600, 1050, 3)


def test_decodes_wait_for_a_slot(monkeypatch):
    import threading

    from jointspace.server import uploads

    monkeypatch.setattr(uploads, "_decode_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(uploads, "SLOT_WAIT_S", 0.05)
    uploads._decode_slots.acquire()                       # one decode already running
    with pytest.raises(uploads.UploadError) as err:
        uploads.decode_image(sup.png_bytes(sup.draw((1, 2, 3), "disc")), "q.png")
    assert err.value.status == 429 and "try again" in err.value.message
    uploads._decode_slots.release()
    assert uploads.decode_image(sup.png_bytes(sup.draw((1, 2, 3), "disc")), "q.png").shape == (48, 48, 3)


@pytest.mark.parametrize("url, needle", [
    ("/api/search?text=red&limit=3", "unknown parameters 'limit'"),
    ("/api/items/0/similar?k=3&foo=1", "unknown parameters 'foo'"),
    ("/api/search?text=red&text=blue&k=1", "text: given 2 times; expected once"),
    ("/api/search?text=red&k=1&k=2", "k: given 2 times; expected once"),
    ("/api/health?x=1", "unknown parameters 'x'; expected none"),
])
def test_get_routes_refuse_unknown_and_repeated_parameters(client, url, needle):
    r = client.get(url)
    assert r.status_code == 422 and needle in r.json()["detail"], r.text
    _healthy(client)


def test_a_form_field_given_twice_is_refused(client):
    data = sup.png_bytes(sup.draw((10, 200, 10), "disc"))
    r = client.post("/api/search", files=[("file", ("a.png", data, "image/png"))], data={"k": ["1", "2"]})
    assert r.status_code == 422 and "k: given 2 times; expected once" in r.json()["detail"], r.text


@pytest.mark.parametrize("query", ["text=%FF%FE&k=1", "text=caf%E9"])
def test_query_text_that_is_not_utf8_is_refused(client, query):
    r = client.get("/api/search?" + query)
    assert r.status_code == 422 and "text: expected UTF-8 text" in r.json()["detail"], r.text


def test_a_file_in_a_text_field_is_named(client):
    data = sup.png_bytes(sup.draw((10, 200, 10), "disc"))
    r = client.post("/api/search", files=[("file", ("a.png", data, "image/png")), ("k", ("k.png", data, "image/png"))])
    assert r.status_code == 422 and "k: expected a text field, got a file" in r.json()["detail"], r.text
    r = client.post("/api/search", files=[("file", ("a.png", data, "image/png")), ("file", ("b.png", data, "image/png"))])
    assert r.status_code == 422 and "file: given 2 times; expected one uploaded file" in r.json()["detail"], r.text


@pytest.mark.parametrize("body, needle", [
    (b'{"text": "a red disc", "text": "a blue square"}', "text: given 2 times in a JSON object; expected once"),
    (b'{"item": 0, "k": 1, "k": 2, "k": 3}', "k: given 3 times in a JSON object; expected once"),
    (b'{"text": "x", "a b": 1, "a b": 2}', "'a b': given 2 times"),
])
def test_a_json_member_given_twice_is_refused(client, body, needle):
    r = client.post("/api/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and needle in r.json()["detail"], r.text


def test_a_post_search_refuses_parameters_in_the_url(client):
    data = sup.png_bytes(sup.draw((220, 20, 20), "square"))
    r = client.post("/api/search?k=3&label=blue", files={"file": ("a.png", data, "image/png")})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == ("query: unknown parameters 'k', 'label'; a POST search takes k, label and modality "
                                  "as form fields (with the file) or in its JSON body")
    r = client.post("/api/search?k=3", json={"text": "a red disc"})
    assert r.status_code == 422 and "unknown parameters 'k'" in r.json()["detail"], r.text
    r = client.post("/api/search", files={"file": ("a.png", data, "image/png")}, data={"k": "3"})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
