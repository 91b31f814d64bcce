"""Checking and decoding raw items: image files and arrays, texts, sounds, feature rows.

:func:`check_items` does the cheap checks for a whole list up front (types, empty texts,
paths that do not exist); decoding (:func:`load_image`, :func:`load_audio`) happens one
batch at a time, so a corrupt file fails with an :class:`InputError` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validation import has_visible_text, lone_surrogate
from ..errors import InputError

_PATH_TYPES = (str, os.PathLike)
#: the frame count libsndfile gives a sound whose header leaves its length out (SF_COUNT_MAX)
UNKNOWN_FRAMES = 2 ** 63 - 1


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.")


def check_items(modality: str, items, name: str = "items"):
    """Validate a collection of raw items of one modality.

    Parameters
    ----------
    modality : {"image", "text", "audio", "features"}
    items : sequence, or ndarray whose first axis indexes the items
    name : str
        Argument name used in messages.

    Returns
    -------
    list of items, or a float32 array (n, d) for ``"features"``
    """
    if modality == "features":
        from .._validation import check_matrix

        return check_matrix(items, name, dtype=np.float32)
    if isinstance(items, (str, bytes)) or _is_pil(items):
        raise InputError(f"{name}: expected a list of {modality} items, got a single {type(items).__name__}; "
                         "wrap it in a list")
    if isinstance(items, np.ndarray):
        if items.dtype == object:
            items = items.tolist()
        else:
            min_nd = {"image": 3, "audio": 2, "text": 99}[modality]
            if modality == "text" and items.ndim < min_nd:
                got = ("an array of strings" if items.dtype.kind in "US"
                       else f"a {items.dtype} array of shape {items.shape}")
                raise InputError(f"{name}: text items must be strings, given as a list of str (one text per "
                                 f"item); got {got}" + (" (pass items.tolist())" if items.dtype.kind in "US"
                                                         else ", which looks like feature vectors"))
            if items.ndim < min_nd:
                raise InputError(f"{name}: expected an array with one {modality} per row (at least {min_nd} "
                                 f"axes for {modality}), got shape {items.shape}")
            if modality == "image" and items.ndim == 3 and items.shape[2] in (3, 4):
                # one colour picture (H, W, 3), not H grayscale pictures of W x 3 pixels
                raise InputError(f"{name}: expected a list of images, got one image array of shape {items.shape}; "
                                 "wrap it in a list, or stack several as (n, H, W, 3)")
            if modality == "audio" and items.ndim == 2 and items.shape[1] <= 8 < items.shape[0]:
                # one multichannel waveform (n_samples, channels), as soundfile reads one
                raise InputError(f"{name}: expected a list of 1-D waveforms, got one array of shape {items.shape}, "
                                 f"which looks like one sound of {items.shape[1]} channels; mix it to mono "
                                 "(y.mean(axis=1)) and wrap it in a list")
            items = list(items)
    try:
        items = list(items)
    except TypeError:
        raise InputError(f"{name}: expected a list of {modality} items, got {type(items).__name__}") from None
    if not items:
        raise InputError(f"{name}: expected at least one {modality} item, got none")
    if modality == "text":
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InputError(f"{name}[{i}]: expected a string, got {type(t).__name__}")
            if not has_visible_text(t):
                raise InputError(f"{name}[{i}]: expected a non-empty text (a visible character), got {t!r}")
            at = lone_surrogate(t)
            if at is not None:
                raise InputError(f"{name}[{i}]: expected text UTF-8 can encode, got a lone surrogate "
                                 f"U+{ord(t[at]):04X} at character {at} of {t[:60]!r}")
        return items
    for i, it in enumerate(items):
        if isinstance(it, _PATH_TYPES):
            if not str(it).strip():   # Path("") is the current folder
                raise InputError(f"{name}[{i}]: expected the path of an {modality} file, got {str(it)!r}")
            if Path(it).is_dir():
                raise InputError(f"{name}[{i}]: expected an {modality} file, got the folder {str(it)!r}")
            if not Path(it).is_file():
                raise InputError(f"{name}[{i}]: file {str(it)!r} does not exist")
        elif isinstance(it, np.ndarray):
            if modality == "image" and it.ndim not in (2, 3):
                raise InputError(f"{name}[{i}]: expected an image array (H, W) or (H, W, 3), got shape {it.shape}")
            if modality == "audio" and it.ndim != 1:
                raise InputError(f"{name}[{i}]: expected a 1-D waveform, got shape {it.shape}")
        elif modality == "image" and _is_pil(it):
            pass
        else:
            kinds = ("a file path, PIL image or uint8 array" if modality == "image"
                     else "a WAV file path or a 1-D float array")
            raise InputError(f"{name}[{i}]: expected {kinds}, got {type(it).__name__}")
    return items


# -- images --------------------------------------------------------------------------------

def _describe(item, where: str) -> str:
    return f"{where} ({str(item)!r})" if isinstance(item, _PATH_TYPES) else where


def _to_rgb_array(img, where: str) -> np.ndarray:
    """A PIL image of any mode -> uint8 (H, W, 3); transparency is composited on white (an alpha
    channel, and the transparent palette index or colour key of a palette, grayscale or RGB
    image)."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max() > 255) else 255.0
        arr = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        arr = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("P", "L", "RGB") and "transparency" in img.info:   # a transparent index or colour (tRNS)
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "La":   # premultiplied: PIL converts it to LA only (not to RGBA)
        img, mode = img.convert("LA"), "LA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{where}: image has no pixels (size {img.size})")
    return arr


