"""How a generative model reads and writes the items of one modality.

A codec turns a modality's items into the tensor the model's encoder reads and its decoder
rebuilds, and turns decoder outputs back into items:

- :class:`PixelCodec`: images (arrays (n, H, W) or (n, H, W, C), uint8 or floats in [0, 1])
  as flat intensities in [0, 1]; generated images come back as (n, H, W[, C]) floats.
- :class:`TokenCodec`: texts as word ids (a vocabulary learnt at fit, padded to a fixed
  length); generated texts come back as strings.
- :class:`FeatureCodec`: feature vectors (n, d), or raw items (e.g. audio files) turned into
  vectors by a fixed tower, standardised with the training mean and spread; generated items
  come back as feature vectors in the original units.

Each codec's state is JSON (``to_dict`` / ``codec_from_dict``) plus arrays (``arrays`` /
``set_arrays``), so a saved model holds no pickle.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import InputError
from ._standardise import feature_scale

PAD, UNK = "<pad>", "<unk>"
_TOKEN_RE = re.compile(r"[\w'-]+|[^\w\s]")
#: the longest text (in words) a token codec keeps
MAX_TOKENS = 64


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of ``text`` (``"T-shirt!"`` -> ``["t-shirt", "!"]``)."""
    return _TOKEN_RE.findall(text.lower())


def _is_numeric(items) -> bool:
    """Whether ``items`` is an array of numbers; booleans count, as 0 and 1 (binary pixels or
    features), as they do for every other model."""
    return isinstance(items, np.ndarray) and (np.issubdtype(items.dtype, np.number) or items.dtype == bool)


class PixelCodec:
    """Images as flat intensities in [0, 1]; likelihood Bernoulli by default."""

    kind = "pixels"
    default_likelihood = "bernoulli"

    def __init__(self, shape=None):
        self.shape = None if shape is None else tuple(int(s) for s in shape)

    def fit(self, items, where: str) -> "PixelCodec":
        arr = np.asarray(items)
        if arr.ndim not in (3, 4):
            raise InputError(f"{where}: expected images of shape (n, H, W) or (n, H, W, C), got {arr.shape}")
        self.shape = tuple(int(s) for s in arr.shape[1:])
        return self

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def encode_items(self, items, where: str) -> np.ndarray:
        """Flat intensities, float32 (n, H*W*C)."""
        if not _is_numeric(np.asarray(items)):
            raise InputError(f"{where}: expected an image array of shape (n, {', '.join(map(str, self.shape))}), "
                             f"got {type(items).__name__}")
        arr = np.asarray(items)
        if arr.shape[1:] != self.shape:
            raise InputError(f"{where}: expected images of shape {self.shape}, got {arr.shape[1:]} "
                             f"(array {arr.shape})")
        if len(arr) == 0:
            raise InputError(f"{where}: expected at least one image, got an empty array {arr.shape}")
        if arr.dtype == np.uint8:
            return (arr.reshape(len(arr), -1) / np.float32(255.0)).astype(np.float32)
        flat = arr.reshape(len(arr), -1).astype(np.float32)
        if not np.isfinite(flat).all():
            raise InputError(f"{where}: expected finite pixel values, got NaN or Inf")
        if flat.size and (flat.min() < 0.0 or flat.max() > 1.0):
            raise InputError(f"{where}: expected uint8 images or floats in [0, 1], got values in "
                             f"[{flat.min():.3g}, {flat.max():.3g}]")
        return flat

    def observed(self, items, where: str) -> np.ndarray:
        """Real images in the form :meth:`decode` gives: floats in [0, 1], (n, H, W[, C])."""
        return self.decode(self.encode_items(items, where))

    def decode(self, mean: np.ndarray) -> np.ndarray:
        """Mean intensities (n, D) -> images (n, H, W[, C]) in [0, 1]."""
        return np.clip(mean, 0.0, 1.0).reshape(len(mean), *self.shape).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape)}

    def arrays(self) -> dict:
        return {}

    def set_arrays(self, arrays: dict) -> None:
        pass


