r"""A seed ensemble: several models of one kind, trained alike but from different seeds, that
share one joint space.

Member :math:`j` maps an item to a unit vector :math:`z^{(j)}`; the ensemble maps it to

.. math::  z = \frac{1}{\sqrt{M}} \big[z^{(1)}, \dots, z^{(M)}\big],

so :math:`z` has unit norm and the cosine (or inner product) of two ensemble embeddings is
the mean of the members' cosines, :math:`\frac1M \sum_j \cos(z^{(j)}_a, z^{(j)}_b)`.  With a
few thousand training pairs the seed alone moves a dual encoder's Recall@10 by a few points;
averaging the members' similarities removes most of that spread.  The result is an ordinary
:class:`~jointspace.models.base.JointModel`: indexes, search and evaluation use it unchanged.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from .._validation import check_int
from ..errors import InputError
from .base import JointModel, create_model, register_model

_PREFIX = "member{}."
#: the largest seed the seeded models take (NumPy's and the trainer's bound)
MAX_SEED = 2**32 - 1


@register_model("ensemble", "several models of one kind from different seeds; their similarities averaged")
class SeedEnsemble(JointModel):
    """``n_members`` copies of a seeded model, seeds ``seed .. seed + n_members - 1``.

    Parameters
    ----------
    model : str
        Registered name of the member model; it must take a ``seed`` parameter (e.g. ``"clip"``).
    n_members : int
        Number of members M (1 to 64). Fitting and encoding cost M times one member.
    params : dict, optional
        Parameters of every member (without ``seed``). A ``run_dir`` (checkpoints) becomes
        ``run_dir/member<j>`` for member j.
    seed : int
        Seed of the first member (0 to ``2**32 - n_members``).
    n_jobs : int
        Members fitted at once, each in its own process with an equal share of the CPU
        threads (-1: one per CPU core).  Frozen-tower features are computed once, before the
        members start.  Not available when training across processes (torchrun).

    Attributes
    ----------
    members_ : list of JointModel
        The fitted members, in seed order.

    Examples
    --------
    >>> import numpy as np
    >>> from jointspace import Pairs
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 5)).astype("float32")
    >>> pairs = Pairs({"image": x, "text": x @ rng.normal(size=(5, 4)).astype("float32")})
    >>> ens = SeedEnsemble("clip", n_members=2, params={"dim": 3, "epochs": 2, "batch_size": 32},
    ...                    ).fit(pairs)
    >>> ens.encode("text", pairs["text"]).shape
    (64, 6)
    """

    def __init__(self, model: str = "clip", n_members: int = 8, params: dict | None = None, seed: int = 0,
                 n_jobs: int = 1):
        self.model = model
        self.n_members = n_members
        self.params = params
        self.seed = seed
        self.n_jobs = n_jobs

    def _member_params(self) -> dict:
        if not isinstance(self.params, (dict, type(None))):
            raise InputError(f"params: expected a dict of member parameters, got {type(self.params).__name__}")
        params = dict(self.params or {})
        if "seed" in params:
            raise InputError("params: leave out 'seed'; the ensemble gives member j the seed seed + j")
        return params

    def _new_member(self, j: int) -> JointModel:
        params = self._member_params()
        if params.get("run_dir") is not None:
            params["run_dir"] = str(Path(params["run_dir"]) / f"member{j}")
        return create_model(self.model, **params, seed=int(self.seed) + j)

    def fit(self, pairs, **fit_kwargs) -> "SeedEnsemble":
        """Fit every member on ``pairs`` (``fit_kwargs``, e.g. ``val=``, go to each member's fit)."""
        n = check_int(self.n_members, "n_members", low=1, high=64)
        # every member's seed, seed + j, must be one its model takes: refused here, not by the
        # last member once the others have trained
        check_int(self.seed, "seed", low=0)
        if int(self.seed) + n - 1 > MAX_SEED:
            raise InputError(f"seed: expected an integer <= {MAX_SEED - n + 1} (member j takes the seed seed + j, "
                             f"at most {MAX_SEED}, and there are n_members={n}), got {self.seed}")
        from .base import MODELS, _import_builtin_models

        _import_builtin_models()
        if "seed" not in inspect.signature(MODELS.get(self.model)).parameters:
            raise InputError(f"model: {self.model!r} takes no seed, so its members would all be the same; "
                             "an ensemble needs a seeded model such as 'clip'")
        members = [self._new_member(j) for j in range(n)]
        jobs = min(resolve_jobs(self.n_jobs), n)
        if jobs == 1:
            for m in members:
                m.fit(pairs, **fit_kwargs)
        else:
            from joblib import Parallel, delayed

            pairs, fit_kwargs = _frozen_features(members[0], pairs), dict(fit_kwargs)
            if fit_kwargs.get("val") is not None:
                fit_kwargs["val"] = _frozen_features(members[0], fit_kwargs["val"])
            threads = max(1, (os.cpu_count() or 1) // jobs)
            members = Parallel(n_jobs=jobs, backend="loky")(
                delayed(_fit_member)(m, pairs, fit_kwargs, threads) for m in members)
        self.members_ = members
        self.modalities_ = members[0].modalities_
        return self

    def raw_kind(self, modality: str, *, match_dims: bool = True) -> str | None:
        """As the members' (they share their towers)."""
        return self.members_[0].raw_kind(modality, match_dims=match_dims) if getattr(self, "members_", None) else None

    def _encode(self, modality, items) -> np.ndarray:
        first = self.members_[0]
        frozen = not any(modality in getattr(m, "_trainable", {}) for m in self.members_)
        if hasattr(first, "_query_features") and frozen:
            # members share their frozen towers (same parameters but the seed): run the tower once
            items = first._query_features(modality, items)
        zs = [m.encode(modality, items, normalize=True) for m in self.members_]
        return np.hstack(zs) / np.float32(np.sqrt(len(zs)))

    # -- persistence -------------------------------------------------------------------------
    def get_config(self) -> dict:
        params = self.params
        if isinstance(params, dict):
            # where and how this fit ran, not what the model is (as the members' configs): a
            # loaded ensemble fitted again would otherwise start over that run's checkpoints
            params = {k: v for k, v in params.items() if k not in ("run_dir", "progress")}
        return {"model": self.model, "n_members": self.n_members, "params": params, "seed": self.seed,
                "n_jobs": self.n_jobs}

    def _get_extra(self) -> dict:
        return {"members": [{"params": m.get_config(), "extra": m._get_extra(), "modalities": list(m.modalities_)}
                            for m in self.members_]}

    def _set_extra(self, extra: dict) -> None:
        from .base import MODELS

        cls = MODELS.get(self.model)
        specs = extra["members"]
        if not isinstance(specs, list) or not specs or len(specs) != self.n_members:
            raise ValueError(f"members: expected the records of n_members={self.n_members!r} members, got "
                             f"{len(specs) if isinstance(specs, list) else type(specs).__name__}")
        members = []
        for spec in specs:
            m = cls.from_config(spec["params"]) if hasattr(cls, "from_config") else cls(**spec["params"])
            m._set_extra(spec.get("extra", {}))
            m.modalities_ = tuple(spec["modalities"])
            members.append(m)
        self.members_ = members

    def _get_state(self) -> dict[str, np.ndarray]:
        return {_PREFIX.format(j) + k: v for j, m in enumerate(self.members_) for k, v in m._get_state().items()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        for j, m in enumerate(self.members_):
            prefix = _PREFIX.format(j)
            m._set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def resolve_jobs(n_jobs, name: str = "n_jobs") -> int:
    """The number of worker processes ``n_jobs`` asks for (-1: one per CPU core); errors name ``name``."""
    jobs = check_int(n_jobs, name, low=-1, high=1024)
    if jobs == 0:
        raise InputError(f"{name}: expected a positive number of processes, or -1 for one per CPU core, got 0")
    jobs = (os.cpu_count() or 1) if jobs == -1 else jobs
    if jobs > 1:
        from ..train import distributed as dist

        if dist.is_distributed():
            raise InputError(f"{name}: the members already train across the torchrun processes; use 1, "
                             f"got {n_jobs}")
    return jobs


def _frozen_features(member: JointModel, pairs):
    """``pairs`` with the items of frozen-tower modalities replaced by their features, so the
    member processes do not each run (and cache) the same towers."""
    if not hasattr(member, "features") or not hasattr(member, "_trainable_tower"):
        return pairs
    for m in getattr(member, "modalities", None) or pairs.modalities:
        items = pairs[m]
        if not (isinstance(items, np.ndarray) and items.ndim == 2) and member._trainable_tower(m) is None:
            pairs = pairs.with_modality(m, member.features(m, items, "pairs"))
    return pairs


def _fit_member(member: JointModel, pairs, fit_kwargs: dict, threads: int) -> JointModel:
    """Fit one member in a worker process with ``threads`` CPU threads; returns it fitted."""
    import torch

    torch.set_num_threads(threads)
    progress = getattr(member, "progress", None)
    if progress:  # bars from several processes would overwrite each other
        member.progress = False
    member.fit(pairs, **fit_kwargs)
    if progress:
        member.progress = progress
    return member