def _array_to_rgb(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        rgb = _array_to_rgb(arr[..., :3], where).astype(np.float64)   # refuses what the colours may not be
        a = arr[..., 3:4].astype(np.float64)
        if arr.dtype.kind in "ui":
            a /= 65535.0 if arr.dtype == np.uint16 else 255.0
        elif not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:   # floats and booleans are fractions
            raise InputError(f"{where}: expected the alpha of a float image in [0, 1], got values in "
                             f"[{np.nanmin(a):.3g}, {np.nanmax(a):.3g}]")
        return np.clip(np.rint(rgb * a + 255.0 * (1 - a)), 0, 255).astype(np.uint8)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f"{where}: expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{where}: image array has no pixels (shape {arr.shape})")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        out = np.rint(arr.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
    elif arr.dtype == bool:
        out = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{where}: expected a uint8 image (or floats in [0, 1]), got floats in "
                             f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]")
        out = np.rint(arr * 255.0).astype(np.uint8)
    else:
        raise InputError(f"{where}: expected a uint8 or uint16 image array, got dtype {arr.dtype}")
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


#: EXIF orientation -> the PIL transposition that shows the picture upright (EXIF 2.3, tag 0x0112)
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
            7: "TRANSVERSE", 8: "ROTATE_90"}


def exif_orientation(img) -> int:
    """The EXIF orientation (1-8) a PIL image records, 1 when it records none or one that
    cannot be read (a damaged EXIF block is ignored, as a picture viewer ignores it)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - any unreadable EXIF block: the picture as stored
        return 1
    return value if isinstance(value, int) and value in _UPRIGHT else 1


def upright(img, orientation: int):
    """``img`` turned as EXIF ``orientation`` says (a phone's portrait photo is stored sideways
    with orientation 6), so a tower sees the picture as a viewer shows it."""
    from PIL import Image

    name = _UPRIGHT.get(orientation)
    return img if name is None else img.transpose(getattr(Image.Transpose, name))


def load_image(item, where: str = "image", min_side: int | None = None) -> np.ndarray:
    """Decode one image item into RGB.

    Parameters
    ----------
    item : str or path-like, PIL image, or ndarray (H, W), (H, W, 3), (H, W, 4)
        Grayscale, palette, RGBA (composited on white), 16-bit and float [0, 1] images are
        converted; a file or PIL image with an EXIF orientation is turned upright first
        (:func:`upright`).
    where : str
        How to name the item in error messages, e.g. ``"items[3]"``.
    min_side : int, optional
        The smallest height and width the caller needs.  A JPEG file larger than that is
        decoded at 1/2, 1/4 or 1/8 scale (the decoder's DCT scaling, ``PIL.Image.draft``),
        the smallest scale whose both sides stay at least ``min_side``: a 12-megapixel
        photo decodes several times faster.  Other formats and in-memory images are
        returned at full size.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    if isinstance(item, np.ndarray):
        return _array_to_rgb(item, where)
    if _is_pil(item):
        return _to_rgb_array(upright(item, exif_orientation(item)), where)
    from PIL import Image, UnidentifiedImageError

    path = Path(item)
    if path.suffix.lower() == ".svg":
        return _render_svg(path, where)
    try:
        with Image.open(path) as img:
            if min_side is not None:
                img.draft(None, (min_side, min_side))   # a no-op for formats other than JPEG
            img.load()
            return _to_rgb_array(upright(img, exif_orientation(img)), _describe(item, where))
    except FileNotFoundError:
        raise InputError(f"{_describe(item, where)}: file does not exist") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{_describe(item, where)}: image too large to decode safely ({exc}); "
                         "downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        kind = "empty" if path.is_file() and path.stat().st_size == 0 else "corrupt or not an image"
        raise InputError(f"{_describe(item, where)}: cannot read the image ({kind}: {exc})") from None


#: names how :func:`load_image` rasterises an SVG file; part of its embedding-cache key, so
#: vectors of an earlier rendering are not reused (those drawn with the files a drawing names)
SVG_RENDERING = "svg-fit-256-own-bytes"


def _render_svg(path: Path, where: str, size: int = 256) -> np.ndarray:
    """Render an SVG file on white (resvg-py), longest side ``size`` pixels (the drawing's
    aspect ratio kept: a tall drawing is ``size`` high, not ``size`` wide and taller still).
    Files or hosts the drawing names are not read (an ``<image href="/etc/...">`` is drawn as
    nothing): :func:`jointspace.data.svg.without_external_references`."""
    import io

    from PIL import Image

    from ..data.svg import without_external_references

    try:
        import resvg_py
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("rendering SVG images needs resvg-py: pip install resvg-py") from None
    try:
        # both sides given: resvg fits the drawing inside the square (a width alone made a
        # 1:2000 drawing 256 x 512,000 pixels)
        svg = without_external_references(path.read_bytes()).decode("utf-8", errors="replace")
        data = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, background="white")
        with Image.open(io.BytesIO(bytes(data))) as img:
            img.load()
            return _to_rgb_array(img, _describe(path, where))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{_describe(path, where)}: cannot render the SVG ({exc})") from None


