r"""A pretrained Hugging Face CLIP or SigLIP model used as a ready-made joint space.

``HFClip`` wraps a ``transformers`` ``CLIPModel`` or ``SiglipModel`` read from a local folder
(what ``save_pretrained`` or ``hf download REPO --local-dir DIR`` writes: the
weights, ``config.json``, the tokenizer files and ``preprocessor_config.json``), or from the
Hugging Face hub by its id when there is a network.  Nothing is learnt: the model's own text
and image towers and projections give the embeddings :math:`E_t` and :math:`E_a` whose
similarity matrix is the chapter's :math:`C = E_t E_a^\top / \tau`, with :math:`\tau` the
model's learnt temperature (:attr:`HFClip.temperature_`).

A saved ``hf-clip`` folder holds no weights: ``config.json`` records the absolute path (or
hub id) of the pretrained model and the SHA-256 of its ``config.json``, and loading it checks
that the pretrained folder is still there and unchanged.  The network itself is read on the
first ``encode``.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._validation import check_choice, check_int
from ..data.pairs import Pairs
from ..errors import InputError, MissingDependencyError, NotFittedError
from .base import JointModel, register_model

#: ``config.model_type`` of the architectures accepted, and their ``transformers`` class names
ARCHITECTURES = {"clip": "CLIPModel", "siglip": "SiglipModel"}
DTYPES = ("float32", "float16", "bfloat16")
_EXAMPLE_REPO = "openai/clip-vit-base-patch32"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_INSTALL = "pip install transformers pillow torch==2.13.0"


def _hub_candidate(text: str) -> bool:
    """Whether ``text`` may name a hub model (``ORG/NAME``) rather than a local folder: one
    slash, hub characters only, and no local folder ``ORG``."""
    parts = text.split("/")
    return (bool(_HUB_ID.fullmatch(text)) and len(parts) == 2 and ".." not in text and "--" not in text
            and not Path(parts[0]).expanduser().is_dir())


def _download_hint(path_text: str) -> str:
    """How to get the weights of ``path_text`` (a hub id or a folder) into a folder."""
    local = str(Path(path_text).expanduser().absolute())
    as_folder = (f"download a CLIP or SigLIP model into that folder, e.g. `hf download {_EXAMPLE_REPO} --local-dir "
                 f"{local}` (or google/siglip-base-patch16-224)")
    if _hub_candidate(path_text):   # ORG/NAME: a hub id, or a folder not made yet
        name = f"models/{path_text.split('/')[1]}"
        return (f"where there is a network, if {path_text!r} is a hub id download it with `hf download {path_text} "
                f"--local-dir {name}`, then pass path={name} (hub ids of CLIP and SigLIP models look like "
                f"{_EXAMPLE_REPO} or google/siglip-base-patch16-224); if it is a folder, {as_folder}")
    return f"where there is a network, {as_folder}"


def _hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fingerprint(source: str, local: bool) -> str:
    """SHA-256 of the pretrained model's ``config.json`` (from its folder or the hub cache)."""
    if local:
        return _sha256(Path(source) / "config.json")
    from transformers.utils import cached_file

    return _sha256(cached_file(source, "config.json"))


