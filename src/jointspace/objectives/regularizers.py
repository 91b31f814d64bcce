r"""The regularisers of shared and private parts, by name, and the module that applies them.

A model with private parts gives each modality :math:`m` a shared code :math:`s_m` (aligned
across modalities by the model's own objective) and a private code :math:`p_m`.  The
chapter's orthogonality (:math:`z_1\cdot z_2 = 0`) is asked of every *pair of parts* that
should not repeat each other:

- the private parts of two different modalities, :math:`(p_a, p_b)`;
- the shared and the private part of one modality, :math:`(s_m, p_m)`.

Each regulariser below is computed per pair and averaged over the pairs.  Models pass their
parts L2-normalised per row (the dual encoder's parts, the VAE's posterior means), so the dot
products are cosines and no term can be lowered by shrinking a part.

=============  ===========================================================================
name           term (VALUE is λ unless said otherwise)
=============  ===========================================================================
abs_dot        :math:`\lambda\,\frac1n\sum_i |z_{1,i}\cdot z_{2,i}|` (chapter);
               needs equal part sizes
frobenius      :math:`\lambda\,\|\tilde Z_1^\top\tilde Z_2\|_F^2 / \mathrm{sg}(\|\tilde Z_1^\top
               \tilde Z_1\|_F\|\tilde Z_2^\top\tilde Z_2\|_F)` (chapter's
               :math:`\|Z_1^\top Z_2\|_F^2` on batch-centred parts, made scale-free: its value
               is the square of :func:`jointspace.eval.redundancy.normalized_cross_frobenius`)
weight         :math:`\lambda\,\|W_s W_p^\top\|_F^2 / \mathrm{sg}(\|W_sW_s^\top\|_F
               \|W_pW_p^\top\|_F)` (chapter's :math:`\|W_1^\top W_2\|_F^2` on the output
               weights of one modality's shared and private parts; no cross-modality term:
               those heads read different inputs)
lagrange       :math:`\mu_k\,c_k` for each pair :math:`k` of parts, with :math:`c_k` the
               constraint :math:`Z_1^\top Z_2 = 0` read on a batch without its small-sample
               bias (the debiased linear CKA of the two parts, :func:`debiased_cross`,
               whose expectation is 0 for independent parts, so the constraint can hold
               and :math:`\mu_k` can settle) and :math:`\mu_k \leftarrow \max(0, \mu_k +
               \eta c_k)` after every step: one multiplier per constraint; VALUE is the
               ascent rate :math:`\eta`
auglag         the same plus :math:`\tfrac{\rho}{2}c^2`, :math:`\rho = 1` (augmented
               Lagrangian)
hsic           :math:`\lambda\,\mathrm{HSIC}(Z_1, Z_2) / \mathrm{sg}(\mathrm{HSIC}(Z_1,
               Z_1)\,\mathrm{HSIC}(Z_2, Z_2))^{1/2}` (Gaussian kernels, median bandwidth):
               non-linear dependence
club           :math:`\lambda\,\hat I_{CLUB}(Z_1; Z_2)` in nats, a variational upper bound
               of the mutual information, its network fitted alongside
adversarial    :math:`\lambda\,\max(R^2, 0)` of a predictor of :math:`Z_2` from :math:`Z_1`
               fitted alongside (:mod:`jointspace.objectives.disentangle`)
=============  ===========================================================================

:math:`\mathrm{sg}` is stop-gradient: the normalisers make one λ mean the same at any part
size and scale, without rewarding the encoders for changing them.
"""

from __future__ import annotations

import numbers

import torch
from torch.func import functional_call

from ..errors import InputError
from ._checks import check_same_device
from .disentangle import CrossPredictor
from .mutual_info import CLUB, _pow2_scale, hsic
from .orthogonality import LagrangeMultiplier, _check_batch_pair, _check_lam, _check_weight, abs_dot_penalty, \
    frobenius_cross_penalty, weight_cross_penalty

