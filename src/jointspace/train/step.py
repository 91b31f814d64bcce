"""One optimiser step's forward and backward: plain, accumulated with a feature cache, or
across processes; and the loss a configuration names."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..objectives.contrastive import clip_loss, logit_scale, multimodal_clip_loss, siglip_loss, supervised_clip_loss
from . import distributed as dist
from .device import get_rng_state, set_rng_state


def as_training_data(data: dict) -> dict:
    """Float arrays become float32 tensors; anything else (raw items for a trainable tower:
    lists of paths or strings, uint8 image stacks) stays as given."""
    out = {}
    for m, arr in data.items():
        if isinstance(arr, torch.Tensor):
            out[m] = arr.float() if arr.is_floating_point() else arr
        elif isinstance(arr, np.ndarray) and np.issubdtype(arr.dtype, np.floating):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            # a read-only array (memory-mapped, e.g. in a worker process) is copied: torch
            # tensors assume writable memory
            out[m] = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
        else:
            out[m] = arr if isinstance(arr, np.ndarray) else list(arr)
    return out


def take_rows(items, idx: np.ndarray):
    """Rows ``idx`` of a tensor, an array or a list."""
    if isinstance(items, torch.Tensor):
        return items[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(items.device)]
    if isinstance(items, np.ndarray):
        return items[idx]
    return [items[i] for i in idx]


def _compute_loss(cfg: TrainConfig, net, feats: dict, scale, bias, labels, masks):
    names = list(feats)
    if cfg.loss == "clip":
        if len(names) == 2 and masks is None:
            return clip_loss(feats[names[0]], feats[names[1]], scale, check=False)
        return multimodal_clip_loss(feats, scale, masks, check=False)[0]
    if cfg.loss == "siglip":
        pair = lambda a, b, s: siglip_loss(a, b, s, bias, check=False)  # noqa: E731
    else:
        pair = lambda a, b, s: supervised_clip_loss(a, b, labels, s, check=False)  # noqa: E731
        if masks is not None:
            raise InputError("masks: missing modalities are not supported with the supervised loss")
    return multimodal_clip_loss(feats, scale, masks, pair_loss=pair, check=False)[0]


def _forward(net, batch: dict, bf16: bool) -> dict:
    with torch.autocast(net.log_scale.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(batch)
    return {m: v.float() for m, v in out.items()}


def train_step(cfg, net, batch: dict, labels, masks, bf16: bool) -> float:
    """Forward + backward of one (possibly accumulated) batch; returns the loss value."""
    scale = logit_scale(net.log_scale, cfg.max_scale)
    bias = getattr(net, "bias", None)
    if getattr(net, "private_dim", 0) and (dist.is_distributed() or cfg.accum_steps != 1):
        raise InputError("private_dim: private parts train in one process without gradient accumulation")
    if dist.is_distributed() and cfg.accum_steps == 1:
        feats = _forward(net, batch, bf16)
        rank = dist.world()[0]
        if cfg.loss == "clip" and len(feats) == 2 and masks is None:
            a, b = list(feats)
            n = len(feats[a])
            loss = dist.local_clip_loss(feats[a], feats[b], dist.gather_with_grad(feats[a]),
                                        dist.gather_with_grad(feats[b]), rank * n, scale)
            loss.backward()
            value = loss.detach().clone()
            dist.all_reduce_mean_([value])
        else:  # the whole global loss on every rank (see distributed's module notes)
            every = {m: dist.gather_with_grad(v) for m, v in feats.items()}
            every_labels = None if labels is None else np.asarray(dist.gather_objects(labels), dtype=object)
            every_masks = None if masks is None else {m: dist.gather_tensor(v) for m, v in masks.items()}
            value = _compute_loss(cfg, net, every, scale, bias, every_labels, every_masks)
            value.backward()
        dist.average_gradients_(net)
        return float(value.detach())
    if cfg.accum_steps == 1:
        loss = _compute_loss(cfg, net, _forward(net, batch, bf16), scale, bias, labels, masks)
        if getattr(net, "private_dim", 0):
            aux, net.aux_logs = net.auxiliary_loss()
            loss = loss + aux
        loss.backward()
        return float(loss.detach())
    return _accumulated_step(cfg, net, batch, labels, masks, bf16, scale, bias)


def _accumulated_step(cfg, net, batch: dict, labels, masks, bf16: bool, scale, bias) -> float:
    """Gradient accumulation that keeps every negative of the (global) batch.

    The features of all micro-batches are first computed without gradient (and, across
    processes, gathered from every rank); then each micro-batch is embedded again with
    gradient and the loss of the whole global batch is back-propagated through its rows only
    (open_clip's feature cache).  Each micro-batch's second pass replays the random state of
    its first, so dropout draws the same masks and the cached features equal the recomputed
    ones: the summed gradient is exactly that of the global-batch loss.  Buffers changed by the
    first passes (BatchNorm running statistics) are restored, so each micro-batch updates them
    once, as in training without accumulation.  Across processes
    every rank holds the same global loss and contributes the gradient through its own rows,
    so gradients are summed over ranks; the temperature (and SigLIP bias), which enter the loss
    directly, get their gradient once (rank 0, first micro-batch).
    """
    rank, size = dist.world()
    device = net.log_scale.device
    n = len(next(iter(batch.values())))
    chunks = np.array_split(np.arange(n), cfg.accum_steps)
    micro = [{m: take_rows(v, c) for m, v in batch.items()} for c in chunks]
    states, cached = [], []
    buffers = [(b, b.clone()) for b in net.buffers()]
    with torch.no_grad():
        for mb in micro:
            states.append(get_rng_state(device))
            cached.append(_forward(net, mb, bf16))
        for b, saved in buffers:  # BatchNorm statistics: count each micro-batch once, on its second pass
            b.copy_(saved)
    after = get_rng_state(device)
    every = {m: dist.gather_tensor(torch.cat([c[m] for c in cached])) for m in cached[0]}
    if size > 1:
        labels = None if labels is None else np.asarray(dist.gather_objects(labels), dtype=object)
        masks = None if masks is None else {m: dist.gather_tensor(v) for m, v in masks.items()}
    value = 0.0
    for j, (mb, rows) in enumerate(zip(micro, chunks)):
        set_rng_state(states[j], device)
        fj = _forward(net, mb, bf16)
        start, stop = rank * n + rows[0], rank * n + rows[-1] + 1
        feats = {m: torch.cat([every[m][:start], fj[m], every[m][stop:]]) for m in fj}
        once = j == 0 and rank == 0
        s = scale if once else scale.detach()
        bb = bias if (once or bias is None) else bias.detach()
        loss = _compute_loss(cfg, net, feats, s, bb, labels, masks)
        loss.backward()
        value = float(loss.detach())
    set_rng_state(after, device)
    dist.sum_gradients_(net)
    return value
