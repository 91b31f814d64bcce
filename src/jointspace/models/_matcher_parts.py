"""The parts a cross-attention matcher attends over, read from the frozen towers in chunks:
image regions (the cells of the image tower's last feature map) and text word pieces.

A training set's regions are held in memory at once (R x C float32 per image: 49 x 1280, about
250 KB, with EfficientNet-Lite0 at 224 x 224), so a collection too large for the machine is
refused once the first chunk has told the sizes, rather than after minutes of work; a progress
bar shows the extraction of anything more than one chunk.  The checks of parts given directly
(:meth:`~jointspace.models.rerank.CrossAttentionMatcher.fit_parts`) are here too.
"""

from __future__ import annotations

import os

import numpy as np

from .._progress import progress_bar
from ..errors import InputError

#: the share of the machine's memory a training set's region features may take
MEMORY_SHARE = 0.5


def machine_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def check_region_memory(n_images: int, regions: int, channels: int, what: str = "images") -> None:
    """Refuse ``n_images`` whose region vectors ((n, regions, channels) float32) would take more
    than :data:`MEMORY_SHARE` of the machine's memory, naming ``what`` and the sizes."""
    need, total = n_images * regions * channels * 4, machine_memory()
    if total is not None and need > MEMORY_SHARE * total:
        raise InputError(f"{what}: {n_images:,} images need {need / 2 ** 30:.1f} GiB of region vectors in memory "
                         f"({regions} regions x {channels} floats each), over {MEMORY_SHARE:.0%} of this machine's "
                         f"{total / 2 ** 30:.1f} GiB; train the matcher on fewer pairs")


def region_parts(tower, images, *, progress: bool = True) -> np.ndarray:
    """Region vectors (n, R, C) float32 of ``images`` (the tower's feature map (n, C, H, W), its
    H x W cells as R = H * W regions), read a chunk of the tower's batch size at a time; an image
    the tower cannot read is named ``images[i]``, ``i`` its place in ``images``."""
    import re

    n, step = len(images), int(tower.default_batch_size)
    out = None
    with progress_bar("image regions", n, enabled=progress and n > step) as advance:
        for s in range(0, n, step):
            try:
                fmap = tower.feature_map(images[s:s + step])   # (b, C, H, W)
            except InputError as exc:   # the tower counts from the chunk's first image
                found = re.match(r"items\[(\d+)\](.*)", str(exc), re.S)
                if not found:
                    raise
                raise InputError(f"images[{int(found.group(1)) + s}]{found.group(2)}") from None
            if out is None:
                check_region_memory(n, fmap.shape[2] * fmap.shape[3], fmap.shape[1])
                out = np.empty((n, fmap.shape[2] * fmap.shape[3], fmap.shape[1]), dtype=np.float32)
            out[s:s + len(fmap)] = fmap.reshape(fmap.shape[0], fmap.shape[1], -1).transpose(0, 2, 1)
            advance(len(fmap))
    return out


def word_parts(tower, texts: list, max_tokens: int, *, progress: bool = True) -> list:
    """``tower.word_pieces(texts, max_tokens)`` read a chunk at a time; the texts cut to
    ``max_tokens`` are counted over every chunk and said in one warning."""
    import re
    import warnings

    n, step = len(texts), 8 * int(tower.default_batch_size)
    if n <= step:
        return tower.word_pieces(texts, max_tokens=max_tokens)
    out: list = []
    cut, limit = 0, None
    with progress_bar("text word pieces", n, enabled=progress) as advance, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for s in range(0, n, step):
            out.extend(tower.word_pieces(texts[s:s + step], max_tokens=max_tokens))
            advance(len(texts[s:s + step]))
    for w in caught:
        found = re.match(r"items: (\d+) of \d+ texts are longer than (\d+) word pieces", str(w.message))
        if found:
            cut, limit = cut + int(found.group(1)), found.group(2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if cut:
        warnings.warn(f"items: {cut} of {n} texts are longer than {limit} word pieces and were truncated",
                      UserWarning, stacklevel=3)
    return out


def _key_codes(keys) -> np.ndarray:
    keys = np.asarray(keys)
    if keys.ndim != 1:
        raise InputError(f"keys: expected one relevance key per pair (N,), got shape {keys.shape}")
    _, codes = np.unique(keys.astype(str), return_inverse=True)
    return codes.astype(np.int64)


def _check_parts(regions, region_mask, tokens, token_mask, keys, prefix: str):
    """Shapes and values of the five training arrays (``keys`` may be None)."""
    converted = []
    for name, value, dtype, shape in (("regions", regions, np.float32, "(N, R, d)"),
                                      ("region_mask", region_mask, bool, "(N, R)"),
                                      ("tokens", tokens, np.float32, "(N, T, d)"),
                                      ("token_mask", token_mask, bool, "(N, T)")):
        try:
            converted.append(np.asarray(value, dtype=dtype))
        except (TypeError, ValueError) as exc:   # text, ragged items
            kind = "booleans" if dtype is bool else "numbers"
            raise InputError(f"{prefix}{name}: expected an {shape} array of {kind}, got {type(value).__name__} "
                             f"({exc})") from None
    regions, region_mask, tokens, token_mask = converted
    if regions.ndim != 3 or regions.shape[1] == 0:
        raise InputError(f"{prefix}regions: expected (N, R, d) with at least one region per image, got {regions.shape}")
    if tokens.ndim != 3 or tokens.shape[1] == 0:
        raise InputError(f"{prefix}tokens: expected (N, T, d) with at least one token per text, got {tokens.shape}")
    if region_mask.shape != regions.shape[:2] or token_mask.shape != tokens.shape[:2]:
        raise InputError(f"{prefix}region_mask, token_mask: expected shapes {regions.shape[:2]} and "
                         f"{tokens.shape[:2]}, got {region_mask.shape} and {token_mask.shape}")
    if not region_mask.any(axis=1).all() or not token_mask.any(axis=1).all():
        raise InputError(f"{prefix}region_mask, token_mask: every image needs a region and every text a token")
    if not (np.isfinite(regions).all() and np.isfinite(tokens).all()):
        raise InputError(f"{prefix}regions, tokens: expected finite values, got NaN or infinity")
    if keys is None:
        return regions, region_mask, tokens, token_mask
    keys = np.asarray(keys)
    if keys.shape != (regions.shape[0],) or tokens.shape[0] != regions.shape[0]:
        raise InputError(f"{prefix}keys: expected {regions.shape[0]} images, texts and keys, got "
                         f"{regions.shape[0]}, {tokens.shape[0]} and {keys.shape}")
    return regions, region_mask, tokens, token_mask, _key_codes(keys)   # only equality counts


def _check_val_parts(val, regions: np.ndarray, tokens: np.ndarray) -> tuple:
    """The validation rows' five arrays, checked like the training ones and against their sizes."""
    if not isinstance(val, (tuple, list)) or len(val) != 5:
        got = f"{len(val)} items" if isinstance(val, (tuple, list)) else type(val).__name__
        raise InputError(f"val: expected the five arrays (regions, region_mask, tokens, token_mask, keys) of the "
                         f"validation rows, got {got}")
    val = _check_parts(*val, "val ")
    if len(val[0]) == 0:
        raise InputError("val: expected at least one validation row to choose the epoch on, got none")
    for name, arr, train in (("regions", val[0], regions), ("tokens", val[2], tokens)):
        if arr.shape[-1] != train.shape[-1]:
            raise InputError(f"val {name}: expected vectors of size {train.shape[-1]}, as the training {name}, "
                             f"got {arr.shape[-1]}")
    return val