@register_model("hf-clip", "a pretrained Hugging Face CLIP or SigLIP model (local folder or hub id), used as is")
class HFClip(JointModel):
    """A pretrained ``transformers`` CLIP or SigLIP model as a joint image-text space.

    Parameters
    ----------
    path : str or path-like
        Folder of the pretrained model (weights, ``config.json``, tokenizer,
        ``preprocessor_config.json``), or a hub id such as ``"openai/clip-vit-base-patch32"``
        (downloaded only when the hub is reachable; ``HF_HUB_OFFLINE=1`` forbids it).
    device : {"cpu", "cuda", "cuda:N", "auto"}
        Where the network runs; embeddings come back as NumPy arrays.
    batch_size : int
        Items per forward pass.
    dtype : {"float32", "float16", "bfloat16"}
        Precision of the weights (outputs are float32 either way).

    Attributes
    ----------
    source_ : str
        Absolute path of the pretrained folder, or the hub id.
    fingerprint_ : str
        SHA-256 of the pretrained model's ``config.json``.
    architecture_ : str
        ``"CLIPModel"`` or ``"SiglipModel"``.
    dim_ : int
        Size of the joint space (the model's ``projection_dim`` / hidden size).
    modalities_ : tuple of str
        ``("image", "text")``.

    Examples
    --------
    >>> model = create_model("hf-clip", path="models/clip-vit-b32").fit()      # doctest: +SKIP
    >>> model.encode("text", ["a red car"]).shape                              # doctest: +SKIP
    (1, 512)
    """

    def __init__(self, path, device: str = "cpu", batch_size: int = 32, dtype: str = "float32"):
        self.path = path
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype

    # -- settings -------------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        """``"hf-clip (FOLDER NAME)"``."""
        source = getattr(self, "source_", None) or str(self.path)
        return f"{self.model_name} ({Path(source).name or source})"

    @property
    def towers(self) -> dict:
        """Modality -> what reads its raw items (the model's own encoders)."""
        return {"image": self.model_name, "text": self.model_name}

    def _check_settings(self) -> None:
        check_int(self.batch_size, "batch_size", low=1)
        check_choice(self.dtype, "dtype", DTYPES)
        from ..train.device import resolve_device

        resolve_device(self.device)

    def _resolve_source(self) -> tuple[str, bool]:
        """(absolute folder path or hub id, whether it is a local folder); InputError when
        neither a folder nor a reachable hub model."""
        if not isinstance(self.path, (str, os.PathLike)) or not str(self.path).strip():
            raise InputError(f"path: expected a pretrained model folder or a hub id (a non-empty string), "
                             f"got {type(self.path).__name__} {self.path!r}")
        text = os.fspath(self.path)
        folder = Path(text).expanduser()
        if folder.is_dir():
            return str(folder.resolve()), True
        if folder.exists():
            raise InputError(f"path: expected a pretrained model folder, got the file {text!r}")
        if not _hub_candidate(text):
            raise InputError(f"path: the pretrained model folder {str(folder.absolute())!r} does not exist; "
                             + _download_hint(text))
        return text, False

    # -- JointModel -----------------------------------------------------------------------
    def fit(self, pairs: Pairs | None = None, val: Pairs | None = None) -> "HFClip":
        """Read the pretrained model; nothing is learnt.

        Parameters
        ----------
        pairs : Pairs, optional
            When given, it must hold raw ``image`` and ``text`` items (file paths or pictures,
            and strings); its items are not read.
        val : Pairs, optional
            Ignored (there are no settings to choose).

        Returns
        -------
        self
        """
        self._check_settings()
        if pairs is not None:
            _check_pairs(pairs)
        source, local = self._resolve_source()
        net = _load_network(source, local, self.device, self.dtype)
        self._net = net
        self.source_, self.local_ = source, local
        self.fingerprint_ = _fingerprint(source, local)
        self.architecture_ = type(net.model).__name__
        self.dim_ = int(net.dim)
        self.modalities_ = ("image", "text")
        return self

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """``"image"`` or ``"text"`` for those modalities (see :meth:`JointModel.raw_kind`)."""
        return modality if modality in getattr(self, "modalities_", ()) else None

    @property
    def temperature_(self) -> float:
        r"""The model's temperature :math:`\tau` (``1 / exp(logit_scale)``)."""
        self._check_fitted()
        return float(1.0 / self._network().model.logit_scale.detach().float().exp())

    def _network(self) -> "_Network":
        net = getattr(self, "_net", None)
        if net is None:
            net = _load_network(self.source_, self.local_, self.device, self.dtype)
            found = _fingerprint(self.source_, self.local_)
            if found != self.fingerprint_:
                raise InputError(_changed_message(self.source_, self.fingerprint_, found))
            self._net = net
        return net

    def _encode(self, modality: str, items) -> np.ndarray:
        from ..towers.inputs import check_items

        items = check_items(modality, items, name="items")
        net = self._network()
        if modality == "text":
            return net.encode_texts(items, self.batch_size)
        return net.encode_images(items, self.batch_size)

    def get_config(self) -> dict:
        path = getattr(self, "source_", None) or os.fspath(self.path)
        return {"path": path, "device": self.device, "batch_size": self.batch_size, "dtype": self.dtype}

    def _get_extra(self) -> dict:
        return {"source": self.source_, "local": self.local_, "fingerprint": "sha256:" + self.fingerprint_,
                "architecture": self.architecture_, "dim": self.dim_}

    def _set_extra(self, extra: dict) -> None:
        source, local = str(extra["source"]), bool(extra["local"])
        digest = str(extra["fingerprint"]).removeprefix("sha256:")
        if local:
            if not Path(source).is_dir():
                raise InputError(f"model: the pretrained folder {source!r} this hf-clip model was saved with is "
                                 f"gone; put the same model back there (e.g. `hf download "
                                 f"{_EXAMPLE_REPO} --local-dir {source}` if it was that one), or fit hf-clip "
                                 "again with path=FOLDER")
            config = Path(source) / "config.json"
            found = _sha256(config) if config.is_file() else None
            if found != digest:
                raise InputError(_changed_message(source, digest, found))
        self.source_, self.local_, self.fingerprint_ = source, local, digest
        self.architecture_, self.dim_ = str(extra["architecture"]), int(extra["dim"])
        self._net = None

    def _get_state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def _check_fitted(self) -> None:
        if not hasattr(self, "source_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")


