"""Trainable towers: a ``torch.nn.Module`` plus the code that turns raw items into its input.

The uniform interface a trainer uses::

    tower = create_tower("cnn", out_dim=128)
    batch = tower.to_batch(items)        # a tensor, or a dict of tensors
    z = tower.module(batch)              # (n, out_dim), with gradients

``tower.embed(items)`` runs the module in eval mode without gradients (as any tower).
Weights start from ``seed``, so two towers built with the same settings are identical.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .._validation import check_float, check_int
from ..errors import InputError, MissingDependencyError
from .base import Tower, register_tower
from .efficientnet import resize_rgb
from .inputs import check_items, load_image


def _int_list(value, name: str) -> list:
    """A sequence of integers >= 1 (channels, depths, layer sizes) as a list; a lone number or a
    string is refused naming ``name`` (a string's characters would be read one by one)."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise InputError(f"{name}: expected a list of integers >= 1, got {value!r}")
    return [check_int(v, name, low=1) for v in value]


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("trainable towers need PyTorch: pip install torch==2.13.0") from None
    return torch


class TrainableTower(Tower):
    """Base of the trainable towers.

    Subclasses implement ``_build() -> nn.Module`` and ``to_batch(items)``; ``config()``
    returns the constructor arguments.
    """

    trainable = True

    def __init__(self, out_dim: int = 256, seed: int = 0):
        self.out_dim = check_int(out_dim, "out_dim", low=1)
        self.seed = check_int(seed, "seed", low=0)
        self._module = None

    @property
    def module(self):
        """The ``torch.nn.Module`` (built on first use, from ``seed``)."""
        if self._module is None:
            torch = _torch()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._module = self._build()
        return self._module

    def _build(self):
        raise NotImplementedError

    def to_batch(self, items):
        """Raw items -> the module's input (tensor or dict of tensors, on the CPU)."""
        raise NotImplementedError

    def forward(self, items):
        """``module(to_batch(items))``: (n, out_dim) tensor, with gradients."""
        return self.module(self.to_batch(items))

    def _embed_batch(self, items) -> np.ndarray:
        torch = _torch()
        module = self.module
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                batch = self.to_batch(items)
                device = next(module.parameters()).device
                batch = ({k: v.to(device) for k, v in batch.items()} if isinstance(batch, dict)
                         else batch.to(device))
                return module(batch).float().cpu().numpy()
        finally:
            module.train(was_training)

    def cache_key(self) -> str:
        """Name, settings and a digest of the current weights (they change with training)."""
        h = hashlib.sha256(super().cache_key().encode())
        for k, v in sorted(self.module.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


# -- images --------------------------------------------------------------------------------

class _ImageTower(TrainableTower):
    modality = "image"
    default_batch_size = 64

    def __init__(self, image_size: int = 64, channels: int = 3, out_dim: int = 256, seed: int = 0):
        super().__init__(out_dim, seed)
        self.image_size = check_int(image_size, "image_size", low=8, high=1024)
        self.channels = check_int(channels, "channels", low=1, high=3)
        if self.channels == 2:
            from ..errors import InputError

            raise InputError("channels: expected 1 (grayscale) or 3 (RGB), got 2")

    def config(self) -> dict:
        return {"image_size": self.image_size, "channels": self.channels, "out_dim": self.out_dim, "seed": self.seed}

    def to_batch(self, items):
        """Images -> float32 tensor (n, channels, image_size, image_size), ``(x - 127) / 128``."""
        torch = _torch()
        items = check_items("image", items)
        s = self.image_size
        batch = np.empty((len(items), s, s, 3), dtype=np.uint8)
        for i, it in enumerate(items):
            batch[i] = resize_rgb(load_image(it, f"items[{i}]"), s, "squash")
        x = torch.from_numpy(batch).float()
        if self.channels == 1:
            x = x.mean(dim=3, keepdim=True)
        return ((x - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()


@register_tower("cnn", "trainable CNN (conv-BN-ReLU-pool blocks) for images")
class CNNTower(_ImageTower):
    """Trainable image CNN; ``widths`` are the channels of its conv blocks."""

    def __init__(self, image_size: int = 64, channels: int = 3, widths=(32, 64, 128), out_dim: int = 256,
                 seed: int = 0):
        super().__init__(image_size, channels, out_dim, seed)
        self.widths = _int_list(widths, "widths")

    def config(self) -> dict:
        return {**super().config(), "widths": list(self.widths)}

    def _build(self):
        from ._nets import ImageCNN

        return ImageCNN(self.channels, self.widths, self.out_dim)


@register_tower("resnet", "trainable small ResNet (transformers ResNetModel, basic blocks)")
class ResNetTower(_ImageTower):
    """Trainable small ResNet: stages of ``depths`` basic blocks with ``widths`` channels."""

    def __init__(self, image_size: int = 64, channels: int = 3, widths=(32, 64, 128), depths=(1, 1, 1),
                 out_dim: int = 256, seed: int = 0):
        super().__init__(image_size, channels, out_dim, seed)
        self.widths = _int_list(widths, "widths")
        self.depths = _int_list(depths, "depths")
        if len(self.widths) != len(self.depths):
            from ..errors import InputError

            raise InputError(f"depths: expected one depth per width ({len(self.widths)}), got {len(self.depths)}")

    def config(self) -> dict:
        return {**super().config(), "widths": list(self.widths), "depths": list(self.depths)}

    def _build(self):
        from ._nets import ImageResNet

        return ImageResNet(self.channels, self.widths, self.depths, self.out_dim)


@register_tower("vit", "trainable small Vision Transformer (transformers ViTModel)")
class ViTTower(_ImageTower):
    """Trainable small ViT over ``patch_size`` patches; output from the [CLS] token."""

    def __init__(self, image_size: int = 64, channels: int = 3, patch_size: int = 8, width: int = 128,
                 depth: int = 4, heads: int = 4, out_dim: int = 256, seed: int = 0):
        super().__init__(image_size, channels, out_dim, seed)
        self.patch_size = check_int(patch_size, "patch_size", low=1, high=self.image_size)
        self.width = check_int(width, "width", low=1)
        self.depth = check_int(depth, "depth", low=1)
        self.heads = check_int(heads, "heads", low=1)
        if self.image_size % self.patch_size or self.width % self.heads:
            from ..errors import InputError

            raise InputError(f"patch_size/heads: image_size ({self.image_size}) must be a multiple of patch_size "
                             f"({self.patch_size}) and width ({self.width}) a multiple of heads ({self.heads})")

    def config(self) -> dict:
        return {**super().config(), "patch_size": self.patch_size, "width": self.width, "depth": self.depth,
                "heads": self.heads}

    def _build(self):
        from ._nets import ImageViT

        return ImageViT(self.channels, self.image_size, self.patch_size, self.width, self.depth, self.heads,
                        self.out_dim)


# -- feature vectors -----------------------------------------------------------------------

@register_tower("mlp", "trainable MLP for feature vectors")
class MLPTower(TrainableTower):
    """Trainable MLP over feature vectors of length ``in_dim``."""

    modality = "features"
    default_batch_size = 1024

    def __init__(self, in_dim: int, hidden=(512,), out_dim: int = 256, dropout: float = 0.1, seed: int = 0):
        super().__init__(out_dim, seed)
        self.in_dim = check_int(in_dim, "in_dim", low=1)
        self.hidden = _int_list(hidden, "hidden")
        self.dropout = check_float(dropout, "dropout", low=0.0, high=0.99)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "out_dim": self.out_dim,
                "dropout": self.dropout, "seed": self.seed}

    def _build(self):
        from ._nets import MLP

        return MLP(self.in_dim, self.hidden, self.out_dim, self.dropout)

    def to_batch(self, items):
        """Feature rows -> float32 tensor (n, in_dim)."""
        from ..errors import InputError

        x = check_items("features", items)
        if x.shape[1] != self.in_dim:
            raise InputError(f"items: expected {self.in_dim} features per row, got {x.shape[1]}")
        return _torch().from_numpy(np.ascontiguousarray(x))


# -- audio ---------------------------------------------------------------------------------

@register_tower("audio-cnn", "trainable CNN over log-mel spectrograms")
class AudioCNNTower(TrainableTower):
    """Trainable CNN over a log-mel spectrogram cut or zero-padded to ``max_frames`` frames."""

    modality = "audio"
    default_batch_size = 64

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, max_frames: int = 128, widths=(32, 64, 128),
                 out_dim: int = 256, seed: int = 0):
        super().__init__(out_dim, seed)
        from .audio import LogMelTower

        self._logmel = LogMelTower(sample_rate=sample_rate, n_mels=n_mels)
        self.sample_rate, self.n_mels = self._logmel.sample_rate, self._logmel.n_mels
        self.max_frames = check_int(max_frames, "max_frames", low=8)
        self.widths = _int_list(widths, "widths")

    def config(self) -> dict:
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "max_frames": self.max_frames,
                "widths": list(self.widths), "out_dim": self.out_dim, "seed": self.seed}

    def _build(self):
        from ._nets import AudioCNN

        return AudioCNN(self.widths, self.out_dim)

    def to_batch(self, items):
        """Sounds -> float32 tensor (n, 1, n_mels, max_frames) of log-mel dB values."""
        seq, _ = self._logmel.sequence(items, max_frames=self.max_frames)
        return _torch().from_numpy(seq).transpose(1, 2).unsqueeze(1).contiguous()
