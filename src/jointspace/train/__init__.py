"""Training: the loop, AdamW with warm-up + cosine, checkpoints, and multi-process training.

The main entry points are :func:`fit_dual_encoder` (contrastive dual encoders;
:class:`TrainConfig` holds its settings) and :func:`fit_module` (any network with its own loss:
autoencoders, VAEs; :class:`FitConfig`), with further steps per batch on parts of the network
(:class:`Phase`, the phases of an adversarial autoencoder).
"""

from .generic import FitConfig, FitResult, TrainingDiverged, fit_module
from .loop import TrainConfig, TrainResult, bf16_supported, config_from_dict, evaluate_recall, fit_dual_encoder
from .phases import Phase

__all__ = ["TrainConfig", "TrainResult", "fit_dual_encoder", "evaluate_recall", "config_from_dict",
           "bf16_supported", "FitConfig", "FitResult", "fit_module", "TrainingDiverged", "Phase"]
