"""Training across processes: negatives from every rank, so the effective batch is global.

Each rank embeds its share of the batch, all-gathers the features *with their gradient*
(:func:`gather_with_grad`, whose backward sums the gradients of a slice from every rank), and
computes the local loss: its own rows (texts against every image, images against every text)
with the global columns.  The mean of the local losses over ranks is the chapter's loss of the
global batch, and after averaging parameter gradients over ranks (as DistributedDataParallel
does) so are the gradients.

The other losses (SigLIP, the label-aware loss, three or more modalities) are computed whole
on every rank from the gathered features (and gathered labels / masks): every rank holds the
same global loss L, the all-gather's backward hands each rank ``world * dL/dx`` for its own
rows, and the average over ranks of the parameter gradients is again dL/dtheta.

Launch with ``torchrun --nproc-per-node N ...`` (gloo on CPU; NCCL with ``device=cuda``), e.g.
``torchrun --nproc-per-node 2 -m jointspace fit openclipart --model clip ...``: ``fit`` joins
the process group (:func:`init_from_env`), each rank trains on its share of every batch, and
rank 0 writes the checkpoints and the model.  A single process needs nothing of this.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if is_distributed():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_from_env(backend: str = "gloo") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (no-op without it).

    ``backend`` follows the training device (:func:`jointspace.train.device.backend_for`):
    gloo for CPU tensors, NCCL for CUDA ones (each process then works on GPU ``LOCAL_RANK``).
    """
    if is_distributed() or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return world()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group(backend=backend)
    return world()


def finish() -> None:
    """Wait for every rank, then leave the process group (no-op outside one).

    The barrier keeps a fast rank from tearing down its connections while another still
    talks to it (gloo aborts the process otherwise).  Under gloo it is the monitored barrier,
    which waits in the calling thread on tensors that Python does not own: the plain barrier
    hands a Python tensor to gloo's worker thread, and when that thread drops it while the
    interpreter shuts down the process aborts ("terminate called without an active
    exception")."""
    if is_distributed():
        if torch.distributed.get_backend() == "gloo":
            torch.distributed.monitored_barrier(wait_all_ranks=True)
        else:
            torch.distributed.barrier()
    leave()


def leave() -> None:
    """Leave the process group at once (no-op outside one)."""
    if is_distributed():
        torch.distributed.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward hands each rank the sum over ranks of its slice's gradient.

    Torch's differentiable all-gather (``torch.distributed.nn.functional.all_gather``) computes
    the same gradient but is deprecated in the torch this package pins, and its successor
    (``torch.distributed._functional_collectives``) is private; gloo has no reduce-scatter, so
    the backward is an all-reduce followed by this rank's slice (what torch emulates with an
    all-to-all on gloo).  The forward is torch's own :func:`gather_tensor`.
    """

    @staticmethod
    def forward(ctx, x):
        rank = world()[0]
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return gather_tensor(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        return grad[ctx.rows[0]:ctx.rows[1]]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (n_local, d) of every rank into (n_local * world, d), keeping the gradient.

    Every rank must pass the same shape.  The backward sums, over ranks, the gradient of this
    rank's rows (what ``torch.distributed.nn.functional.all_gather`` computes)."""
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x.contiguous())


def gather_objects(items) -> list:
    """Concatenate a sequence (labels, captions) of every rank, in rank order."""
    items = list(items)
    if not is_distributed():
        return items
    _, size = world()
    out = [None] * size
    torch.distributed.all_gather_object(out, items)
    return [x for part in out for x in part]


def gather_tensor(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank along the first axis, without gradient (masks, ids)."""
    if not is_distributed():
        return x
    _, size = world()
    x = x.contiguous()
    out = x.new_empty((size * x.shape[0], *x.shape[1:]))
    # torch's single-tensor all-gather (older torch names it all_gather_into_tensor)
    gather = getattr(torch.distributed, "all_gather_single", None) or torch.distributed.all_gather_into_tensor
    gather(out, x)
    return out


def local_clip_loss(text: torch.Tensor, image: torch.Tensor, all_text: torch.Tensor, all_image: torch.Tensor,
                    offset: int, scale) -> torch.Tensor:
    r"""This rank's share of the chapter's symmetric loss over the global batch.

    Rows ``offset .. offset + n`` of :math:`C = \text{scale}\, E_t E_a^\top` give
    :math:`\ell_{text}`; rows of :math:`C^\top` (images against every text) give
    :math:`\ell_{image}`; both are averaged over the local rows.

    Parameters
    ----------
    text, image : Tensor, shape (n, d)
        This rank's features.
    all_text, all_image : Tensor, shape (N, d)
        Every rank's features (from :func:`gather_with_grad`).
    offset : int
        Index of this rank's first row in the global batch.
    scale : Tensor, shape ()

    Returns
    -------
    loss : Tensor, shape ()
        float64 for float64 features, float32 otherwise (as
        :func:`jointspace.objectives.contrastive.clip_loss`).
    """
    n = text.shape[0]
    target = torch.arange(offset, offset + n, device=text.device)
    dtype = torch.float64 if text.dtype == torch.float64 else torch.float32   # as clip_loss
    with torch.autocast(text.device.type, enabled=False):   # autocast would run the matmuls in bf16
        logits_text = scale * text.to(dtype) @ all_image.to(dtype).T
        logits_image = scale * image.to(dtype) @ all_text.to(dtype).T
        return 0.5 * (F.cross_entropy(logits_text, target) + F.cross_entropy(logits_image, target))


def all_reduce_mean_(tensors) -> None:
    """Average tensors (gradients, losses) over ranks in place."""
    if not is_distributed():
        return
    _, size = world()
    for t in tensors:
        if t is not None:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
            t.div_(size)


def sum_gradients_(module: torch.nn.Module) -> None:
    """Sum the parameter gradients over ranks in place (no-op outside a process group).

    A parameter with a gradient on some ranks only (the temperature, counted on one rank)
    gets zeros on the others before the sum; one with no gradient anywhere keeps ``None``, so
    the optimiser still skips it."""
    if not is_distributed():
        return
    params = list(module.parameters())
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
    torch.distributed.all_reduce(has, op=torch.distributed.ReduceOp.MAX)
    for p, flag in zip(params, has.tolist()):
        if flag:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)


def average_gradients_(module: torch.nn.Module) -> None:
    """Average the parameter gradients over ranks (what DistributedDataParallel does)."""
    all_reduce_mean_([p.grad for p in module.parameters() if p.grad is not None])


def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s parameters and buffers."""
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(t.data, src)
