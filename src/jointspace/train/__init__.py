"""Training: the loop, AdamW with warm-up + cosine, checkpoints, and multi-process training.

The main entry point is :func:`fit_dual_encoder`; :class:`TrainConfig` holds its settings.
"""

from .loop import TrainConfig, TrainResult, bf16_supported, config_from_dict, evaluate_recall, fit_dual_encoder

__all__ = ["TrainConfig", "TrainResult", "fit_dual_encoder", "evaluate_recall", "config_from_dict",
           "bf16_supported"]