#: every regulariser name, with the VALUE used when a spec gives none
REGULARIZERS = {
    "abs_dot": 1.0,
    "frobenius": 1.0,
    "weight": 1.0,
    "lagrange": 0.1,
    "auglag": 0.1,
    "hsic": 1.0,
    "club": 0.1,
    "adversarial": 1.0,
}
#: the names that compare two parts coordinate by coordinate (they need equal sizes)
ELEMENTWISE = frozenset({"abs_dot"})
#: the fewest rows of a batch each estimate needs (the other names take any batch)
MIN_ROWS = {"lagrange": 4, "auglag": 4, "hsic": 2, "club": 2, "adversarial": 2}
#: rho of the augmented Lagrangian
AUGLAG_RHO = 1.0


def parse_regularizer(spec, default: float | None = None) -> tuple[str, float]:
    """One regulariser from ``"NAME"``, ``"NAME:VALUE"`` or a ``(name, value)`` pair.

    Parameters
    ----------
    spec : str or tuple
        A name of :data:`REGULARIZERS`, optionally with its VALUE (λ, or the ascent rate of
        ``lagrange`` / ``auglag``).
    default : float, optional
        The VALUE when none is given (default: the name's entry in :data:`REGULARIZERS`).

    Returns
    -------
    name : str
    value : float
        Finite and >= 0 (> 0 for the Lagrangian forms).
    """
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        name, value = spec
        if not isinstance(name, str):
            raise InputError(f"regularizer: expected a name string, got {name!r}")
        spec = f"{name}:{value}"
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"regularizer: expected NAME or NAME:VALUE (e.g. 'frobenius:0.1'), got {spec!r}")
    name, sep, value = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in REGULARIZERS:
        raise InputError(f"regularizer: unknown name {name!r}; known: {', '.join(sorted(REGULARIZERS))}")
    if not sep:
        return name, float(REGULARIZERS[name] if default is None else default)
    try:
        lam = float(value)
    except ValueError:
        raise InputError(f"regularizer: expected a number after '{name}:', got {value!r}") from None
    lam = _check_lam(lam, "regularizer")
    if name in ("lagrange", "auglag") and lam == 0:
        raise InputError(f"regularizer: the ascent rate of {name!r} must be > 0, got 0")
    return name, lam


def parse_regularizers(specs) -> list[tuple[str, float]]:
    """A list of ``(name, value)`` from None, one spec (``"frobenius:0.1"`` or
    ``("frobenius", 0.1)``), or a sequence of specs; each name at most once, and
    ``lagrange`` and ``auglag`` (two forms of one multiplier) not together."""
    if specs is None:
        return []
    single = isinstance(specs, str) or (isinstance(specs, (tuple, list)) and len(specs) == 2
                                        and isinstance(specs[0], str) and isinstance(specs[1], numbers.Real))
    if single:
        specs = [specs]
    elif not isinstance(specs, (list, tuple)):
        raise InputError(f"regularizers: expected a list of NAME or NAME:VALUE strings, got {specs!r}")
    try:
        out = [parse_regularizer(s) for s in specs]
    except InputError as exc:   # named as the models' parameter, ``regularizers``
        msg = str(exc)
        if not msg.startswith("regularizer:"):
            raise
        raise InputError("regularizers" + msg.removeprefix("regularizer")) from None
    names = [n for n, _ in out]
    for n in sorted(set(names)):
        if names.count(n) > 1:
            raise InputError(f"regularizers: {n!r} is given {names.count(n)} times; give each at most once")
    if "lagrange" in names and "auglag" in names:
        raise InputError("regularizers: 'lagrange' and 'auglag' are two forms of one multiplier; give one")
    return out


