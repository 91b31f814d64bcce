r"""Cross-modal attention between image regions and text tokens, a matching score built on it,
and two-stage search that re-ranks a dual encoder's candidates with that score.

The chapter's attention (DESIGN.md gives the indices): with image regions :math:`I_i` (the
cells of the image tower's last feature map) and text tokens :math:`T_j` (the text tower's
contextual word-piece vectors),

.. math::  \alpha_{ij} = \mathrm{softmax}_j(I_i^\top W_a T_j), \qquad
           \hat T_i = \sum_j \alpha_{ij} T_j \quad\text{(the text attended by region } i)

and symmetrically :math:`\beta_{ij} = \mathrm{softmax}_i(I_i^\top W_a T_j)`,
:math:`\hat I_j = \sum_i \beta_{ij} I_i` (the image attended by word :math:`j`).
:func:`cross_attention` computes both directions.

The matching score of an image and a text (:class:`CrossAttentionNet`): both sides are first
projected to a common size and L2-normalised; each region is compared with the text it attends
to, each word with the image it attends to, and the score is the mean of the two averages,

.. math::  s(I, T) = \tfrac12\Big(\frac1R\sum_i \cos(I_i, \hat T_i)
                     + \frac1{|T|}\sum_j \cos(T_j, \hat I_j)\Big) \in [-1, 1],

trained with the contrastive objective over the scores of every image-text pair of a batch
(texts with the same relevance key are not negatives).  The words find regions and the regions
find words; :meth:`CrossAttentionMatcher.explain` returns :math:`\beta` as a map per word.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_int, check_matrix
from ..errors import InputError


@dataclass
class Attention:
    """What :func:`cross_attention` returns (batch dimensions first).

    Attributes
    ----------
    scores : Tensor, shape (..., R, T)
        :math:`I_i^\\top W_a T_j` times :func:`cross_attention`'s ``scale`` (``-inf`` where a region
        or token is masked out): what the softmaxes read.
    alpha : Tensor, shape (..., R, T)
        Softmax over the tokens ``j``: each row (region) sums to one over the valid tokens.
    beta : Tensor, shape (..., R, T)
        Softmax over the regions ``i``: each column (token) sums to one over the valid regions.
    attended_text : Tensor, shape (..., R, d_t)
        :math:`\\sum_j \\alpha_{ij} T_j` for each region.
    attended_regions : Tensor, shape (..., T, d_i)
        :math:`\\sum_i \\beta_{ij} I_i` for each token.
    """

    scores: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    attended_text: torch.Tensor
    attended_regions: torch.Tensor


def _check_parts(regions, tokens, w_a, region_mask, token_mask, default_w_a: bool = False) -> None:
    """InputError naming the first bad argument; with ``default_w_a``, only the two tensors."""
    if not isinstance(regions, torch.Tensor) or regions.ndim < 2:
        raise InputError(f"regions: expected a tensor (..., R, d_i) of region vectors, got "
                         f"{getattr(regions, 'shape', type(regions).__name__)}")
    if not isinstance(tokens, torch.Tensor) or tokens.ndim < 2:
        raise InputError(f"tokens: expected a tensor (..., T, d_t) of token vectors, got "
                         f"{getattr(tokens, 'shape', type(tokens).__name__)}")
    if regions.shape[-2] == 0:
        raise InputError(f"regions: an image needs at least one region; got shape {tuple(regions.shape)}")
    if tokens.shape[-2] == 0:
        raise InputError(f"tokens: a text needs at least one token; got shape {tuple(tokens.shape)}")
    if default_w_a:
        return
    if not isinstance(w_a, torch.Tensor) or w_a.ndim != 2:
        raise InputError(f"w_a: expected a (d_i, d_t) tensor, got {getattr(w_a, 'shape', type(w_a).__name__)}")
    for name, t in (("regions", regions), ("tokens", tokens), ("w_a", w_a)):
        if not t.is_floating_point():
            raise InputError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")
        if t.dtype != regions.dtype:
            raise InputError(f"{name}: expected the dtype of regions ({regions.dtype}), got {t.dtype}")
        if not bool(torch.isfinite(t.detach()).all()):
            raise InputError(f"{name}: expected finite values, got NaN or infinity")
    try:
        torch.broadcast_shapes(regions.shape[:-2], tokens.shape[:-2])
    except RuntimeError:
        raise InputError(f"tokens: expected leading dimensions that broadcast with regions {tuple(regions.shape)}, "
                         f"got {tuple(tokens.shape)}") from None
    if w_a.shape != (regions.shape[-1], tokens.shape[-1]):
        raise InputError(f"w_a: expected shape (d_i, d_t) = ({regions.shape[-1]}, {tokens.shape[-1]}) to match "
                         f"regions {tuple(regions.shape)} and tokens {tuple(tokens.shape)}; got {tuple(w_a.shape)}")
    for name, mask, ref in (("region_mask", region_mask, regions), ("token_mask", token_mask, tokens)):
        if mask is None:
            continue
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise InputError(f"{name}: expected a bool tensor (False marks padding), got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)}")
        if tuple(mask.shape) != tuple(ref.shape[:-1]):
            raise InputError(f"{name}: expected shape {tuple(ref.shape[:-1])}, got {tuple(mask.shape)}")
        if not bool(mask.any(dim=-1).all()):
            raise InputError(f"{name}: every item needs at least one valid entry; some rows are all False")


def cross_attention(regions: torch.Tensor, tokens: torch.Tensor, w_a: torch.Tensor | None = None,
                    region_mask: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                    scale: float | torch.Tensor = 1.0) -> Attention:
    r"""The chapter's :math:`\alpha_{ij} = \mathrm{softmax}_j(I_i^\top W_a T_j)` and the attended
    features in both directions.

    Parameters
    ----------
    regions : Tensor, shape (..., R, d_i)
        Region vectors :math:`I_i`.
    tokens : Tensor, shape (..., T, d_t)
        Token vectors :math:`T_j` (the same leading dimensions as ``regions``, or broadcastable).
    w_a : Tensor, shape (d_i, d_t), optional
        The bilinear form; the identity when omitted (then ``d_i`` must equal ``d_t``).
    region_mask, token_mask : bool Tensor, shape (..., R) / (..., T), optional
        False marks padding, which gets no attention.
    scale : float or Tensor
        Multiplies the scores before the softmaxes (a sharpness, 1 in the chapter's formula).

    Returns
    -------
    Attention
    """
    if w_a is None:
        _check_parts(regions, tokens, None, None, None, default_w_a=True)
        if regions.shape[-1] != tokens.shape[-1]:
            raise InputError(f"w_a: without it regions and tokens need the same size; got d_i={regions.shape[-1]}, "
                             f"d_t={tokens.shape[-1]}")
        w_a = torch.eye(regions.shape[-1], dtype=regions.dtype, device=regions.device)
    _check_parts(regions, tokens, w_a, region_mask, token_mask)
    value = float(scale.detach()) if isinstance(scale, torch.Tensor) and scale.numel() == 1 else scale
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InputError(f"scale: expected a finite number > 0 (the softmaxes' sharpness), got {scale!r}")
    scores = scale * ((regions @ w_a) @ tokens.transpose(-1, -2))
    if token_mask is not None:
        scores = scores.masked_fill(~token_mask[..., None, :], float("-inf"))
    if region_mask is not None:
        scores = scores.masked_fill(~region_mask[..., :, None], float("-inf"))
    alpha = _masked_softmax(scores, dim=-1)
    beta = _masked_softmax(scores, dim=-2)
    return Attention(scores, alpha, beta, alpha @ tokens, beta.transpose(-1, -2) @ regions)


def _masked_softmax(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax where a whole masked-out row gives zeros, not NaN (a padded region's row)."""
    out = torch.softmax(scores, dim=dim)
    return torch.nan_to_num(out, nan=0.0)


class CrossAttentionNet(nn.Module):
    r"""Projections of regions and tokens, the bilinear form :math:`W_a` and the matching score.

    Parameters
    ----------
    region_dim, token_dim : int
        Sizes of the image tower's region vectors and the text tower's token vectors.
    dim : int
        The common size both are projected to (:math:`W_a` is dim x dim, initialised to the
        identity).
    """

    def __init__(self, region_dim: int, token_dim: int, dim: int = 256):
        super().__init__()
        self.proj_region = nn.Linear(region_dim, dim)
        self.proj_token = nn.Linear(token_dim, dim)
        self.w_a = nn.Parameter(torch.eye(dim))
        # sharpness of the attention softmaxes (scores are cosines before it) and 1/tau of the loss
        self.log_att_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def project(self, regions: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised projections: (..., R, dim) and (..., T, dim)."""
        return (F.normalize(self.proj_region(regions), dim=-1), F.normalize(self.proj_token(tokens), dim=-1))

    def attention(self, regions, tokens, region_mask=None, token_mask=None) -> Attention:
        """:func:`cross_attention` of the projected parts (shapes as there)."""
        r, t = self.project(regions, tokens)
        return cross_attention(r, t, self.w_a, region_mask, token_mask, self.log_att_scale.exp())

    def pair_scores(self, regions, region_mask, tokens, token_mask, projected: bool = False) -> torch.Tensor:
        """Matching scores of every image with every text.

        Parameters
        ----------
        regions : Tensor, shape (B_i, R, d_i); region_mask : bool (B_i, R)
        tokens : Tensor, shape (B_t, T, d_t); token_mask : bool (B_t, T)
        projected : bool
            The parts are already projected and normalised (:meth:`project`).

        Returns
        -------
        Tensor, shape (B_i, B_t)
        """
        if projected:
            r, t = regions, tokens
        else:
            r, t = self.project(regions, tokens)
        rm, tm = region_mask[:, None, :], token_mask[None, :, :]  # (B_i, 1, R), (1, B_t, T)
        cos = torch.einsum("ard,btd->abrt", r, t)  # (B_i, B_t, R, T)
        logits = self.log_att_scale.exp() * torch.einsum("ard,de,bte->abrt", r, self.w_a, t)
        logits = logits.masked_fill(~tm[:, :, None, :], float("-inf"))
        logits = logits.masked_fill(~rm[:, :, :, None], float("-inf"))
        alpha = _masked_softmax(logits, -1)
        beta = _masked_softmax(logits, -2)
        # cos(I_i, sum_j a_ij T_j) without building the attended vectors: the dot product is
        # sum_j a_ij cos_ij and the squared norm a_i G a_i^T with the tokens' Gram matrix G
        gram_t = torch.einsum("btd,bsd->bts", t, t)  # (B_t, T, T)
        gram_r = torch.einsum("ard,asd->ars", r, r)  # (B_i, R, R)
        dot_r = (alpha * cos).sum(-1)
        norm_r = (torch.einsum("abrt,bts->abrs", alpha, gram_t) * alpha).sum(-1).clamp_min(1e-12).sqrt()
        dot_t = (beta * cos).sum(-2)
        norm_t = (torch.einsum("abrt,ars->abst", beta, gram_r) * beta).sum(-2).clamp_min(1e-12).sqrt()
        region_side = _masked_mean(dot_r / norm_r, rm)
        token_side = _masked_mean(dot_t / norm_t, tm)
        return 0.5 * (region_side + token_side)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of ``values`` (a, b, n) where ``mask`` (broadcastable) is True."""
    mask = mask.to(values.dtype).expand_as(values)
    return (values * mask).sum(-1) / mask.sum(-1)


def pad_parts(parts: list, max_len: int | None = None, name: str = "tokens",
              warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length (n_i, d) arrays into (N, L, d) float32 and a bool mask (N, L).

    Items longer than ``max_len`` (>= 1) are cut to it (with one warning naming how many were
    cut); an item with no rows, or not a finite (n_i, d) array, is refused.
    """
    if not parts:
        raise InputError(f"{name}: expected at least one item, got none")
    if max_len is not None:
        check_int(max_len, "max_len", low=1)
    for i, p in enumerate(parts):
        if hasattr(p, "__len__") and len(p) == 0:
            raise InputError(f"{name}: item {i} is empty (no vectors to attend to)")
    parts = [check_matrix(p, f"{name}: item {i}", dtype=np.float32) for i, p in enumerate(parts)]
    lengths = [len(p) for p in parts]
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise InputError(f"{name}: items disagree on the vector size: {sorted(dims)}")
    length = max(lengths) if max_len is None else min(max(lengths), int(max_len))
    cut = sum(n > length for n in lengths)
    if cut and warn:
        warnings.warn(f"{name}: {cut} of {len(parts)} items are longer than {length} and were truncated",
                      UserWarning, stacklevel=3)
    out = np.zeros((len(parts), length, dims.pop()), np.float32)
    mask = np.zeros((len(parts), length), bool)
    for i, p in enumerate(parts):
        n = min(len(p), length)
        out[i, :n] = p[:n]
        mask[i, :n] = True
    return out, mask
