"""Further optimiser steps per batch on parts of a network (the phases of adversarial training).

An adversarial autoencoder (Makhzani et al. 2016) trains in phases on each mini-batch: the
autoencoder on its reconstruction, then the discriminator on telling codes from prior draws,
then the encoders on fooling it.  Each phase has an optimiser of its own, so the size of one
loss (a reconstruction of a few thousand nats) cannot swamp another (an adversarial term of
about one nat), as it does when the terms share one Adam step.

:class:`Phase` describes one such step for :func:`jointspace.train.fit_module`;
:class:`OptimizerSet` keeps the optimisers of a run together so a checkpoint holds them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_float
from ..errors import InputError


@dataclass(frozen=True)
class Phase:
    """One further optimiser step per batch, on the parameters of some submodules.

    Attributes
    ----------
    name : str
        Logged as the phase's loss (the epoch mean of ``loss_fn``'s loss, named ``name``).
    modules : tuple of str
        Attribute names of the submodules of the network it updates (e.g. ``("discriminator",)``).
    loss_fn : callable(net, batch, step, epoch) -> (Tensor, dict)
        As :func:`~jointspace.train.fit_module`'s: a 0-d loss and logs; gradients it leaves on
        parameters outside ``modules`` are discarded.
    lr_scale : float
        Multiplies the scheduled learning rate for this phase.
    """

    name: str
    modules: tuple
    loss_fn: object
    lr_scale: float = 1.0

    def parameters(self, net: torch.nn.Module) -> torch.nn.Module:
        """The submodules ``modules`` of ``net`` as one module (what the phase's optimiser updates)."""
        missing = [m for m in self.modules if not isinstance(getattr(net, m, None), torch.nn.Module)]
        if missing:
            raise InputError(f"phases: phase {self.name!r} names {', '.join(map(repr, missing))}, which "
                             f"{'is not a submodule' if len(missing) == 1 else 'are not submodules'} of the network")
        return torch.nn.ModuleList([getattr(net, m) for m in self.modules])


def check_phases(phases, reserved) -> tuple:
    """``phases`` as a tuple of :class:`Phase`, or :class:`InputError` naming what is wrong.

    ``reserved`` are the log names a phase may not take (the loop's own).
    """
    if phases is None:
        return ()
    if not isinstance(phases, (list, tuple)):
        raise InputError(f"phases: expected a list of Phase, got {type(phases).__name__}")
    names = set()
    for ph in phases:
        if not isinstance(ph, Phase):
            raise InputError(f"phases: expected a list of Phase, got an item of type {type(ph).__name__}")
        if not isinstance(ph.name, str) or not ph.name or ph.name in reserved or ph.name in names:
            raise InputError(f"phases: each phase needs a name of its own, not one of {sorted(reserved)}; "
                             f"got {ph.name!r}")
        if isinstance(ph.modules, str) or not isinstance(ph.modules, (list, tuple)) or not ph.modules:
            raise InputError(f"phases: phase {ph.name!r} needs modules as a tuple of submodule names, "
                             f"got {ph.modules!r}")
        if not callable(ph.loss_fn):
            raise InputError(f"phases: phase {ph.name!r} needs a callable loss_fn, got {ph.loss_fn!r}")
        check_float(ph.lr_scale, f"phases: phase {ph.name!r} lr_scale", low=0.0, low_open=True)
        names.add(ph.name)
    return tuple(phases)


class OptimizerSet:
    """Several optimisers saved and restored as one (for :mod:`.checkpoint`).

    ``state_dict`` numbers the parameters of all of them in turn and marks each parameter
    group with the index of its optimiser (``"optimizer"``), so a checkpoint stores them in the
    same two parts as a single optimiser.

    Parameters
    ----------
    optimizers : list of torch.optim.Optimizer
    """

    def __init__(self, optimizers):
        self.optimizers = list(optimizers)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for i, opt in enumerate(self.optimizers):
            sd = opt.state_dict()
            state.update({offset + int(k): v for k, v in sd["state"].items()})
            for g in sd["param_groups"]:
                groups.append({**g, "params": [offset + int(p) for p in g["params"]], "optimizer": i})
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        groups = sd["param_groups"]
        if any("optimizer" not in g for g in groups) or \
                sorted({g["optimizer"] for g in groups}) != list(range(len(self.optimizers))):
            raise InputError(f"resume: the checkpoint holds the state of a different set of optimisers "
                             f"(expected {len(self.optimizers)})")
        for i, opt in enumerate(self.optimizers):
            mine = [{k: v for k, v in g.items() if k != "optimizer"} for g in groups if g["optimizer"] == i]
            ids = [p for g in mine for p in g["params"]]
            local = {p: n for n, p in enumerate(ids)}
            opt.load_state_dict({
                "state": {local[p]: sd["state"][p] for p in ids if p in sd["state"]},
                "param_groups": [{**g, "params": [local[p] for p in g["params"]]} for g in mine]})


__all__ = ["Phase", "OptimizerSet", "check_phases"]