def _centre(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``z`` with its columns centred and divided by ``s``, a power of two near its largest
    value (exact; the terms below are free of scale), so that their products of four values
    neither overflow nor underflow (float32 parts of 1e20 gave inf / inf = nan); and ``s``."""
    z = z - z.mean(dim=0, keepdim=True)
    s = _pow2_scale(z)
    return z / s, s


def normalized_frobenius(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""The ``frobenius`` term for λ = 1 (see the module table), shape ().

    Parameters
    ----------
    z1 : Tensor, shape (n, d1)
    z2 : Tensor, shape (n, d2)
    """
    _check_batch_pair(z1, z2, same_dim=False)   # before centring, which spreads a NaN over its column
    (a, _), (b, _) = _centre(z1), _centre(z2)
    cross = frobenius_cross_penalty(a, b, 1.0, normalize=True)
    with torch.no_grad():
        n = a.shape[0]
        scale = torch.linalg.matrix_norm(a.T @ a) * torch.linalg.matrix_norm(b.T @ b) / n ** 2
    return cross / scale.clamp_min(torch.finfo(scale.dtype).tiny)


def _unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al.'s unbiased HSIC of two (n, n) Gram matrices (diagonals ignored)."""
    n = k.shape[0]
    off = 1 - torch.eye(n, dtype=k.dtype, device=k.device)
    k, l = k * off, l * off
    ks, ls = k.sum(dim=0), l.sum(dim=0)
    return ((k * l).sum() + ks.sum() * ls.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ks @ ls)) / (n * (n - 3))


#: the least denominator of :func:`debiased_cross`: healthy parts of unit-norm rows give
#: 1e-4-1e-1 (64 down to 8 dimensions); collapsing ones 1e-6 and below
SCALE_FLOOR = 1e-6


