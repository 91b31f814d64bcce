"""Schemathesis hooks for the API fuzz test: what an upload declared as an image type holds.

The description says ``file`` is sent as ``image/png``, ``image/jpeg``, ... (its encoding); here
each of those media types gets a strategy drawing real small images of that format, so the
fuzzer's schema-valid uploads are pictures (arbitrary bytes are still sent by its negative cases).
"""

import io

import schemathesis
from hypothesis import strategies as st

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP", "image/bmp": "BMP",
           "image/tiff": "TIFF"}


def _encode(fmt: str, size: tuple, colour: tuple) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def image_files(fmt: str):
    side = st.integers(8, 48)
    colour = st.tuples(*[st.integers(0, 255)] * 3)
    return st.builds(lambda w, h, c: _encode(fmt, (w, h), c), side, side, colour)


for media_type, fmt in FORMATS.items():
    schemathesis.openapi.media_type(media_type, image_files(fmt))