def _changed_message(source: str, recorded: str, found: str | None) -> str:
    now = "it has no config.json now" if found is None else \
        f"SHA-256 of its config.json: {recorded[:12]}… recorded, {found[:12]}… found"
    return (f"model: the pretrained model {source!r} has changed since this hf-clip model was saved ({now}); its "
            "vectors would not match those indexed before; fit hf-clip again on it")


def _check_pairs(pairs) -> None:
    if not isinstance(pairs, Pairs):
        raise InputError(f"pairs: expected a Pairs or None, got {type(pairs).__name__}")
    missing = [m for m in ("image", "text") if m not in pairs.modalities]
    if missing:
        raise InputError(f"pairs: hf-clip embeds image and text items; these pairs hold "
                         f"{', '.join(pairs.modalities)} (no {', '.join(missing)})")
    for m in ("image", "text"):
        items = pairs[m]
        if isinstance(items, np.ndarray) and items.ndim == 2 and np.issubdtype(items.dtype, np.number):
            what = "pictures (file paths, PIL images or arrays (H, W, 3))" if m == "image" else "strings"
            raise InputError(f"pairs: hf-clip reads raw {m} items ({what}), but the {m} items of these pairs are "
                             f"{items.shape[1]}-d feature vectors")


class _Network:
    """The loaded ``transformers`` model with its tokenizer and image processor."""

    def __init__(self, model, tokenizer, processor, device, dtype):
        self.model, self.tokenizer, self.processor = model, tokenizer, processor
        self.device, self.dtype = device, dtype
        self.siglip = model.config.model_type == "siglip"
        text_cfg = model.config.text_config
        self.max_length = int(text_cfg.max_position_embeddings)
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < self.max_length:
            self.max_length = tok_max
        # CLIP projects both towers to projection_dim; SigLIP's text head to projection_size
        self.dim = int(getattr(model.config, "projection_dim", None) if not self.siglip
                       else getattr(text_cfg, "projection_size", None) or text_cfg.hidden_size)

    def encode_texts(self, texts: list, batch_size: int) -> np.ndarray:
        """Text features (``get_text_features``), float32 (n, dim), not normalised."""
        import torch

        tok = self.tokenizer
        lengths = np.array([len(ids) for ids in tok(texts, truncation=False, verbose=False)["input_ids"]])
        cut = int((lengths > self.max_length).sum())
        if cut:
            warnings.warn(f"items: {cut} of {len(texts)} texts are longer than the model's {self.max_length} "
                          "tokens and were truncated", UserWarning, stacklevel=4)
        # SigLIP was trained on texts padded to the full length, and pools the last position
        pad = {"padding": "max_length"} if self.siglip else {"padding": True}
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        with _progress("hf-clip text", len(texts), batch_size) as advance, torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                rows = order[s:s + batch_size]
                enc = tok([texts[i] for i in rows], truncation=True, max_length=self.max_length,
                          return_tensors="pt", **pad)
                inputs = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask") if k in enc}
                out[rows] = _pooled(self.model.get_text_features(**inputs))
                advance(len(rows))
        return out

    def encode_images(self, items: list, batch_size: int) -> np.ndarray:
        """Image features (``get_image_features``), float32 (n, dim), not normalised."""
        import torch
        from PIL import Image

        from ..towers.inputs import load_image

        out = np.empty((len(items), self.dim), np.float32)
        with _progress("hf-clip image", len(items), batch_size) as advance, torch.inference_mode():
            for s in range(0, len(items), batch_size):
                pictures = [Image.fromarray(load_image(it, f"items[{s + j}]"))
                            for j, it in enumerate(items[s:s + batch_size])]
                pixels = self.processor(images=pictures, return_tensors="pt")["pixel_values"]
                out[s:s + len(pictures)] = _pooled(
                    self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))
                advance(len(pictures))
        return out