def debiased_cross(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""The ``lagrange`` constraint value, shape (): unbiased linear-kernel HSIC of the two
    parts over the geometric mean of their unbiased self-HSICs (without gradient), i.e.
    :func:`jointspace.eval.redundancy.debiased_linear_cka` with a frozen denominator.  Its
    expectation is 0 for independent parts at any batch size, where the plain
    :func:`normalized_frobenius` stays near :math:`\sqrt{d_1 d_2 / ((n + d_1)(n + d_2))}`
    (:math:`\sqrt{d_1 d_2}/n` for parts much narrower than the batch); it can be negative.  It is
    kept in [-1, 1], and its denominator is at least :data:`SCALE_FLOOR`: where one part barely
    varies over the batch, the estimate would otherwise leave that range without bound.

    Parameters
    ----------
    z1 : Tensor, shape (n, d1)
    z2 : Tensor, shape (n, d2)
        n >= 4.
    """
    _check_batch_pair(z1, z2, same_dim=False)
    if z1.shape[0] < 4:
        raise InputError(f"z1: the debiased constraint needs at least 4 rows (a batch of 4 or more), "
                         f"got {z1.shape[0]}")
    # centred first: the estimate does not depend on a shift of either part, but from raw rows
    # that share a direction the Gram matrices' common offset swamps it in float32
    dtype = torch.promote_types(z1.dtype, z2.dtype)
    (a, sa), (b, sb) = _centre(z1.to(dtype)), _centre(z2.to(dtype))
    k, l = a @ a.T, b @ b.T
    value = _unbiased_hsic(k, l)
    with torch.no_grad():
        scale = torch.sqrt(_unbiased_hsic(k, k).clamp_min(0) * _unbiased_hsic(l, l).clamp_min(0))
        # a part that barely varies over the batch (it happens under a strong multiplier) has a
        # self-HSIC of ~0 or, rounded, below: the ratio then grew without bound and training
        # diverged.  At least |value| keeps it in [-1, 1]; at least SCALE_FLOOR bounds its gradient.
        # (the floor is in the parts' own units: the HSICs of a / sa and b / sb are theirs / (sa sb)^2)
        info = torch.finfo(value.dtype)
        floor = (SCALE_FLOOR / (sa * sb).to(value.dtype) ** 2).clamp(info.tiny, info.max)
        scale = torch.maximum(torch.maximum(scale, value.abs()), floor)
    return value / scale


def normalized_weight_cross(w_shared: torch.Tensor, w_private: torch.Tensor) -> torch.Tensor:
    r"""The ``weight`` term for λ = 1, shape ().

    Parameters
    ----------
    w_shared : Tensor, shape (d, k)
        Output weights of the shared part (``torch.nn.Linear`` layout).
    w_private : Tensor, shape (p, k)
        Output weights of the private part, reading the same k inputs.
    """
    _check_weight(w_shared, "w_shared")   # by their own names: the penalty below reads them as w1, w2
    check_same_device(w_shared, w_private, "w_shared", "w_private")
    _check_weight(w_private, "w_private")
    if w_shared.shape[1] != w_private.shape[1]:
        raise InputError(f"w_shared, w_private: expected output weights (d, k) and (p, k) reading the same k inputs, "
                         f"got shapes {tuple(w_shared.shape)} and {tuple(w_private.shape)}")
    cross = weight_cross_penalty(w_shared.T, w_private.T, 1.0)
    with torch.no_grad():
        scale = torch.linalg.matrix_norm(w_shared @ w_shared.T) * torch.linalg.matrix_norm(w_private @ w_private.T)
    return cross / scale.clamp_min(torch.finfo(scale.dtype).tiny)


def normalized_hsic(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The ``hsic`` term for λ = 1 (biased HSIC over the geometric mean of the two
    self-dependences, the latter without gradient), shape ()."""
    value = hsic(z1, z2)
    with torch.no_grad():
        scale = torch.sqrt(hsic(z1, z1) * hsic(z2, z2))
    return value / scale.clamp_min(torch.finfo(scale.dtype).tiny)


class PartRegularizer(torch.nn.Module):
    """The named regularisers applied to every pair of parts of several modalities.

    Parameters
    ----------
    specs : list of (name, value)
        From :func:`parse_regularizers`.
    modalities : sequence of str
    dim : int
        Size of each shared part.
    private_dim : int
        Size of each private part.

    ``forward(shared, private, weights)`` returns ``(term, logs)``: the scalar to add to the
    loss (the regularisers plus, in training mode only, the fitting losses of CLUB's and the
    adversaries' networks: in evaluation mode, e.g. a validation loss that picks the best
    epoch, the term scores the parts alone)
    and a dict of floats (each regulariser's mean value over the pairs, and for the Lagrangian
    forms ``mu``, the mean of the pairs' multipliers, and ``constraint``, the pairs' mean).
    A batch with fewer rows than a regulariser's estimate needs (:data:`MIN_ROWS`: an epoch's
    last few rows, a small validation set) leaves that regulariser out: no term, no log, and
    no multiplier step.
    """

    def __init__(self, specs, modalities, dim: int, private_dim: int):
        super().__init__()
        self.specs = list(specs)
        self.modalities = list(modalities)
        check_part_sizes(self.specs, dim, private_dim)
        mods = self.modalities
        #: (kind, a, b): ("private", m1, m2) across modalities, ("own", m, m) shared vs private
        self.pairs = [("private", a, b) for i, a in enumerate(mods) for b in mods[i + 1:]] + \
                     [("own", m, m) for m in mods]
        sizes = {"private": (private_dim, private_dim), "own": (dim, private_dim)}
        self.critics = torch.nn.ModuleDict()
        for name, _ in self.specs:
            if name in ("club", "adversarial"):
                for kind, a, b in self.pairs:
                    x_dim, y_dim = sizes[kind]
                    net = CLUB(x_dim, y_dim) if name == "club" else CrossPredictor(x_dim, y_dim)
                    self.critics[self._key(name, kind, a, b)] = net
        lagrange = [(n, v) for n, v in self.specs if n in ("lagrange", "auglag")]
        #: one multiplier per constrained pair (pair k: mu_k >= 0 on c_k <= 0): a single one
        #: on the pairs' mean would let a pair below zero pay for another above it
        self.multipliers = None
        if lagrange:
            n, rate = lagrange[0]
            self.multipliers = torch.nn.ModuleList(
                LagrangeMultiplier(0.0, rate, augmented=n == "auglag", rho=AUGLAG_RHO, explicit=True, nonnegative=True)
                for _ in self.pairs)
            self.register_load_state_dict_pre_hook(_one_multiplier_to_pairs)

    @staticmethod
    def _key(name: str, kind: str, a: str, b: str) -> str:
        return f"{name}__{kind}__{a}__{b}"

    def _parts(self, kind, a, b, shared, private):
        return (private[a], private[b]) if kind == "private" else (shared[a], private[a])

    def forward(self, shared: dict, private: dict, weights: dict | None = None):
        """The regularisation term and its logs.

        Parameters
        ----------
        shared : dict of str to Tensor (n, dim)
        private : dict of str to Tensor (n, private_dim)
        weights : dict of str to (Tensor (dim, k), Tensor (private_dim, k)), optional
            Output weights of each modality's shared and private parts (for ``weight``).

        Returns
        -------
        term : Tensor, shape ()
        logs : dict of str to float
        """
        ref = next(iter(private.values()))
        total = ref.new_zeros(())
        logs = {}
        for name, value in self.specs:
            if ref.shape[0] < MIN_ROWS.get(name, 1):
                continue
            if name == "weight":
                if not weights:
                    raise InputError("regularizer: 'weight' needs the heads' output weights")
                vals = [normalized_weight_cross(*weights[m]) for m in self.modalities]
            else:
                vals = []
                for kind, a, b in self.pairs:
                    z1, z2 = self._parts(kind, a, b, shared, private)
                    if name == "abs_dot":
                        vals.append(abs_dot_penalty(z1, z2, 1.0))
                    elif name == "frobenius":
                        vals.append(normalized_frobenius(z1, z2))
                    elif name in ("lagrange", "auglag"):
                        vals.append(debiased_cross(z1, z2))
                    elif name == "hsic":
                        vals.append(normalized_hsic(z1, z2))
                    else:
                        critic = self.critics[self._key(name, kind, a, b)]
                        if self.training:   # the critic's own fit: a training step's, not a score of the parts
                            total = total + critic.learning_loss(z1.detach(), z2.detach())
                        # the penalty moves the encoders only: the critic's parameters enter
                        # it detached, so it never learns to under-estimate
                        frozen = {k: v.detach() for k, v in critic.named_parameters()}
                        vals.append(functional_call(critic, frozen, (z1, z2)))
            mean = torch.stack(vals).mean()
            logs[f"reg/{name}"] = float(mean.detach())
            if name in ("lagrange", "auglag"):
                logs["mu"] = sum(lm.mu for lm in self.multipliers) / len(self.multipliers)   # the mu_k used
                # the Lagrangian of the K pair constraints, (1/K) sum_k mu_k c_k; each mu_k ascends on its own c_k
                total = total + torch.stack([lm(c) for lm, c in zip(self.multipliers, vals)]).mean()
                logs["constraint"] = logs[f"reg/{name}"]
            else:
                total = total + value * mean
        return total, logs


def _one_multiplier_to_pairs(module, state_dict, prefix, *args) -> None:
    """Load a model saved with one multiplier for every pair: each pair starts from its value."""
    old = state_dict.pop(prefix + "multiplier.mu_param", None)
    if old is not None:
        for k in range(len(module.multipliers)):
            state_dict.setdefault(f"{prefix}multipliers.{k}.mu_param", old.clone())


def check_part_sizes(specs, dim: int, private_dim: int, shared: str = "dim") -> None:
    """InputError when a regulariser cannot compare parts of these sizes (``shared``: the model's
    name for the size of the shared part, ``dim`` or a VAE's ``latent_dim``)."""
    for name, _ in specs:
        if name in ELEMENTWISE and dim != private_dim:
            raise InputError(f"regularizers: {name!r} compares parts coordinate by coordinate, so it needs "
                             f"private_dim equal to {shared} ({dim}); got private_dim={private_dim}")


__all__ = ["REGULARIZERS", "MIN_ROWS", "parse_regularizer", "parse_regularizers", "PartRegularizer",
           "normalized_frobenius", "debiased_cross",
           "normalized_hsic", "normalized_weight_cross", "check_part_sizes"]
