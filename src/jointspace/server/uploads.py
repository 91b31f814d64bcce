"""Checking uploaded query files before any of their bytes reach a model.

The kind of a file is decided from its first bytes (PNG, JPEG, GIF, WebP, BMP, TIFF images;
WAV, FLAC, OGG, AIFF, MP3 sounds), never from its name or the declared content type, so a text file
named ``cat.png`` is refused.  Images are opened lazily: their size is read from the header
and checked against a pixel limit, an aspect-ratio limit and a decoded-bytes limit before
anything is decoded (a decompression bomb never allocates its pixels); few are decoded at
once, and each is reduced before any conversion (see :func:`load_bounded`).
"""

from __future__ import annotations

import io
import math
import re
import threading

import numpy as np

from ..towers.inputs import UNKNOWN_FRAMES
from .validate import shown

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SECONDS = 60.0
#: bytes the decoded pixels of one image may take (PIL's own layout: 4 bytes per RGB pixel)
DEFAULT_MAX_DECODED_BYTES = 128 * 2 ** 20
#: longest side over shortest side of an accepted image
DEFAULT_MAX_ASPECT = 20.0
#: uploads are reduced (box filter) until their shorter side is about this many pixels
WORK_SIDE = 512
#: images decoded at the same time, at most (each holds up to DEFAULT_MAX_DECODED_BYTES)
DECODE_SLOTS = 2
#: seconds a decode waits for a slot before the request is answered 429
SLOT_WAIT_S = 60.0
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)

_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
                (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def sniff(data: bytes) -> str | None:
    """``"image"``, ``"audio"`` or None from the first bytes of a file."""
    head = data[:16]
    if any(head.startswith(m) for m, _ in _IMAGE_MAGIC):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] in (b"fLaC", b"OggS") or head[:4] == b"FORM":
        return "audio"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio"   # MP3: an ID3 tag, or an MPEG audio frame's 11 sync bits (a JPEG's FF D8 has not)
    return None


def _describe_content(data: bytes) -> str:
    if not data:
        return "it is empty"
    sample = data[:512]
    try:
        head = sample.decode("utf-8").lower()
        if "<svg" in head or head.lstrip().startswith("<?xml"):
            # not rendered server-side: an SVG may reference other files or hosts
            return "it is an SVG drawing; upload a PNG or JPEG rendering of it"
        return "it looks like text"
    except UnicodeDecodeError:
        return f"its first bytes are {data[:8].hex(' ')}"


def classify(data: bytes, filename: str) -> str:
    """The query modality of an uploaded file, or :class:`UploadError` (415) naming the file."""
    kind = sniff(data)
    if kind is None:
        raise UploadError(415, f"file {shown(filename)} is not a supported image (PNG, JPEG, GIF, WebP, BMP, TIFF) "
                               f"or sound (WAV, FLAC, OGG, AIFF, MP3): {_describe_content(data)}")
    return kind


def _bytes_per_pixel(mode: str) -> int:
    """Bytes PIL holds per pixel of ``mode`` once decoded, plus what conversion to RGB adds
    (a palette image becomes RGBA before it is reduced)."""
    if mode in ("1", "L"):
        return 1
    if mode.startswith("I;16"):
        return 2
    if mode in ("P", "PA"):
        return 5
    return 4