class TokenCodec:
    """Texts as word ids padded to ``length``; likelihood categorical over the vocabulary."""

    kind = "tokens"
    default_likelihood = "categorical"

    def __init__(self, vocab=None, length: int = 0):
        self.vocab = list(vocab) if vocab is not None else [PAD, UNK]
        self.length = int(length)
        self._index = {w: i for i, w in enumerate(self.vocab)}

    def fit(self, items, where: str) -> "TokenCodec":
        texts = self._texts(items, where)
        counts: dict = {}
        longest = 1
        for t in texts:
            words = tokenize(t)
            longest = max(longest, len(words))
            for w in words:
                counts[w] = counts.get(w, 0) + 1
        self.vocab = [PAD, UNK] + sorted(counts)
        self._index = {w: i for i, w in enumerate(self.vocab)}
        self.length = min(longest, MAX_TOKENS)
        return self

    @staticmethod
    def _texts(items, where: str) -> list[str]:
        if _is_numeric(items) or isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
            raise InputError(f"{where}: expected a list of texts, got {type(items).__name__}")
        texts = list(items)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not tokenize(t):
                raise InputError(f"{where}[{i}]: expected a text with at least one word, got {t!r}")
        return texts

    @property
    def dim(self) -> int:
        return self.length

    def encode_items(self, items, where: str) -> np.ndarray:
        """Word ids, int64 (n, length); unknown words map to ``<unk>``, long texts are cut."""
        texts = self._texts(items, where)
        ids = np.zeros((len(texts), self.length), dtype=np.int64)
        for i, t in enumerate(texts):
            words = tokenize(t)[:self.length]
            ids[i, :len(words)] = [self._index.get(w, 1) for w in words]
        return ids

    def observed(self, items, where: str) -> list[str]:
        """Real texts as they are (checked)."""
        return self._texts(items, where)

    def decode(self, logits: np.ndarray) -> list[str]:
        """Logits (n, length, V) -> the most likely word at each place, joined (padding dropped)."""
        ids = np.asarray(logits).argmax(-1)
        return [" ".join(self.vocab[j] for j in row if j > 1) for row in ids]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab, "length": self.length}

    def arrays(self) -> dict:
        return {}

    def set_arrays(self, arrays: dict) -> None:
        pass