def _pooled(output) -> np.ndarray:
    """The projected features of a ``get_*_features`` result (a tensor in transformers 4, a
    model output whose ``pooler_output`` holds them in transformers 5)."""
    tensor = output if hasattr(output, "detach") else output.pooler_output
    return tensor.detach().float().cpu().numpy()


def _progress(name: str, n: int, batch_size: int):
    from .._progress import progress_bar

    return progress_bar(name, n, enabled=None if n > batch_size else False)


def _load_network(source: str, local: bool, device: str, dtype: str) -> _Network:
    """Read the model, its tokenizer and its (PIL) image processor; InputError naming ``path``
    for anything missing or of another kind."""
    try:
        import torch
        import transformers
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise MissingDependencyError(f"the hf-clip model needs transformers, torch and pillow: {_INSTALL}") from None
    from ..train.device import resolve_device

    hf_logging.disable_progress_bar()
    offline = _hub_offline()
    where = repr(source)
    opts = {"local_files_only": True} if (local or offline) else {}
    if local and not (Path(source) / "config.json").is_file():
        raise InputError(f"path: the folder {where} has no config.json; expected a Hugging Face model folder "
                         f"(written by save_pretrained or by hf download); {_download_hint(source)}")
    try:
        config = AutoConfig.from_pretrained(source, **opts)
    except (OSError, ValueError) as exc:
        if not local and offline:
            raise InputError(f"path: {where} is neither a folder (there is no {str(Path(source).absolute())!r}) nor "
                             f"a model in the Hugging Face cache, and the hub is offline (HF_HUB_OFFLINE=1); "
                             f"{_download_hint(source)}") from None
        if not local:
            raise InputError(f"path: {where} is neither a folder nor a model the Hugging Face hub could give "
                             f"({_first_line(exc)}); {_download_hint(source)}") from None
        raise InputError(f"path: cannot read the model config of {where} ({_first_line(exc)})") from None
    if config.model_type not in ARCHITECTURES:
        raise InputError(f"path: {where} holds a {config.model_type!r} model; hf-clip needs a joint image-text "
                         f"model: {' or '.join(ARCHITECTURES.values())} (model_type "
                         f"{' or '.join(map(repr, ARCHITECTURES))})")
    torch_dtype = getattr(torch, dtype)
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        model = AutoModel.from_pretrained(source, **opts, **{dtype_key: torch_dtype})
    except (OSError, ValueError) as exc:
        raise InputError(f"path: cannot read the weights of {where} ({_first_line(exc)})") from None
    if type(model).__name__ not in ARCHITECTURES.values():
        raise InputError(f"path: {where} loads as a {type(model).__name__}; hf-clip needs a "
                         f"{' or '.join(ARCHITECTURES.values())}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **opts)
    except ImportError as exc:
        raise MissingDependencyError(f"path: the tokenizer of {where} needs a package that is not installed "
                                     f"({_first_line(exc)})") from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"path: cannot read the tokenizer of {where} ({_first_line(exc)})") from None
    backend = {"backend": "pil"} if dtype_key == "dtype" else {"use_fast": False}
    try:
        processor = AutoImageProcessor.from_pretrained(source, **opts, **backend)
    except (OSError, ValueError) as exc:
        raise InputError(f"path: cannot read the image processor of {where} (preprocessor_config.json: "
                         f"{_first_line(exc)})") from None
    target = resolve_device(device)
    model = model.to(target).eval()
    return _Network(model, tokenizer, processor, target, torch_dtype)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