def load_bounded(data, filename: str, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, max_aspect: float | None = DEFAULT_MAX_ASPECT,
                 short_side: int | None = WORK_SIDE):
    """Open an image (bytes or a path) within memory bounds; returns a loaded PIL image.

    Order matters for memory: the header is read first (pixel count, aspect ratio and the
    bytes the decoded pixels will take are checked before decoding); a JPEG is decoded at a
    reduced scale (``draft``); at most :data:`DECODE_SLOTS` images are decoded at once; the
    decoded image is box-reduced so its shorter side is about ``short_side`` pixels before any
    conversion, so no full-size copy in another type (16-bit -> float64, palette -> RGBA) is made.

    Raises
    ------
    UploadError
        413 over ``max_pixels`` or ``max_decoded_bytes``, 422 over ``max_aspect`` (longest over
        shortest side), 415 for bytes PIL cannot decode, 429 when no decode slot frees in time.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    from ..towers.inputs import exif_orientation, upright

    where = f"file {shown(filename)}"
    if not _decode_slots.acquire(timeout=SLOT_WAIT_S):
        raise UploadError(429, f"{where}: {DECODE_SLOTS} images are being decoded; try again in a moment")
    try:
        with warnings.catch_warnings():   # the pixel limit below is the check; PIL's warning adds nothing
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
        with img:
            w, h = img.size
            if w * h > max_pixels:
                raise UploadError(413, f"{where}: the image is {w}x{h} = {w * h:,} pixels, over the "
                                       f"limit of {max_pixels:,} pixels")
            if w == 0 or h == 0:
                raise UploadError(415, f"{where}: the image has no pixels ({w}x{h})")
            if max_aspect is not None and max(w, h) > max_aspect * min(w, h):
                raise UploadError(422, f"{where}: the image is {w}x{h}, an aspect ratio of "
                                       f"{max(w, h) / min(w, h):,.0f}:1; the limit is {max_aspect:g}:1")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if short_side is not None and min(w, h) > 2 * short_side:
                s = short_side / min(w, h)
                img.draft("RGB", (max(1, math.ceil(w * s)), max(1, math.ceil(h * s))))   # JPEG: decode smaller
            w, h = img.size
            need = w * h * _bytes_per_pixel(img.mode)
            if need > max_decoded_bytes:
                raise UploadError(413, f"{where}: the image is {w}x{h} in mode {img.mode}, {need / 2 ** 20:,.0f} MB "
                                       f"decoded; the limit is {max_decoded_bytes / 2 ** 20:,.0f} MB")
            img.load()
            turn = exif_orientation(img)   # read before the reduction, whose image has no EXIF
            out = _eight_bit(_reduce(img, short_side))
            if out is img:
                out = img.copy()
            out = upright(out, turn)
            if "exif" in out.info:   # turned already: load_image must not turn it again
                out.info.pop("exif")
        if need > 32 * 2 ** 20:
            _give_back_memory()
        return out
    except UploadError:
        raise
    except Image.DecompressionBombError as exc:
        raise UploadError(413, f"{where}: the image is over the limit of {max_pixels:,} pixels "
                               f"(a decompression bomb? {exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL names the buffer it read by its repr (<_io.BytesIO object at 0x...>): not for a client
        reason = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))[:200]
        raise UploadError(415, f"{where} has an image header but cannot be decoded "
                               f"(truncated or corrupt: {reason})") from None
    finally:
        _decode_slots.release()


def _reduce(img, short_side: int | None):
    """``img`` box-averaged so its shorter side is at least ``short_side`` (unchanged when small)."""
    from PIL import Image

    if short_side is None:
        return img
    factor = min(img.size) // short_side
    if factor < 2:
        return img
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    size = (max(1, img.size[0] // factor), max(1, img.size[1] // factor))
    if img.mode in ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr", "La", "RGBa"):
        return img.reduce(factor)
    return img.resize(size, Image.Resampling.BOX)


def _eight_bit(img):
    """A 16-bit greyscale image as 8-bit ``L`` by integer arithmetic (round(v * 255 / 65535),
    as :func:`~jointspace.towers.inputs.load_image` computes it, without a float64 copy)."""
    from PIL import Image

    if not img.mode.startswith("I;16"):
        return img
    v = np.asarray(img).astype(np.uint32)
    return Image.fromarray(((v * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def _give_back_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them after a large decode)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def decode_image(data: bytes, filename: str, max_pixels: int = DEFAULT_MAX_PIXELS, *,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
                 max_aspect: float = DEFAULT_MAX_ASPECT) -> np.ndarray:
    """Uploaded image bytes -> RGB uint8 array (H, W, 3), shorter side reduced to about
    :data:`WORK_SIDE` pixels (the towers resize to a few hundred at most); see :func:`load_bounded`."""
    from ..towers.inputs import load_image

    img = load_bounded(data, filename, max_pixels=max_pixels, max_decoded_bytes=max_decoded_bytes,
                       max_aspect=max_aspect)
    return load_image(img, where=f"file {shown(filename)}")


def check_audio(data: bytes, filename: str, max_seconds: float = DEFAULT_MAX_SECONDS) -> dict:
    """Read an uploaded sound's header; refuses unreadable files (415) and long clips (413)."""
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:  # libsndfile raises its own error types
        raise UploadError(415, f"file {shown(filename)} has a sound header but cannot be read ({exc})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise UploadError(415, f"file {shown(filename)}: the sound has no samples")
    if info.frames >= UNKNOWN_FRAMES:
        raise UploadError(415, f"file {shown(filename)}: its header does not say how long the sound is (as "
                               "a stream writes it); save it again with its length, or as WAV")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise UploadError(413, f"file {shown(filename)}: the sound lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
    return {"seconds": seconds, "sample_rate": info.samplerate, "channels": info.channels}


def decode_audio(data: bytes, filename: str, sample_rate: int | None) -> np.ndarray:
    """Uploaded sound bytes -> mono float32 waveform at ``sample_rate`` (the tower's rate)."""
    import soundfile as sf

    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise UploadError(415, f"file {shown(filename)} cannot be decoded as sound ({exc})") from None
    y = y.mean(axis=1)
    if sample_rate and sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    if y.size == 0 or not np.isfinite(y).all():
        raise UploadError(415, f"file {shown(filename)}: the sound is empty or has non-finite samples")
    return y