class FeatureCodec:
    """Feature vectors (or raw items through a fixed ``tower``), standardised; likelihood Gaussian."""

    kind = "features"
    default_likelihood = "gaussian"

    def __init__(self, dim: int = 0, tower: str | None = None):
        self._dim = int(dim)
        self.tower = tower
        self.mean = np.zeros(self._dim, dtype=np.float64)
        self.scale = np.ones(self._dim, dtype=np.float64)

    def raw_features(self, items, where: str) -> np.ndarray:
        """Feature vectors (n, d) in the original units (through the tower for raw items)."""
        arr = items
        # rows of numbers as nested lists, or a DataFrame: array-like, as for the other models
        if self.tower is None and (isinstance(items, (list, tuple)) or hasattr(items, "to_numpy")):
            try:
                arr = np.asarray(items)
            except (ValueError, TypeError):   # ragged rows
                arr = items
        if _is_numeric(arr) and arr.ndim == 2:
            from .._validation import check_matrix

            # float64 until standardised: float32 keeps 7 digits, so features sharing a large
            # offset (1e7) would lose their spread before the mean is taken off; row-major, as
            # the networks' matmuls round a column-major copy differently
            return np.ascontiguousarray(check_matrix(arr, where, dtype=np.float64))
        if self.tower is None:
            shape = f" of shape {arr.shape}" if isinstance(arr, np.ndarray) else ""
            raise InputError(f"{where}: expected a feature array of shape (n, d), got {type(items).__name__}{shape}")
        from ..towers.base import create_tower
        from ..towers.inputs import check_items

        tower = create_tower(self.tower)
        # checked here, naming ``where``: list() read one path as its characters ('/' a folder)
        items = check_items(tower.modality, items, name=where)
        # many rows share an item (a clip paired with many images): embed each distinct one once
        keys = [str(x) for x in items]
        first: dict = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        vecs = np.asarray(tower.embed([items[i] for i in first.values()], progress=False),
                          dtype=np.float64)
        row = {k: j for j, k in enumerate(first)}
        return vecs[[row[k] for k in keys]]

    def fit(self, items, where: str) -> "FeatureCodec":
        x = self.raw_features(items, where)
        self._dim = x.shape[1]
        with np.errstate(over="ignore"):
            self.mean, self.scale = x.mean(0), feature_scale(x)
        if not (np.isfinite(self.mean).all() and np.isfinite(self.scale).all()):
            raise InputError(f"{where}: the features' mean or spread overflows float64 (values up to "
                             f"{np.abs(x).max():.3g}); rescale them")
        return self

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, items, where: str) -> np.ndarray:
        x = self.raw_features(items, where)
        if x.shape[1] != self._dim:
            raise InputError(f"{where}: expected {self._dim} features, got {x.shape[1]}")
        return x

    def encode_items(self, items, where: str) -> np.ndarray:
        """Standardised features, float32 (n, d); refused beyond float32's range."""
        z = (self._features(items, where) - self.mean) / self.scale
        if not (np.abs(z) <= np.finfo(np.float32).max).all():
            raise InputError(f"{where}: values lie {np.abs(z).max():.3g} training spreads from the training mean, "
                             "beyond float32's range")
        return z.astype(np.float32)

    def observed(self, items, where: str) -> np.ndarray:
        """Real items as feature vectors in the original units (n, d), float32."""
        return self._features(items, where).astype(np.float32)

    def decode(self, mean: np.ndarray) -> np.ndarray:
        """Standardised means (n, d) -> feature vectors in the original units."""
        return (np.asarray(mean, dtype=np.float64) * self.scale + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dim": self._dim, "tower": self.tower}

    def arrays(self) -> dict:
        return {"mean": self.mean, "scale": self.scale}

    def set_arrays(self, arrays: dict) -> None:
        self.mean, self.scale = arrays["mean"], arrays["scale"]


def codec_for(items, modality: str, tower: str | None = None, where: str | None = None):
    """The codec that fits ``items``: pixels for image arrays, tokens for texts, features for
    vectors or for raw items read by ``tower``; ``where`` names ``items`` in errors (default:
    the modality)."""
    arr = items if isinstance(items, np.ndarray) else None
    if arr is not None and arr.dtype != object and arr.ndim in (3, 4):
        return PixelCodec()
    if arr is not None and arr.dtype != object and arr.ndim == 2:
        return FeatureCodec()
    if tower is not None:
        return FeatureCodec(tower=tower)
    seq = list(items)
    if seq and all(isinstance(s, str) for s in seq) and modality != "audio" and modality != "image":
        return TokenCodec()
    example = f" such as {seq[0]!r:.80}" if seq else ""
    raise InputError(f"{where or modality}: expected image arrays (n, H, W), feature vectors (n, d) or texts; got a "
                     f"{type(items).__name__} of {type(seq[0]).__name__ if seq else 'no'} items{example}, and no tower "
                     f"reads them; give one, e.g. towers={{{modality!r}: 'efficientnet-lite0'}} for image files")


def codec_from_dict(d: dict):
    kind = d.get("kind")
    if kind == "pixels":
        return PixelCodec(d["shape"])
    if kind == "tokens":
        return TokenCodec(d["vocab"], d["length"])
    if kind == "features":
        return FeatureCodec(d["dim"], d.get("tower"))
    raise InputError(f"codec: unknown kind {kind!r}")
