"""Checks of :class:`jointspace.models.dual_encoder.DualEncoder`'s settings that are not single
numbers: the private parts and their regularisers, and the parameters given as names, flags,
mappings or paths (each an InputError naming the parameter)."""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_float, check_int, check_modality_names
from ..errors import InputError

#: the largest joint-space size (``dim``) and MLP width (``hidden``) accepted
MAX_WIDTH = 16384


def _check_private(model: "DualEncoder") -> None:
    """Checks of the private-part settings (InputError naming the parameter)."""
    from ..objectives.regularizers import check_part_sizes

    check_int(model.private_dim, "private_dim", low=0, high=MAX_WIDTH)
    check_float(model.recon_weight, "recon_weight", low=0.0)
    specs = model._regularizer_specs()
    if specs and not model.private_dim:
        raise InputError(f"regularizers: they act between private parts, so they need private_dim > 0; "
                         f"got {', '.join(n for n, _ in specs)} with private_dim=0")
    check_part_sizes(specs, int(model.dim), int(model.private_dim))
    lagrangian = [n for n, _ in specs if n in ("lagrange", "auglag")]
    if lagrangian and isinstance(model.batch_size, numbers.Integral) and model.batch_size < 4:
        raise InputError(f"batch_size: {lagrangian[0]} reads its constraint on a batch of at least 4 pairs; "
                         f"got batch_size={model.batch_size}")
    if model.private_dim and model.accum_steps != 1:
        raise InputError(f"accum_steps: private parts train without gradient accumulation; got {model.accum_steps}")


def _check_params(model: "DualEncoder") -> None:
    """Type checks of the parameters that are not numbers (InputError naming the parameter)."""
    import os

    for name in ("learn_tau", "progress"):
        if not isinstance(getattr(model, name), (bool, np.bool_)):
            raise InputError(f"{name}: expected true or false, got {getattr(model, name)!r}")
    if not isinstance(model.relevance, str):
        raise InputError(f"relevance: expected a string (auto, label, id or a metadata column), "
                         f"got {model.relevance!r}")
    if model.towers is not None and not (isinstance(model.towers, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in model.towers.items())):
        raise InputError(f"towers: expected a mapping modality -> tower name, e.g. {{\"image\": "
                         f"\"efficientnet-lite0\"}}, got {model.towers!r}")
    if model.tower_params is not None and not (isinstance(model.tower_params, dict) and all(
            isinstance(k, str) and isinstance(v, dict) for k, v in model.tower_params.items())):
        raise InputError(f"tower_params: expected a mapping modality -> settings, e.g. {{\"image\": "
                         f"{{\"trainable_blocks\": 2}}}}, got {model.tower_params!r}")
    if model.modalities is not None:
        if isinstance(model.modalities, dict):
            raise InputError(f"modalities: expected a list of modality names, e.g. ['image', 'text'], "
                             f"got {model.modalities!r}")
        check_modality_names(model.modalities)
    if model.run_dir is not None and not isinstance(model.run_dir, (str, os.PathLike)):
        raise InputError(f"run_dir: expected a folder path, got {model.run_dir!r}")
    if not isinstance(model.cache, (bool, np.bool_, str, os.PathLike)):
        raise InputError(f"cache: expected true, false or a folder path, got {model.cache!r}")

