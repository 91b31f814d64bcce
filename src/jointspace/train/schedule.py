"""Optimiser and learning-rate schedule: AdamW, linear warm-up then cosine decay.

The schedule is a pure function of the step (:func:`lr_at`), applied by torch's own
:class:`~torch.optim.lr_scheduler.LambdaLR` (:func:`make_scheduler`), so a resumed run needs
only the step to land on exactly the same learning rate.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..errors import InputError


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    r"""Learning rate of optimiser step ``step`` (0-based).

    Linear warm-up over ``warmup_steps`` (``base * (step + 1) / warmup``), then a cosine from
    ``base_lr`` down to ``min_lr`` at ``total_steps``:

    .. math::  \eta_s = \eta_{min} + \tfrac12(\eta - \eta_{min})\big(1 + \cos(\pi\,
               \tfrac{s - w}{T - w})\big)
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
    """The schedule as a function ``step -> learning rate`` (:func:`lr_at` with these settings)."""
    def rate(step: int) -> float:
        return lr_at(step, base_lr, warmup_steps, total_steps, min_lr)
    return rate


def make_scheduler(opt: torch.optim.Optimizer, rate, start_step: int = 0) -> LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` that gives each parameter group
    ``rate(step) * lr_scale`` (its ``lr_scale``, default 1), starting at ``start_step``.

    ``rate`` returns the rate itself rather than a factor of the optimiser's base rate: the
    groups' base rate (``initial_lr``) is set to 1, so the rate set is ``rate(step) * lr_scale``
    to the last bit (a product ``base * factor`` would round differently).  Call ``step()``
    after each optimiser step; a resumed run passes the steps done as ``start_step``.
    """
    lambdas = []
    for g in opt.param_groups:
        g["initial_lr"] = 1.0
        lambdas.append(lambda step, scale=g.get("lr_scale", 1.0): rate(step) * scale)
    return LambdaLR(opt, lambdas, last_epoch=start_step - 1)


def resolve_warmup(warmup, total_steps: int) -> int:
    """``warmup`` as a step count: an int is steps, a float in [0, 1) a fraction of the run."""
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not warmup >= 0 or warmup == float("inf"):
        raise InputError(f"warmup: expected a number of steps (int >= 0) or a fraction in [0, 1), got {warmup!r}")
    if isinstance(warmup, float):
        if warmup >= 1:
            raise InputError(f"warmup: a fractional warm-up must be below 1, got {warmup}")
        return int(round(warmup * total_steps))
    return int(warmup)


def param_groups(module: torch.nn.Module, weight_decay: float, tower_lr_scale: float = 1.0) -> list[dict]:
    """AdamW groups: weights of matrices decay; biases, norm layers, gains and the
    temperature (every parameter with fewer than 2 dimensions) do not (as CLIP).

    With ``tower_lr_scale`` != 1 the parameters under ``tower_modules`` (trainable or unfrozen
    pretrained towers) get their own two groups whose ``lr_scale`` multiplies the scheduled
    learning rate (pretrained weights want a smaller step than fresh heads).
    """
    split_towers = float(tower_lr_scale) != 1.0
    buckets: dict[tuple[bool, bool], list] = {}   # (tower, no decay) -> parameters, in module order
    for name, p in module.named_parameters():
        if p.requires_grad:
            tower = split_towers and name.startswith("tower_modules.")
            no_decay = p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
            buckets.setdefault((tower, no_decay), []).append(p)
    return [{"params": buckets[key], "weight_decay": 0.0 if key[1] else float(weight_decay),
             "lr_scale": float(tower_lr_scale) if key[0] else 1.0}
            for key in sorted(buckets)]


def make_optimizer(module: torch.nn.Module, lr: float, weight_decay: float,
                   betas=(0.9, 0.98), eps: float = 1e-6, tower_lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with CLIP's betas and epsilon."""
    groups = param_groups(module, weight_decay, tower_lr_scale)
    if not groups:
        raise InputError("module: it has no trainable parameters")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
