"""Input checks shared by the contrastive objectives (tensors in, clear errors out)."""

from __future__ import annotations

import torch

from ..errors import InputError


def check_features(x, name: str, *, min_rows: int = 2, contrastive: bool = True) -> torch.Tensor:
    """Return ``x`` as a finite 2-D floating tensor with at least ``min_rows`` rows (a batch of
    one is explained as a contrastive loss's unless ``contrastive`` is False)."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape (n, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise InputError(f"{name}: expected a 2-D tensor of shape (n, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a floating tensor, got dtype {x.dtype}")
    if x.shape[0] < min_rows:
        if contrastive and min_rows == 2 and x.shape[0] == 1:
            raise InputError(f"{name}: a contrastive loss needs a batch of at least 2 pairs (a batch of 1 "
                             "has no negatives); got batch size 1")
        raise InputError(f"{name}: expected at least {min_rows} rows, got {x.shape[0]}")
    # One reduction is cheaper than an elementwise test; a NaN or Inf anywhere makes the sum
    # non-finite (an overflowing sum of finite values is told apart by the full test).
    if not bool(torch.isfinite(x.detach().sum())) and not bool(torch.isfinite(x.detach()).all()):
        bad = torch.nonzero(~torch.isfinite(x.detach()))[0].tolist()
        raise InputError(f"{name}: expected finite features, got NaN or Inf (first at row {bad[0]}, "
                         f"column {bad[1]})")
    return x


def check_same_device(ref: torch.Tensor, x, ref_name: str, name: str) -> None:
    """InputError naming ``name`` when ``x`` is a tensor on another device than ``ref`` (torch
    would fail inside the computation without naming either argument)."""
    if isinstance(x, torch.Tensor) and x.device != ref.device:
        raise InputError(f"{name}: expected a tensor on the device of {ref_name} ({ref.device}), got {x.device}")


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{name_b}: expected the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}")


def check_scale(scale, name: str = "logit_scale") -> torch.Tensor:
    """A positive finite scalar (float or 0-d / 1-element tensor) as a tensor.

    A Python number becomes a float64 tensor, so that float64 features get the scale they were
    given (a 0-d tensor does not widen float32 features, which round it to float32 themselves)."""
    if not isinstance(scale, torch.Tensor):
        try:
            scale = torch.tensor(float(scale), dtype=torch.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name}: expected a positive number, got {scale!r}") from None
    if scale.numel() != 1:
        raise InputError(f"{name}: expected a scalar, got shape {tuple(scale.shape)}")
    v = float(scale.detach())
    if not (v > 0 and v < float("inf")):
        raise InputError(f"{name}: expected a positive finite number, got {v}")
    return scale.reshape(())
