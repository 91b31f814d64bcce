"""Towers: turn raw items of one modality into vectors (see :mod:`jointspace.towers.base`).

Pretrained and frozen: ``efficientnet-lite0`` (images), ``minilm`` (texts); audio features:
``logmel``, ``mfcc``; trainable: ``cnn``, ``resnet``, ``vit``, ``bow``, ``gru``,
``transformer``, ``audio-cnn``, ``mlp``.
"""

from .base import MODALITIES, TOWERS, Tower, create_tower, describe_towers, list_towers, register_tower
from .cache import EmbeddingCache, default_cache_dir, embed_cached

__all__ = ["MODALITIES", "TOWERS", "Tower", "create_tower", "describe_towers", "list_towers", "register_tower",
           "EmbeddingCache", "default_cache_dir", "embed_cached"]