# -- audio ---------------------------------------------------------------------------------

def _frames(path: str) -> int:
    """The frame count a sound file's header gives (0 when the header cannot be read)."""
    import soundfile as sf

    try:
        return int(sf.info(path).frames)
    except Exception:  # noqa: BLE001 - libsndfile's own error types: no header to read
        return 0


def load_audio(item, sample_rate: int, where: str = "audio") -> np.ndarray:
    """Decode one audio item to a mono float32 waveform at ``sample_rate``.

    Parameters
    ----------
    item : str or path-like (WAV, FLAC, OGG, AIFF, MP3: what libsndfile reads), or 1-D ndarray
        Arrays are taken to be at ``sample_rate`` already; integer arrays are scaled from
        their full range to [-1, 1]: signed ones by 2^(bits-1) (int16 -32768 -> -1), unsigned
        ones centred on 2^(bits-1) as unsigned PCM is (uint8 0, 128, 255 -> -1, 0, 0.992).
        Files are decoded by libsndfile, which centres 8-bit (unsigned) WAV the same way.

    Returns
    -------
    ndarray of float32, shape (n_samples,)
    """
    if isinstance(item, np.ndarray):
        y = item
        if np.issubdtype(y.dtype, np.unsignedinteger):
            # unsigned PCM (e.g. 8-bit WAV) is centred on 2^(bits-1): uint8 0, 128, 255 -> -1, 0, 127/128
            mid = float(2 ** (np.iinfo(y.dtype).bits - 1))
            y = ((y.astype(np.float64) - mid) / mid).astype(np.float32)
        elif np.issubdtype(y.dtype, np.integer):
            y = y.astype(np.float32) / float(np.iinfo(y.dtype).max + 1)
        elif not np.issubdtype(y.dtype, np.floating):
            raise InputError(f"{where}: expected a float waveform, got dtype {y.dtype}")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise InputError(f"{where}: expected a 1-D waveform, got shape {y.shape}")
    else:
        import soundfile as sf

        try:
            y, sr = sf.read(str(item), dtype="float32", always_2d=True)
        except FileNotFoundError:
            raise InputError(f"{_describe(item, where)}: file does not exist") from None
        except Exception as exc:  # libsndfile raises its own error type for bad files
            if _frames(str(item)) >= UNKNOWN_FRAMES:   # why the read failed, read from the header
                raise InputError(f"{_describe(item, where)}: its header does not say how long the sound is (as "
                                 "a stream writes it); save it again with its length, or as WAV") from None
            raise InputError(f"{_describe(item, where)}: cannot read the sound file "
                             f"(corrupt, empty or not audio: {exc})") from None
        y = y.mean(axis=1)
        if sr != sample_rate and y.size:
            import librosa

            y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
    if y.size == 0:
        raise InputError(f"{_describe(item, where)}: the sound has no samples")
    if not np.isfinite(y).all():
        raise InputError(f"{_describe(item, where)}: the waveform has NaN or Inf values")
    return y
