r"""A fused forward/backward of the chapter's symmetric contrastive loss.

The straightforward loss (``F.cross_entropy`` on ``C`` and on ``C^T``) walks the N x N logits
about twenty times between forward and backward (two log-softmaxes, a transposed copy, two
softmax backwards, the scale's gradient).  Here the gradient with respect to the logits is
known in closed form,

.. math::  \frac{\partial \mathcal{L}}{\partial C_{ij}} = \frac{1}{2N}\big(P_{ij} + Q_{ij}\big)
           - \frac{1}{N}\,\delta_{ij},

with :math:`P` the row softmax and :math:`Q` the column softmax of :math:`C`, so the forward
pass computes :math:`G = \partial\mathcal{L}/\partial C` once, keeps it, and the backward pass
is two matrix products.  The value is the same function as
:func:`jointspace.objectives.contrastive.info_nce`, pinned against it in the tests.  A backward
that builds a graph (``create_graph=True``) recomputes :math:`G` from the inputs, so second
derivatives are those of the plain loss.
"""

from __future__ import annotations

import torch


class _FusedClipLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, text, image, scale):
        n = text.shape[0]
        s = float(scale)
        logits = (text * s) @ image.T                      # C = E_t E_a^T / tau
        diag_mean = logits.diagonal().mean()
        # Row softmax P (l_text) and its log-sum-exp.
        m_r = logits.amax(dim=1, keepdim=True)
        p = torch.sub(logits, m_r).exp_()
        s_r = p.sum(dim=1, keepdim=True)
        lse_r = (m_r + s_r.log()).mean()
        p.div_(s_r)
        # Column softmax Q (l_image) and its log-sum-exp.
        m_c = logits.amax(dim=0, keepdim=True)
        q = torch.sub(logits, m_c).exp_()
        s_c = q.sum(dim=0, keepdim=True)
        lse_c = (m_c + s_c.log()).mean()
        q.div_(s_c)
        loss = 0.5 * (lse_r + lse_c) - diag_mean
        # G = dL/dC, stored instead of the logits.
        g = p.add_(q).mul_(0.5 / n)
        del q
        g.diagonal().sub_(1.0 / n)
        # dL/dscale = sum_ij G_ij C_ij / scale (C is linear in the scale).
        if ctx.needs_input_grad[2]:
            grad_scale = torch.dot(g.reshape(-1), logits.reshape(-1)) / s
        else:
            grad_scale = None
        del logits
        ctx.save_for_backward(text, image, g, scale)
        ctx.s = s
        ctx.grad_scale = grad_scale
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        text, image, g, scale = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True (a gradient penalty, higher-order derivatives): G is rebuilt
            # from the inputs with differentiable operations, since the stored G is a constant
            # and differentiating through it would silently drop its dependence on them.
            return _differentiable_backward(ctx, text, image, scale, grad_out)
        s = ctx.s * grad_out
        grad_text = grad_image = grad_scale = None
        if ctx.needs_input_grad[0]:
            grad_text = (g @ image) * s
        if ctx.needs_input_grad[1]:
            grad_image = (g.T @ text) * s
        if ctx.needs_input_grad[2]:
            grad_scale = ctx.grad_scale * grad_out
        return grad_text, grad_image, grad_scale


def _differentiable_backward(ctx, text, image, scale, grad_out):
    """The backward of :class:`_FusedClipLoss` as a function autograd can differentiate again."""
    n = text.shape[0]
    sims = text @ image.T
    logits = scale * sims
    g = (0.5 / n) * (torch.softmax(logits, dim=1) + torch.softmax(logits, dim=0))
    g = g - torch.eye(n, dtype=g.dtype, device=g.device) / n
    grad_text = grad_image = grad_scale = None
    if ctx.needs_input_grad[0]:
        grad_text = grad_out * scale * (g @ image)
    if ctx.needs_input_grad[1]:
        grad_image = grad_out * scale * (g.T @ text)
    if ctx.needs_input_grad[2]:
        grad_scale = grad_out * (g * sims).sum()
    return grad_text, grad_image, grad_scale


def fused_clip_loss(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of ``C = scale * text @ image.T`` with a closed-form backward.

    Parameters
    ----------
    text : Tensor, shape (N, d), float32
    image : Tensor, shape (N, d), float32
    scale : Tensor, shape ()
        The logit scale ``1 / tau`` (may require grad).

    Returns
    -------
    loss : Tensor, shape ()
    """
    return _FusedClipLoss.apply(text, image, scale)
