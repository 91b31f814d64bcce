"""Thumbnails of indexed image files (made once, kept in memory within a count and a byte
limit) and sound types.

Only ever called with a path read from the index metadata (see
:meth:`jointspace.server.engine.SearchEngine.media_path`).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from .uploads import DECODE_SLOTS

THUMB_SIDE = 256
_AUDIO = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
          ".aiff": "audio/aiff", ".aif": "audio/aiff"}
#: a sound's first bytes -> its media type, for a sound file of another suffix (a manifest may name any)
_AUDIO_MAGIC = {b"RIFF": "audio/wav", b"fLaC": "audio/flac", b"OggS": "audio/ogg", b"FORM": "audio/aiff"}
_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()
_MAX_CACHED = 4096
#: bytes of PNG kept at most (a full-size rendering can take tens of MB: a few are kept, not 4096)
_MAX_CACHED_BYTES = 256 * 2 ** 20
_cached_bytes = 0
#: images drawn (decoded, converted, written as PNG) at once, at most
_render_slots = threading.BoundedSemaphore(DECODE_SLOTS)


def audio_type(path: Path) -> str | None:
    """The media type of a sound file by its suffix, else by its first bytes (as an upload's
    kind is read); None for anything else."""
    from .uploads import sniff

    kind = _AUDIO.get(Path(path).suffix.lower())
    if kind is None:
        with open(path, "rb") as fh:
            head = fh.read(16)
        kind = _AUDIO_MAGIC.get(head[:4], "audio/mpeg") if sniff(head) == "audio" else None   # else MP3
    return kind


def sound_file(path: Path, media_type: str):
    """The response serving a sound file, in byte ranges when asked (as a player asks); a
    ``Range`` header it refuses (400 malformed, 416 past the end) is answered in JSON naming the
    header, as every other error is, not in Starlette's plain text."""
    from starlette.datastructures import Headers
    from starlette.responses import FileResponse

    from .middleware import send_error
    from .validate import shown

    class SoundFile(FileResponse):
        async def __call__(self, scope, receive, send):
            refused: dict = {}

            async def in_json(message):
                if message["type"] == "http.response.start" and message["status"] in (400, 416):
                    refused.update(message)
                elif refused and message["type"] == "http.response.body":
                    given = shown(Headers(scope=scope).get("range", ""))
                    size = Path(path).stat().st_size
                    past = " (it starts past the end)" if refused["status"] == 416 else ""
                    await send_error(send, refused["status"], f"Range header: expected bytes=FIRST-LAST, FIRST- or "
                                                              f"-SUFFIX within the {size:,} bytes of the sound, got "
                                                              f"{given}{past}",
                                     [(k, v) for k, v in refused["headers"] if k.lower() == b"content-range"])
                else:
                    await send(message)

            await super().__call__(scope, receive, in_json)

    return SoundFile(path, media_type=media_type)


def thumbnail(path: Path, *, full: bool = False, max_pixels: int = 40_000_000) -> tuple[bytes, str]:
    """PNG bytes of the image at ``path``, longest side at most 256 px unless ``full``.

    Few are made at once (:data:`~jointspace.server.uploads.DECODE_SLOTS`; 429 after waiting
    :data:`~jointspace.server.uploads.SLOT_WAIT_S`): a full-size rendering holds several
    copies of the pixels from decoding to PNG, so many requests at once must not hold them all.
    """
    from . import uploads

    path = Path(path)
    key = (str(path), full, path.stat().st_mtime_ns)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key], "image/png"
    if not _render_slots.acquire(timeout=uploads.SLOT_WAIT_S):
        raise uploads.UploadError(429, f"media: {uploads.DECODE_SLOTS} images are being drawn; try again in a moment")
    try:
        data = _render(path, full, max_pixels)
    finally:
        _render_slots.release()
    _keep(key, data)
    return data, "image/png"


def _render(path: Path, full: bool, max_pixels: int) -> bytes:
    from PIL import Image

    from ..errors import InputError
    from ..towers.inputs import load_image
    from .uploads import UploadError, load_bounded

    if path.suffix.lower() == ".svg":
        try:
            img = Image.fromarray(load_image(path, where="media"))
        except InputError as exc:   # named by its file name only, as a raster image is below
            reason = str(exc).removeprefix(f"media ({str(path)!r}): ").replace(str(path), path.name)
            raise LookupError(f"media: the image {path.name} cannot be shown ({reason})") from None
    else:
        try:   # bounded as uploads are: an indexed file can be as hostile as an uploaded one
            src = load_bounded(path, path.name, max_pixels=max_pixels, max_aspect=None,
                               short_side=None if full else THUMB_SIDE)
        except UploadError as exc:
            if exc.status == 429:   # busy, not unshowable: the client is told to try again
                raise
            reason = exc.message.replace(str(path), path.name)   # PIL names the file by its full path
            raise LookupError(f"media: the image {path.name} cannot be shown ({reason})") from None
        img = Image.fromarray(load_image(src))
    if not full:
        img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _keep(key, data: bytes) -> None:
    """Cache ``data`` under ``key``, the least recently used out first, within both limits."""
    global _cached_bytes
    if len(data) > _MAX_CACHED_BYTES:
        return
    with _lock:
        old = _cache.pop(key, None)
        _cached_bytes += len(data) - (len(old) if old is not None else 0)
        _cache[key] = data
        while len(_cache) > _MAX_CACHED or _cached_bytes > _MAX_CACHED_BYTES:
            _cached_bytes -= len(_cache.popitem(last=False)[1])
