"""Checking uploaded query files before any of their bytes reach a model.

The kind of a file is decided from its first bytes (PNG, JPEG, GIF, WebP, BMP, TIFF images;
WAV, FLAC, OGG sounds), never from its name or the declared content type, so a text file
named ``cat.png`` is refused.  Images are opened lazily: their size is read from the header
and checked against a pixel limit before anything is decoded (a decompression bomb never
allocates its pixels).
"""

from __future__ import annotations

import io

import numpy as np

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SECONDS = 60.0

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
        raise UploadError(415, f"file {filename!r} is not a supported image (PNG, JPEG, GIF, WebP, BMP, TIFF) "
                               f"or sound (WAV, FLAC, OGG): {_describe_content(data)}")
    return kind


def decode_image(data: bytes, filename: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Uploaded image bytes -> RGB uint8 array (H, W, 3), with the pixel limit checked first.

    Raises
    ------
    UploadError
        413 for an image over ``max_pixels`` (a decompression bomb), 415 for bytes that PIL
        cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    from ..towers.inputs import load_image

    import warnings

    try:
        with warnings.catch_warnings():   # the pixel limit below is the check; PIL's warning adds nothing
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        with img:
            w, h = img.size
            if w * h > max_pixels:
                raise UploadError(413, f"file {filename!r}: the image is {w}x{h} = {w * h:,} pixels, over the "
                                       f"limit of {max_pixels:,} pixels")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            return load_image(img, where=f"file {filename!r}")
    except UploadError:
        raise
    except Image.DecompressionBombError as exc:
        raise UploadError(413, f"file {filename!r}: the image is over the limit of {max_pixels:,} pixels "
                               f"(a decompression bomb? {exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError(415, f"file {filename!r} has an image header but cannot be decoded "
                               f"(truncated or corrupt: {exc})") from None


def check_audio(data: bytes, filename: str, max_seconds: float = DEFAULT_MAX_SECONDS) -> dict:
    """Read an uploaded sound's header; refuses unreadable files (415) and long clips (413)."""
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:  # libsndfile raises its own error types
        raise UploadError(415, f"file {filename!r} has a sound header but cannot be read ({exc})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise UploadError(415, f"file {filename!r}: the sound has no samples")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise UploadError(413, f"file {filename!r}: the sound lasts {seconds:.1f} s; the limit is {max_seconds:g} s")
    return {"seconds": seconds, "sample_rate": info.samplerate, "channels": info.channels}


def decode_audio(data: bytes, filename: str, sample_rate: int | None) -> np.ndarray:
    """Uploaded sound bytes -> mono float32 waveform at ``sample_rate`` (the tower's rate)."""
    import soundfile as sf

    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise UploadError(415, f"file {filename!r} cannot be decoded as sound ({exc})") from None
    y = y.mean(axis=1)
    if sample_rate and sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    if y.size == 0 or not np.isfinite(y).all():
        raise UploadError(415, f"file {filename!r}: the sound is empty or has non-finite samples")
    return y
