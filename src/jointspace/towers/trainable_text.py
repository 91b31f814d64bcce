"""Trainable text towers over the MiniLM WordPiece tokenizer: bag of embeddings, GRU, Transformer."""

from __future__ import annotations

from .._validation import check_int
from ..errors import InputError
from .base import register_tower
from .inputs import check_items
from .trainable import TrainableTower


class _TextTower(TrainableTower):
    modality = "text"
    default_batch_size = 128
    #: [CLS] ... [SEP] around each text (only the Transformer uses them)
    special_tokens = False

    def __init__(self, max_length: int = 64, out_dim: int = 256, seed: int = 0):
        super().__init__(out_dim, seed)
        self.max_length = check_int(max_length, "max_length", low=2, high=512)

    @property
    def tokenizer(self):
        """The all-MiniLM-L6-v2 WordPiece tokenizer (offline, from the packaged files)."""
        from .minilm import load_minilm_tokenizer

        return load_minilm_tokenizer()

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    def to_batch(self, items):
        """Texts -> ``{"input_ids": (n, L) int64, "attention_mask": (n, L) int64}``, padded with 0.

        Raises
        ------
        InputError
            A text that the tokenizer reduces to no word pieces at all (e.g. a lone combining
            accent, which normalisation strips): it would give an empty row, which the bag
            of embeddings divides by and the GRU cannot pack.
        """
        texts = check_items("text", items)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             add_special_tokens=self.special_tokens, return_tensors="pt")
        mask = enc["attention_mask"]
        n_special = 2 if self.special_tokens else 0  # [CLS] and [SEP] are not the text's own
        counts = (mask.sum(dim=1) - n_special).tolist()
        for i, c in enumerate(counts):
            if c <= 0:
                raise InputError(f"items[{i}]: text has no tokens after the tokenizer's normalisation "
                                 f"(e.g. only accents or control characters), got {texts[i]!r}")
        return {"input_ids": enc["input_ids"], "attention_mask": mask}


@register_tower("bow", "trainable bag of word-piece embeddings (word2vec-like) for texts")
class BagOfEmbeddingsTower(_TextTower):
    """Mean of learned word-piece vectors (``embed_dim``), then a linear map to ``out_dim``."""

    def __init__(self, embed_dim: int = 128, max_length: int = 64, out_dim: int = 256, seed: int = 0):
        super().__init__(max_length, out_dim, seed)
        self.embed_dim = check_int(embed_dim, "embed_dim", low=1)

    def config(self) -> dict:
        return {"embed_dim": self.embed_dim, "max_length": self.max_length, "out_dim": self.out_dim,
                "seed": self.seed}

    def _build(self):
        from ._nets import BagOfEmbeddings

        return BagOfEmbeddings(self.vocab_size, self.embed_dim, self.out_dim, pad_id=self.tokenizer.pad_token_id)


@register_tower("gru", "trainable bidirectional GRU over word pieces")
class GRUTower(_TextTower):
    """Bidirectional GRU; the last hidden states of both directions feed a linear map."""

    def __init__(self, embed_dim: int = 128, hidden: int = 128, layers: int = 1, max_length: int = 64,
                 out_dim: int = 256, seed: int = 0):
        super().__init__(max_length, out_dim, seed)
        self.embed_dim = check_int(embed_dim, "embed_dim", low=1)
        self.hidden = check_int(hidden, "hidden", low=1)
        self.layers = check_int(layers, "layers", low=1)

    def config(self) -> dict:
        return {"embed_dim": self.embed_dim, "hidden": self.hidden, "layers": self.layers,
                "max_length": self.max_length, "out_dim": self.out_dim, "seed": self.seed}

    def _build(self):
        from ._nets import GRUEncoder

        return GRUEncoder(self.vocab_size, self.embed_dim, self.hidden, self.layers, self.out_dim,
                          pad_id=self.tokenizer.pad_token_id)


@register_tower("transformer", "trainable small Transformer encoder (transformers BertModel)")
class TransformerTower(_TextTower):
    """Small BERT-style encoder with the MiniLM vocabulary; masked mean of its outputs."""

    special_tokens = True

    def __init__(self, width: int = 128, depth: int = 2, heads: int = 4, max_length: int = 64,
                 out_dim: int = 256, seed: int = 0):
        super().__init__(max_length, out_dim, seed)
        self.width = check_int(width, "width", low=1)
        self.depth = check_int(depth, "depth", low=1)
        self.heads = check_int(heads, "heads", low=1)
        if self.width % self.heads:
            raise InputError(f"heads: width ({self.width}) must be a multiple of heads ({self.heads})")

    def config(self) -> dict:
        return {"width": self.width, "depth": self.depth, "heads": self.heads, "max_length": self.max_length,
                "out_dim": self.out_dim, "seed": self.seed}

    def _build(self):
        from ._nets import TextTransformer

        return TextTransformer(self.vocab_size, self.width, self.depth, self.heads, self.max_length, self.out_dim)
