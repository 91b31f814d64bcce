"""Where training runs: the CPU, or a CUDA device (one per process under torchrun).

Tensors of a batch move to the training device just before the forward pass; the trained
network comes back to the CPU for encoding and saving.  Across processes the collective
backend follows the device: gloo for CPU tensors, NCCL for CUDA ones.
"""

from __future__ import annotations

import os
import re

import torch

from ..errors import InputError

#: accepted ``device`` settings ("cuda:N" picks a GPU; under torchrun "cuda" means the
#: process's own GPU, ``LOCAL_RANK``)
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "auto")


def resolve_device(device: str = "cpu") -> torch.device:
    """The :class:`torch.device` a ``device`` setting names.

    Parameters
    ----------
    device : {"cpu", "cuda", "cuda:N", "auto"}
        "auto" is CUDA when PyTorch sees a GPU, else the CPU.

    Raises
    ------
    InputError
        An unknown name, or CUDA asked for where PyTorch sees no GPU.
    """
    if not isinstance(device, str) or not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        raise InputError(f"device: expected one of {', '.join(DEVICE_CHOICES)}, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device: {device!r} needs a CUDA build of PyTorch and a GPU, and this machine has "
                         "neither; use device=cpu")
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    index = int(device.split(":")[1])
    if index >= torch.cuda.device_count():
        raise InputError(f"device: {device!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(device)


def backend_for(device: torch.device) -> str:
    """The ``torch.distributed`` backend for tensors on ``device``."""
    return "nccl" if device.type == "cuda" else "gloo"


def to_device(x, device: torch.device):
    """A tensor, or a dict of tensors, on ``device``; anything else (raw items) unchanged."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def get_rng_state(device: torch.device) -> tuple:
    """The random state dropout on ``device`` draws from (the CPU's, and the GPU's on CUDA)."""
    cpu = torch.get_rng_state()
    return (cpu, torch.cuda.get_rng_state(device)) if device.type == "cuda" else (cpu, None)


def set_rng_state(state: tuple, device: torch.device) -> None:
    """Restore a state from :func:`get_rng_state`."""
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
