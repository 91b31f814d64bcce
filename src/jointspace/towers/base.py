"""The tower surface and the tower registry.

A tower turns raw items of one modality (image files, texts, sounds, feature vectors) into
vectors of a fixed size ``out_dim``.  Frozen pretrained towers and trainable towers share
:meth:`Tower.embed`; trainable ones add ``module`` / ``to_batch`` (see
:mod:`jointspace.towers.trainable`).

Towers are created by name::

    >>> from jointspace.towers import create_tower
    >>> tower = create_tower("mfcc", n_mfcc=13)          # doctest: +SKIP
    >>> tower.embed(["a.wav", "b.wav"]).shape            # doctest: +SKIP
    (2, 52)
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .._file_digests import file_state, hash_file
from .._validation import check_int, check_params
from ..errors import InputError
from ..registry import Registry
from .._progress import progress_bar
from .inputs import check_items

TOWERS: Registry = Registry("tower")

#: the modalities a tower can handle
MODALITIES = ("image", "text", "audio", "features")


class Tower:
    """Base class: maps a list of raw items of one modality to an ``(n, out_dim)`` array.

    Subclasses set the class attributes ``modality`` and ``default_batch_size``, set
    ``self.out_dim`` in ``__init__``, and implement ``config()`` and ``_embed_batch(items)``
    (items already validated, at most one batch of them).

    Attributes
    ----------
    name : str
        Registry name (set by :func:`register_tower`).
    modality : str
        One of ``"image"``, ``"text"``, ``"audio"``, ``"features"``.
    out_dim : int
        Length of each output vector.
    """

    name: str = ""
    modality: str = ""
    default_batch_size: int = 32
    #: whether the tower's output changes with training (trainable towers hash their weights
    #: into their cache key)
    trainable: bool = False
    #: :func:`weights_fingerprint` of the files :meth:`weights_files` names as the tower was
    #: published; with those files the cache key is the one it had before it held the weights
    published_weights: str = ""

    out_dim: int = 0

    # -- to implement ----------------------------------------------------------------------
    def config(self) -> dict:
        """JSON-able settings; ``create_tower(self.name, **self.config())`` rebuilds the tower."""
        return {}

    def _embed_batch(self, items: list) -> np.ndarray:
        raise NotImplementedError

    def weights_files(self) -> dict:
        """The files whose contents decide the vectors beside the settings (pretrained weights,
        a tokenizer's vocabulary), by a name that does not depend on where they are installed.

        Returns
        -------
        dict of str -> path
            Empty for a tower without such files (the default).
        """
        return {}

    # -- the shared surface ----------------------------------------------------------------
    def embed(self, items, batch_size: int | None = None, progress: bool = True,
              modality: str | None = None) -> np.ndarray:
        """Embed ``items`` in batches; only one batch of decoded items is held at a time.

        Parameters
        ----------
        items : sequence of n raw items, or an array whose first axis is n
            image: file paths, PIL images or uint8 arrays (H, W, 3) / (H, W);
            text: non-empty strings; audio: WAV paths or 1-D float arrays;
            features: an array (n, d).
        batch_size : int, optional
            Items per forward pass (default ``default_batch_size``).
        progress : bool
            Show a progress bar on stderr when there is more than one batch.
        modality : str, optional
            The modality the caller means ``items`` to be; a mismatch with the tower's
            modality raises :class:`InputError`.

        Returns
        -------
        vectors : ndarray of float32, shape (n, out_dim)
        """
        self.check_modality(modality)
        items = check_items(self.modality, items, name="items")
        bs = check_int(batch_size if batch_size is not None else self.default_batch_size, "batch_size", low=1)
        n = len(items)
        order = self._order(items)
        out = np.empty((n, self.out_dim), dtype=np.float32)
        batches = [order[s:s + bs] if order is not None else slice(s, s + bs) for s in range(0, n, bs)]

        def take(rows):
            return [items[i] for i in rows] if order is not None else items[rows]

        with progress_bar(self.name, n, enabled=progress and n > bs) as advance:
            for rows, count, prepared in self._prepared_batches(batches, take):
                vec = np.asarray(self._embed_prepared(prepared), dtype=np.float32)
                if vec.shape != (count, self.out_dim):
                    raise RuntimeError(f"tower {self.name}: batch gave shape {vec.shape}, "
                                       f"expected {(count, self.out_dim)}")
                out[rows] = vec
                advance(count)
        return out

    # -- decoding the next batch while the network runs -----------------------------------
    def _prepare(self, chunk):
        """The network input of one batch of raw items (decoding, resizing).  A tower that
        overrides it (with :meth:`_embed_prepared`) has the next batch prepared in a background
        thread while the network runs on the current one."""
        return chunk

    def _embed_prepared(self, prepared) -> np.ndarray:
        """Vectors (n, out_dim) of one batch prepared by :meth:`_prepare`."""
        return self._embed_batch(prepared)

    def _prepared_batches(self, batches: list, take):
        """``(rows, n_items, prepared input)`` of each batch in turn; with an overridden
        :meth:`_prepare`, batch k + 1 is prepared in one background thread while the caller
        runs batch k (decoders such as PIL release the GIL).  An error in preparing a batch
        is raised when that batch's turn comes, as it would be without the thread."""
        def prepare(rows):
            chunk = take(rows)
            return len(chunk), self._prepare(chunk)

        if type(self)._prepare is Tower._prepare or len(batches) < 2:
            for rows in batches:
                yield rows, *prepare(rows)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-prepare") as pool:
            ahead = pool.submit(prepare, batches[0])
            for k, rows in enumerate(batches):
                count, prepared = ahead.result()
                if k + 1 < len(batches):
                    ahead = pool.submit(prepare, batches[k + 1])
                yield rows, count, prepared

    def _order(self, items):
        """Optional processing order (a permutation of the item indices), e.g. texts by length
        so a batch pads little; results are returned in the input order regardless."""
        return None

    def check_modality(self, modality: str | None) -> None:
        """Raise :class:`InputError` when ``modality`` is given and is not this tower's."""
        if modality is not None and modality != self.modality:
            raise InputError(f"modality: tower {self.name!r} handles {self.modality} items; "
                             f"it was asked for {modality!r}")

    def weights_digest(self) -> str:
        """:func:`weights_fingerprint` of :meth:`weights_files`; empty for a tower without such
        files, and for the weights the tower was published with (``published_weights``)."""
        files = self.weights_files()
        weights = weights_fingerprint(files) if files else ""
        return "" if weights == self.published_weights else weights

    def cache_key(self) -> str:
        """A digest of everything that decides the output: name, settings and weights files.

        A ``runtime`` of ``"torch"`` is left out, so features cached before towers had a
        runtime stay valid; another runtime keys its own features.  The files of
        :meth:`weights_files` add their :func:`weights_fingerprint`, so other weights at the
        same place (another version of the package, a fine-tuned file) key their own features
        instead of reading those of the weights they replaced.  The fingerprint of the weights
        the tower was published with (``published_weights``) is left out: features cached
        before the key held the weights keep their key, as they were computed with those
        weights unless the files had been replaced then.
        """
        cfg = self.config()
        if cfg.get("runtime") == "torch":
            cfg = {k: v for k, v in cfg.items() if k != "runtime"}
        described = {"tower": self.name, "config": cfg}
        weights = self.weights_digest()
        if weights:
            described["weights"] = weights
        blob = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


#: sha256 of the weights files this process has read: real path -> (file state, sha256)
_file_sha256: dict = {}


def weights_fingerprint(files: dict) -> str:
    """A digest of a tower's weights files: each one's name, size and sha256 of its bytes.

    Each file is read once per process: its sha256 is kept while its size, inode and
    modification and change times stay the same, so a file replaced since is read again.

    Parameters
    ----------
    files : dict of str -> path
        The files by name (:meth:`Tower.weights_files`); the name, not where the file lies,
        enters the digest, so the same weights installed elsewhere give the same fingerprint.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    for name in sorted(files):
        real, seen = file_state(files[name])
        known = _file_sha256.get(real)
        if known is None or known[0] != seen:
            known = _file_sha256[real] = (seen, hash_file(real, hashlib.sha256())[0].hexdigest())
        h.update(f"{name}\0{seen[0]}\0{known[1]}\0".encode())
    return h.hexdigest()


def register_tower(name: str, help: str = ""):
    """Class decorator: register a :class:`Tower` subclass under ``name``."""

    def deco(cls):
        if cls.modality not in MODALITIES:
            raise ValueError(f"tower {name!r}: modality must be one of {MODALITIES}, got {cls.modality!r}")
        cls.name = name
        TOWERS.register(name, help)(cls)
        return cls

    return deco


def _import_builtin() -> None:
    from . import _builtin  # noqa: F401  (registers the built-in towers)


def create_tower(name: str, modality: str | None = None, **params) -> Tower:
    """Build a registered tower by name, e.g. ``create_tower("minilm")``.

    Parameters
    ----------
    name : str
        One of :func:`list_towers`.
    modality : str, optional
        When given, the modality the tower must handle (a mismatch raises :class:`InputError`).
    **params
        The tower's settings (see its class).
    """
    if isinstance(name, Tower):
        name.check_modality(modality)
        return name
    _import_builtin()
    cls = TOWERS.get(name)
    if modality is not None and modality != cls.modality:
        raise InputError(f"modality: tower {name!r} handles {cls.modality} items; it was asked for {modality!r}")
    check_params(f"tower {name!r}", cls, params)
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"tower {name!r}: bad parameters: {exc}") from None


def list_towers(modality: str | None = None) -> list[str]:
    """Names of the registered towers, optionally only those of one modality."""
    _import_builtin()
    names = TOWERS.names()
    if modality is None:
        return names
    return [n for n in names if TOWERS.get(n).modality == modality]


def describe_towers() -> list[dict]:
    """One dict per tower: name, modality, trainable, description."""
    _import_builtin()
    rows = []
    for n in TOWERS.names():
        cls = TOWERS.get(n)
        rows.append({"name": n, "modality": cls.modality, "trainable": bool(cls.trainable),
                     "description": TOWERS.describe(n)})
    return rows
