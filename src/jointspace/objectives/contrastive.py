r"""Contrastive objectives: the chapter's CLIP loss, SigLIP, a label-aware variant, and more
than two modalities.

The chapter (CLIP case study, "Similarity Matrix" and "Loss Function Components") defines, for
a batch of N pairs with text embeddings :math:`E_t` and image embeddings :math:`E_a`,

.. math::  C = \frac{1}{\tau} E_t E_a^\top \qquad (N \times N)

.. math::  \ell_{text}(C) = -\frac{1}{N}\sum_{i=1}^N \log\frac{\exp C_{ii}}{\sum_j \exp C_{ij}},
           \qquad
           \ell_{image}(C) = -\frac{1}{N}\sum_{i=1}^N \log\frac{\exp C_{ii}}{\sum_j \exp C_{ji}}

.. math::  \mathcal{L} = \tfrac{1}{2}\big(\ell_{text}(C) + \ell_{image}(C)\big)

:math:`\ell_{text}` is a softmax over each row (a text against every image), :math:`\ell_{image}`
over each column (an image against every text).  The chapter prints the image term's
denominator as :math:`\sum_i \exp C_{j,i}`, a row sum, which would make it equal to
:math:`\ell_{text}`; the column sum above is what its words ("the loss for image embeddings")
and CLIP compute.  The temperature is learnt as CLIP learns it:
a parameter ``log_scale = log(1/tau)``, exponentiated and clamped so that ``1/tau <= 100``
(:func:`logit_scale`, :func:`clamp_log_scale_`).  Every function here takes the *scale*
``1/tau`` (a tensor, learnable or not); ``tau=`` is accepted instead for a fixed temperature.
The losses are computed in float64 for float64 features and in float32 otherwise (bfloat16 or
float16 features are raised to float32, and an active autocast is switched off inside them).

Objectives are pure functions of tensors; they never import a model.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ._checks import check_features, check_same_shape, check_scale
from ._fused import fused_clip_loss

#: CLIP's bound on the logit scale: 1/tau <= 100, i.e. tau >= 0.01.
MAX_LOGIT_SCALE = 100.0
#: CLIP's initial temperature.
INIT_TAU = 0.07



def _check_pair(text, image) -> None:
    """Both feature batches valid (2-D, finite, N >= 2) and of the same shape."""
    check_features(text, "text")
    check_features(image, "image")
    check_same_shape(text, image, "text", "image")

def init_log_scale(tau: float = INIT_TAU) -> float:
    """The initial value of the ``log_scale`` parameter for temperature ``tau`` (``log(1/tau)``)."""
    if not (tau > 0):
        raise InputError(f"tau: expected a positive temperature, got {tau!r}")
    return math.log(1.0 / tau)


def logit_scale(log_scale: torch.Tensor, max_scale: float = MAX_LOGIT_SCALE) -> torch.Tensor:
    """``1/tau = exp(log_scale)``, clamped to at most ``max_scale`` (CLIP's 100).

    The clamp is on the parameter: above the bound its gradient is zero (at the bound itself
    PyTorch's clamp still passes it), and :func:`clamp_log_scale_` after each optimiser step
    keeps the parameter there, so the temperature stops falling.

    Parameters
    ----------
    log_scale : Tensor, shape () or (1,)
    max_scale : float

    Returns
    -------
    scale : Tensor, shape ()
    """
    return log_scale.reshape(()).clamp(max=_log_bound(max_scale, log_scale.dtype)).exp()


@torch.no_grad()
def clamp_log_scale_(log_scale: torch.Tensor, max_scale: float = MAX_LOGIT_SCALE) -> torch.Tensor:
    """Clamp the parameter in place to ``[0, log(max_scale)]`` (run after each optimiser step)."""
    return log_scale.clamp_(0.0, _log_bound(max_scale, log_scale.dtype))


def _log_bound(max_scale: float, dtype: torch.dtype) -> float:
    """``log(max_scale)`` rounded down to ``dtype``, so that the clamped scale never exceeds it
    (float32's nearest value to log 100 lies above it)."""
    bound = torch.tensor(math.log(max_scale), dtype=dtype)
    if float(bound) > math.log(max_scale):
        bound = torch.nextafter(bound, torch.tensor(-math.inf, dtype=dtype))
    return float(bound)


def _loss_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype a loss is computed in: float64 stays float64, anything narrower (bf16 and
    float16 under autocast) is raised to float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _no_autocast(t: torch.Tensor):
    """Autocast off on ``t``'s device: under an active autocast the logits' matmul would run in
    bf16 / float16 whatever the dtype of its inputs, and the loss with it."""
    return torch.autocast(t.device.type, enabled=False)


def _resolve_scale(scale, tau):
    if tau is not None:
        if scale is not None:
            raise InputError("tau: give either scale (1/tau) or tau, not both")
        if not isinstance(tau, (int, float)) or not tau > 0:
            raise InputError(f"tau: expected a positive temperature, got {tau!r}")
        return torch.tensor(1.0 / float(tau), dtype=torch.float64)
    if scale is None:
        return torch.tensor(1.0 / INIT_TAU, dtype=torch.float64)
    return check_scale(scale)


def clip_logits(text: torch.Tensor, image: torch.Tensor, scale) -> torch.Tensor:
    r"""The chapter's similarity matrix :math:`C = E_t E_a^\top / \tau`.

    Parameters
    ----------
    text : Tensor, shape (N, d)
    image : Tensor, shape (M, d)
    scale : float or Tensor
        ``1 / tau``.

    Returns
    -------
    C : Tensor, shape (N, M)
    """
    return scale * (text @ image.T)


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    r"""The chapter's :math:`\mathcal{L} = \tfrac12(\ell_{text}(C) + \ell_{image}(C))` of a square
    logit matrix whose diagonal holds the matching pairs.

    Parameters
    ----------
    logits : Tensor, shape (N, N)
        :math:`C`; rows are texts, columns images.

    Returns
    -------
    loss : Tensor, shape ()
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise InputError(f"logits: expected a square (N, N) matrix, got shape {tuple(logits.shape)}")
    if logits.shape[0] < 2:
        raise InputError("logits: a contrastive loss needs at least 2 pairs (a batch of 1 has no negatives); "
                         "got batch size 1")
    logits = logits.to(_loss_dtype(logits))
    with _no_autocast(logits):
        diag = logits.diagonal()
        l_text = (torch.logsumexp(logits, dim=1) - diag).mean()
        l_image = (torch.logsumexp(logits, dim=0) - diag).mean()
        return 0.5 * (l_text + l_image)


def clip_loss(text: torch.Tensor, image: torch.Tensor, scale=None, *, tau: float | None = None,
              fused: bool = True, check: bool = True) -> torch.Tensor:
    r"""The chapter's symmetric contrastive loss of N aligned pairs.

    :math:`C = \text{scale}\cdot E_t E_a^\top`, :math:`\mathcal{L} = \tfrac12(\ell_{text} + \ell_{image})`.

    Parameters
    ----------
    text : Tensor, shape (N, d)
        :math:`E_t`, usually L2-normalised; row i matches row i of ``image``.
    image : Tensor, shape (N, d)
        :math:`E_a`.
    scale : float or Tensor, optional
        ``1 / tau``; pass :func:`logit_scale` of a learnt parameter to learn tau.
        Default ``1 / 0.07``.
    tau : float, optional
        A fixed temperature instead of ``scale``.
    fused : bool
        Use the closed-form backward (:mod:`._fused`): same values, fewer passes over the
        N x N logits.  ``False`` builds the loss from :func:`info_nce` with autograd.
    check : bool
        Validate shapes and finiteness (a batch of 1, NaN or Inf raise :class:`InputError`).

    Returns
    -------
    loss : Tensor, shape ()
    """
    scale = _resolve_scale(scale, tau)
    if check:
        _check_pair(text, image)
    dtype = _loss_dtype(text)
    text, image = text.to(dtype), image.to(dtype)
    with _no_autocast(text):
        if fused:
            return fused_clip_loss(text, image, scale.to(dtype))
        return info_nce(clip_logits(text, image, scale))


def siglip_loss(a: torch.Tensor, b: torch.Tensor, scale, bias, *, check: bool = True) -> torch.Tensor:
    r"""Sigmoid pairwise loss (SigLIP): every (i, j) is an independent binary decision.

    .. math::  \mathcal{L} = -\frac{1}{N}\sum_{i,j} \log \sigma\big(z_{ij}(t\, a_i\cdot b_j + b)\big),
               \quad z_{ij} = 1 \text{ if } i = j \text{ else } -1

    with ``t = scale`` (learnt as a log, SigLIP starts at 10) and a learnable bias ``b``
    (SigLIP starts at -10, so the many negatives do not dominate early steps).

    Parameters
    ----------
    a, b : Tensor, shape (N, d)
    scale : float or Tensor
    bias : float or Tensor, shape ()

    Returns
    -------
    loss : Tensor, shape ()
    """
    if check:
        check_features(a, "a")
        check_features(b, "b")
        check_same_shape(a, b, "a", "b")
        scale = check_scale(scale, "scale")
    dtype = _loss_dtype(a)
    a, b = a.to(dtype), b.to(dtype)
    n = a.shape[0]
    with _no_autocast(a):
        logits = scale * (a @ b.T) + bias
        signs = 2 * torch.eye(n, dtype=logits.dtype, device=logits.device) - 1
        return -F.logsigmoid(signs * logits).sum() / n


def positive_mask(labels, n: int) -> torch.Tensor:
    """Boolean (N, N) matrix: True where two samples share a caption or a label.

    Parameters
    ----------
    labels : sequence of N hashables (str captions, ints), or array (N,) or multi-hot (N, C)
        Multi-hot rows are positives when they share at least one label.
    n : int
        Expected number of samples.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        if labels.shape[0] != n:
            raise InputError(f"labels: expected {n} rows, got shape {labels.shape}")
        hot = torch.as_tensor(labels != 0, dtype=torch.float32)
        mask = (hot @ hot.T) > 0
    else:
        labels = list(labels)
        if len(labels) != n:
            raise InputError(f"labels: expected {n} labels (one per pair), got {len(labels)}")
        codes = {}
        ids = torch.tensor([codes.setdefault(x if not isinstance(x, np.generic) else x.item(), len(codes))
                            for x in labels])
        mask = ids[:, None] == ids[None, :]
    mask.fill_diagonal_(True)
    return mask


def supervised_clip_loss(text: torch.Tensor, image: torch.Tensor, labels, scale=None, *,
                         tau: float | None = None, check: bool = True) -> torch.Tensor:
    r"""Label-aware symmetric loss: pairs sharing a caption or label are not negatives.

    The one-hot target of each row (and column) of :math:`C` is replaced by the uniform
    distribution over the samples that share the row's label (soft targets, as UniCL):

    .. math::  \ell_{text} = -\frac{1}{N}\sum_i \frac{1}{|P_i|}\sum_{j\in P_i}
               \log\frac{\exp C_{ij}}{\sum_k \exp C_{ik}}

    and symmetrically over columns (column :math:`j` uniform over :math:`P_j`);
    :math:`\mathcal{L} = \tfrac12(\ell_{text}+\ell_{image})`.
    With all labels distinct this is exactly :func:`clip_loss`; with all labels equal every pair
    is a positive and the loss is minimal (``log N``) when all similarities are equal.

    Parameters
    ----------
    text, image : Tensor, shape (N, d)
    labels : sequence of N captions / labels, or multi-hot array (N, C)
    scale, tau : see :func:`clip_loss`

    Returns
    -------
    loss : Tensor, shape ()
    """
    scale = _resolve_scale(scale, tau)
    if check:
        _check_pair(text, image)
    mask = positive_mask(labels, text.shape[0]).to(text.device)
    dtype = _loss_dtype(text)
    with _no_autocast(text):
        return soft_target_info_nce(clip_logits(text.to(dtype), image.to(dtype), scale), mask)


def soft_target_info_nce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""The symmetric loss of :func:`supervised_clip_loss` from any square logit matrix: row
    :math:`i`'s target is uniform over the columns :math:`P_i` where ``mask`` is True, column
    :math:`j`'s over its rows.  With an identity ``mask`` this is :func:`info_nce`.

    Parameters
    ----------
    logits : Tensor, shape (N, N)
        Rows are one modality, columns the other (e.g. pairwise matching scores times a scale).
    mask : bool Tensor, shape (N, N)
        The positives, True on the diagonal at least.

    Returns
    -------
    loss : Tensor, shape ()
    """
    logits = logits.to(_loss_dtype(logits))
    mask = mask.to(logits.device, logits.dtype)
    with _no_autocast(logits):
        # Row i spreads over P_i, column j over P_j: with multi-hot labels the sizes differ.
        l_text = -(mask / mask.sum(dim=1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        l_image = -(mask / mask.sum(dim=0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(dim=0).mean()
        return 0.5 * (l_text + l_image)


def multimodal_clip_loss(features: dict, scale=None, masks: dict | None = None, *,
                         tau: float | None = None, pair_loss=None, check: bool = True):
    r"""Three or more modalities: the sum of the pairwise losses over modality pairs.

    .. math::  \mathcal{L} = \sum_{a < b} \mathcal{L}_{ab}\big(E_a[S_{ab}], E_b[S_{ab}]\big)

    where :math:`S_{ab}` is the set of samples that have both modalities (``masks``) and
    :math:`\mathcal{L}_{ab}` the chapter's symmetric loss (rows: modality ``a``).  A pair of
    modalities that fewer than two samples share adds nothing.

    Parameters
    ----------
    features : dict of str to Tensor (N, d)
        One embedding matrix per modality, rows aligned.
    scale, tau : see :func:`clip_loss`
    masks : dict of str to bool Tensor (N,), optional
        Which samples have each modality (missing: all present).
    pair_loss : callable(a, b, scale) -> Tensor, optional
        Loss of one modality pair; default :func:`clip_loss`.

    Returns
    -------
    loss : Tensor, shape ()
    terms : dict of (str, str) to float
        Each pair's loss (for logging).
    """
    if not isinstance(features, dict) or len(features) < 2:
        raise InputError(f"features: expected a dict of at least 2 modalities, got {type(features).__name__}"
                         f"{' of ' + str(len(features)) if isinstance(features, dict) else ''}")
    scale = _resolve_scale(scale, tau)
    names = list(features)
    n = features[names[0]].shape[0]
    masks = dict(masks or {})
    for name in names:
        f = features[name]
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != n:
            raise InputError(f"features[{name!r}]: expected a tensor of shape ({n}, d), got "
                             f"{tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}")
        m = masks.get(name)
        if m is None:
            masks[name] = torch.ones(n, dtype=torch.bool, device=f.device)
        else:
            m = torch.as_tensor(m, dtype=torch.bool, device=f.device)
            if m.shape != (n,):
                raise InputError(f"masks[{name!r}]: expected a boolean tensor of shape ({n},), got {tuple(m.shape)}")
            masks[name] = m
    pair_loss = pair_loss or (lambda a, b, s: clip_loss(a, b, s, check=check))
    total = None
    terms = {}
    for a, b in itertools.combinations(names, 2):
        both = masks[a] & masks[b]
        if int(both.sum()) < 2:
            continue
        fa, fb = features[a], features[b]
        if not bool(both.all()):
            fa, fb = fa[both], fb[both]
        term = pair_loss(fa, fb, scale)
        terms[(a, b)] = float(term.detach())
        total = term if total is None else total + term
    if total is None:
        raise InputError("masks: no pair of modalities is shared by at least 2 samples; nothing to contrast")
    return total, terms
