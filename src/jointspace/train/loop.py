"""The training loop for contrastive joint models (dual encoders and beyond).

:func:`fit_dual_encoder` trains any ``torch.nn.Module`` that maps a batch
``{modality: Tensor (n, ...)}`` to L2-normalised features ``{modality: Tensor (n, d)}`` and owns
a ``log_scale`` parameter (and ``bias`` for SigLIP).  The data are arrays held in memory
(cached tower features, or raw tensors for trainable towers).

The run is split into its parts (:class:`_Run`): an optimiser step, an epoch, a validation
and a checkpoint.

Exact resumption: the order of the samples in epoch ``e`` is drawn from ``(seed, e)`` alone, the
learning rate is a function of the step (torch's ``LambdaLR`` over :func:`.schedule.lr_at`),
and a checkpoint holds the weights, the optimiser, the RNG state and the early-stopping state, so a run stopped at any point (even by SIGKILL)
and resumed from its last checkpoint ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import check_bool, check_choice, check_float, check_int, check_lr
from ..errors import InputError, TrainingDiverged
from ..objectives.contrastive import clamp_log_scale_, logit_scale
from . import distributed as dist
from .checkpoint import EarlierRun, hold_run_dir, load_checkpoint, resume_note, save_checkpoint
from .device import resolve_device, to_device
from .monitor import AVERAGES, MetricsLog, ProgressBar, evaluate_recall
from .step import take_rows, as_training_data, train_step
from .schedule import make_optimizer, make_scheduler, resolve_warmup, warmup_cosine

LOSSES = ("clip", "siglip", "supervised")
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass
class TrainConfig:
    """Settings of a training run (all JSON-able).

    Attributes
    ----------
    epochs, batch_size : int
        ``batch_size`` is the contrastive batch (the negatives each pair sees), summed over
        processes when distributed; the last incomplete batch of an epoch is dropped.
    lr, weight_decay, min_lr : float
        AdamW; weight decay skips biases, norms and the temperature.
    tower_lr_scale : float
        Learning-rate multiplier of the tower parameters (e.g. 0.03 for unfrozen pretrained
        blocks under freshly initialised heads).
    warmup : int or float
        Warm-up steps, or a fraction of all steps; cosine decay afterwards.
    grad_clip : float or None
        Clip the global gradient norm.
    accum_steps : int
        Split each batch (each process's share of it, when distributed) into this many
        micro-batches whose features are computed twice (first without gradient to gather
        every negative, then with gradient one micro-batch at a time), so the network's
        activations are held for one micro-batch while the loss (and its N x N similarity
        matrix) is that of the whole global batch.
    precision : {"fp32", "bf16", "auto"}
        bf16 autocast of the forward pass ("auto": when the CPU, or the GPU, has bf16 units).
    device : {"cpu", "cuda", "cuda:N", "auto"}
        Where the network trains (:mod:`jointspace.train.device`); under torchrun "cuda" is
        each process's own GPU and the processes talk over NCCL (gloo on the CPU).
    loss : {"clip", "siglip", "supervised"}
    max_scale : float
        Bound of the logit scale ``1/tau`` (CLIP: 100).
    patience : int or None
        Stop after this many epochs without a better validation Recall@K (and keep the best
        weights); None trains every epoch (the best weights are still restored when
        validation data are given and ``restore_best``).
    recall_k : int
    val_average : {"query", "group"}
        How validation Recall@K weighs queries: each query once, or each relevance group
        (e.g. title) once, so that a few large groups do not decide the stopping epoch.
    checkpoint_every : int
        Checkpoint every this many steps (0: at the end of each epoch only).
    keep_checkpoints : int
        Checkpoints kept on disk (0: all).
    log_every : int
        Log the training loss every this many steps (>= 1).
    """

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    min_lr: float = 0.0
    tower_lr_scale: float = 1.0
    warmup: float = 0.05
    grad_clip: float | None = 1.0
    accum_steps: int = 1
    precision: str = "fp32"
    device: str = "cpu"
    loss: str = "clip"
    max_scale: float = 100.0
    seed: int = 0
    patience: int | None = None
    restore_best: bool = True
    recall_k: int = 10
    val_average: str = "query"
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = False
    tensorboard: bool = False

    def validate(self) -> "TrainConfig":
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=2)
        check_lr(self.lr)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_float(self.min_lr, "min_lr", low=0.0, high=self.lr)
        resolve_warmup(self.warmup, 1)
        check_float(self.tower_lr_scale, "tower_lr_scale", low=0.0, low_open=True)
        check_int(self.accum_steps, "accum_steps", low=1)
        check_choice(self.precision, "precision", PRECISIONS)
        resolve_device(self.device)
        check_choice(self.loss, "loss", LOSSES)
        check_float(self.max_scale, "max_scale", low=1.0)
        check_int(self.recall_k, "recall_k", low=1)
        check_choice(self.val_average, "val_average", AVERAGES)
        check_int(self.checkpoint_every, "checkpoint_every", low=0)
        check_int(self.keep_checkpoints, "keep_checkpoints", low=0)
        check_int(self.log_every, "log_every", low=1)
        check_int(self.seed, "seed", low=0, high=2**32 - 1)
        check_bool(self.restore_best, "restore_best")
        check_bool(self.progress, "progress")
        check_bool(self.tensorboard, "tensorboard")
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        if self.batch_size % self.accum_steps:
            raise InputError(f"accum_steps: must divide batch_size={self.batch_size}, got {self.accum_steps}")
        return self


@dataclass
class TrainResult:
    """What :func:`fit_dual_encoder` returns."""

    steps: int
    epochs_run: int
    best_metric: float | None
    best_epoch: int | None
    stopped_early: bool
    history: list = field(default_factory=list)
    pairs_per_s: float = 0.0


#: settings that may differ when a run is resumed (they do not change the weights)
RESUME_MAY_CHANGE = frozenset({"progress", "log_every", "tensorboard", "keep_checkpoints", "checkpoint_every",
                               "device"})


def data_fingerprint(data: dict, labels=None, masks=None) -> dict:
    """Row count and SHA-256 of each modality's training data (and of the labels and masks), so
    that a checkpoint is resumed only on the data it was trained on.

    Returns
    -------
    dict of str to str
        ``{modality: "<n> rows, sha256 <first 16 hex digits>"}``, plus ``labels`` / ``masks``
        when given.
    """
    import hashlib

    def digest(values) -> str:
        h = hashlib.sha256()
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        if isinstance(values, np.ndarray) and values.dtype != object:
            h.update(str((values.dtype, values.shape)).encode())
            h.update(np.ascontiguousarray(values).tobytes())
        else:
            for v in values:
                h.update(repr(v.tolist() if isinstance(v, np.ndarray) else v).encode())
                h.update(b"\0")
        return f"{len(values)} rows, sha256 {h.hexdigest()[:16]}"

    out = {m: digest(v) for m, v in data.items()}
    if labels is not None:
        out["labels"] = digest(np.asarray(labels, dtype=object) if not isinstance(labels, np.ndarray) else labels)
    for m, v in (masks or {}).items():
        out[f"mask.{m}"] = digest(np.asarray(v, dtype=bool))
    return out


def bf16_supported() -> bool:
    """Whether this CPU has bf16 matrix or vector units (AMX / AVX512-BF16)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def warn_no_early_stopping(epochs: int) -> None:
    """Say once that ``patience`` has nothing to watch: no validation rows were given or held out."""
    import warnings

    warnings.warn(f"patience: early stopping watches validation pairs, and there are none (give val, or a "
                  f"val_fraction > 0 with at least 20 pairs); all {epochs} epochs run", UserWarning, stacklevel=3)


def fit_dual_encoder(net: torch.nn.Module, train: dict, config: TrainConfig | None = None, *, val: dict | None = None,
                     val_keys=None, labels=None, masks: dict | None = None, run_dir=None, resume=None,
                     model_config: dict | None = None, step_callback=None) -> TrainResult:
    """Train ``net`` contrastively on aligned arrays.

    Parameters
    ----------
    net : torch.nn.Module
        ``net({modality: Tensor (n, ...)}) -> {modality: Tensor (n, d)}`` (L2-normalised), with a
        ``log_scale`` parameter (and ``bias`` for the SigLIP loss).
    train : dict of str to ndarray, each (N, ...)
        Aligned training inputs per modality (e.g. cached tower features).
    config : TrainConfig
    val : dict of str to ndarray, optional
        Validation inputs; Recall@K on them drives early stopping and best-weight restore.
    val_keys : ndarray (N_val,), optional
        Relevance keys for validation (items with equal keys count as matches).
    labels : sequence (N,), optional
        Captions / labels, for the supervised loss.
    masks : dict of str to bool ndarray (N,), optional
        Which samples have each modality (three or more modalities).
    run_dir : path, optional
        Where checkpoints, ``metrics.csv`` and TensorBoard logs go.
    resume : path, optional
        A run folder (its newest checkpoint) or a checkpoint folder to continue from.
    model_config : dict, optional
        JSON-able description of ``net``.  A checkpoint is resumed only when this, the
        training settings (all but :data:`RESUME_MAY_CHANGE`) and the training data
        (:func:`data_fingerprint`) are those it was written with.
    step_callback : callable(step, loss), optional
        Called after every optimiser step.

    Returns
    -------
    TrainResult
    """
    cfg = (config or TrainConfig()).validate()
    if not isinstance(train, dict) or len(train) < 2:
        raise InputError("train: expected a dict of at least two modalities -> arrays")
    data = as_training_data(train)
    n_total = {m: len(v) for m, v in data.items()}
    n = next(iter(n_total.values()))
    if len(set(n_total.values())) != 1:
        raise InputError(f"train: every modality needs the same number of rows, got {n_total}")
    if n < 2:
        raise InputError(f"train: a contrastive loss needs at least 2 pairs, got {n}")
    if cfg.loss == "supervised" and labels is None:
        raise InputError("labels: the supervised loss needs one caption or label per pair")
    if cfg.loss == "siglip" and getattr(net, "bias", None) is None:
        raise InputError("net: the siglip loss needs a module with a 'bias' parameter")
    rank, size = dist.world()
    masks_t = None if masks is None else {m: torch.as_tensor(np.asarray(v), dtype=torch.bool) for m, v in masks.items()}
    labels_arr = None if labels is None else np.asarray(labels, dtype=object)
    batch = min(cfg.batch_size, n)
    if batch % size:
        raise InputError(f"batch_size: must be divisible by the number of processes ({size}), got {batch}")
    if batch // size < cfg.accum_steps:
        raise InputError(f"accum_steps: at most each process's share of the batch ({batch // size} = "
                         f"{batch} pairs / {size} processes), got {cfg.accum_steps}")
    steps_per_epoch = max(1, n // batch)
    total = cfg.epochs * steps_per_epoch
    warmup = resolve_warmup(cfg.warmup, total)
    device = resolve_device(cfg.device)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and (
        torch.cuda.is_bf16_supported() if device.type == "cuda" else bf16_supported()))
    # what a checkpoint must match to be resumed: the network, the settings that shape the
    # trajectory, and the training data (a resumed run continues exactly, or not at all);
    # hashing the data is needed only when checkpoints are written or read
    run_config = None
    if run_dir is not None or resume is not None:
        run_config = {**(model_config if model_config is not None else {}),
                      **{f"train.{k}": v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_MAY_CHANGE},
                      **{f"data.{k}": v for k, v in data_fingerprint(data, labels, masks).items()}}
    val_t = None if val is None else as_training_data(val)
    if val is None and cfg.patience is not None:
        warn_no_early_stopping(cfg.epochs)

    torch.manual_seed(cfg.seed)
    dist.broadcast_module_(net)
    net.to(device)
    opt = make_optimizer(net, cfg.lr, cfg.weight_decay, tower_lr_scale=cfg.tower_lr_scale)
    run = _Run(cfg, net, opt, data, labels_arr, masks_t, val_t, val_keys, device, bf16, batch, steps_per_epoch,
               run_dir, run_config, step_callback)
    with hold_run_dir(run_dir if rank == 0 else None):   # one training at a time in a run folder
        if resume is not None:
            run.resume_from(resume)
        run.rate = warmup_cosine(cfg.lr, warmup, total, cfg.min_lr)
        run.sched = make_scheduler(opt, run.rate, start_step=run.step)
        # a new run: an earlier run's checkpoints would be resumed by mistake, so they are set
        # aside until this run writes its own (and put back if it fails before that)
        earlier = EarlierRun(run_dir) if resume is None and run_dir is not None and rank == 0 else None
        run.log = MetricsLog(run_dir if rank == 0 else None, tensorboard=cfg.tensorboard,
                             resume_step=run.step if resume is not None else None)
        run.bar = ProgressBar(total, cfg.progress and rank == 0, start=run.step)
        net.train()
        run.t_start = time.perf_counter()
        try:
            while run.step < total and not run.state["stopped"]:
                run.epoch(*divmod(run.step, steps_per_epoch))
        finally:
            run.bar.close()
            run.log.close()
            if earlier is not None:
                earlier.settle()
    if run.best_weights is not None and cfg.restore_best:
        net.load_state_dict(run.best_weights)
    net.eval()
    state = run.state
    return TrainResult(steps=run.step, epochs_run=state["epoch_done"], best_metric=state["best_metric"],
                       best_epoch=state["best_epoch"], stopped_early=bool(state["stopped"]),
                       history=list(state["history"]), pairs_per_s=run.pairs_per_s())


class _Run:
    """One training run of :func:`fit_dual_encoder`: its state, and its parts (an optimiser
    step, an epoch, a validation, a checkpoint).

    ``state`` (what a checkpoint keeps besides the weights, the optimiser and the RNG) holds
    ``epoch_done``, the early-stopping figures and the validation history; ``step`` counts
    optimiser steps, from which the epoch, the position in it and the learning rate follow.
    """

    def __init__(self, cfg, net, opt, data, labels, masks, val, val_keys, device, bf16: bool, batch: int,
                 steps_per_epoch: int, run_dir, run_config, step_callback):
        self.cfg, self.net, self.opt = cfg, net, opt
        self.data, self.labels, self.masks = data, labels, masks
        self.val, self.val_keys = val, val_keys
        self.device, self.bf16 = device, bf16
        self.batch, self.steps_per_epoch, self.total = batch, steps_per_epoch, cfg.epochs * steps_per_epoch
        self.run_dir, self.run_config, self.step_callback = run_dir, run_config, step_callback
        self.rank, self.size = dist.world()
        self.n = len(next(iter(data.values())))
        self.state = {"epoch_done": 0, "best_metric": None, "best_epoch": None, "bad_epochs": 0, "stopped": False,
                      "history": []}
        self.best_weights = None
        self.last_good = None   # the newest checkpoint of this run, written or resumed from
        self.step = 0
        self.rate = self.sched = self.log = self.bar = None
        self.t_start, self.pairs_seen = time.perf_counter(), 0

    def resume_from(self, resume) -> None:
        loaded = load_checkpoint(resume, self.net, self.opt, self.run_config)
        self.step, self.last_good = loaded["step"], loaded["path"]
        self.state.update({k: loaded[k] for k in self.state if k in loaded})
        if loaded["extra"]:
            self.best_weights = {k[len("best."):]: v for k, v in loaded["extra"].items() if k.startswith("best.")}

    def _last_good_str(self) -> str | None:
        return None if self.last_good is None else str(self.last_good)

    def pairs_per_s(self) -> float:
        return self.pairs_seen / max(time.perf_counter() - self.t_start, 1e-9)

    def epoch(self, epoch: int, offset: int) -> None:
        """Batches ``offset ..`` of ``epoch`` (in the order drawn from the seed and the epoch
        alone), validating at its end; stops early when validation says so."""
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.n)
        for b in range(offset, self.steps_per_epoch):
            idx = order[b * self.batch:(b + 1) * self.batch]
            if self.size > 1:   # this process's share of the global batch
                local = self.batch // self.size
                idx = idx[self.rank * local:(self.rank + 1) * local]
            self.optimizer_step(idx, epoch)
            epoch_end = b == self.steps_per_epoch - 1
            if epoch_end:
                self.state["epoch_done"] = epoch + 1
                if self.val is not None:
                    self.validate(epoch)
            every = self.cfg.checkpoint_every
            if (every and self.step % every == 0) or (epoch_end and not every) or self.step == self.total \
                    or self.state["stopped"]:
                self.checkpoint()
            if self.state["stopped"]:
                break

    def optimizer_step(self, idx: np.ndarray, epoch: int) -> None:
        """Forward, backward and the AdamW step on rows ``idx``, then the schedule, the
        temperature clamp, the progress bar and the log."""
        cfg, net = self.cfg, self.net
        mb = {m: to_device(take_rows(v, idx), self.device) for m, v in self.data.items()}
        mb_masks = None if self.masks is None else {m: take_rows(v, idx).to(self.device) for m, v in self.masks.items()}
        mb_labels = None if self.labels is None else self.labels[idx]
        lr = self.rate(self.step)   # what the scheduler set for this step (before each group's lr_scale)
        self.opt.zero_grad(set_to_none=True)
        loss = train_step(cfg, net, mb, mb_labels, mb_masks, self.bf16)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"train: the loss became {loss} at step {self.step} (epoch {epoch}), so no "
                                   f"optimiser step was taken; lower the learning rate (lr={cfg.lr:g}) or the "
                                   "regularisers' weights, or check the inputs for NaN/inf; "
                                   f"{resume_note(self.run_dir, self.last_good)}",
                                   step=self.step, epoch=epoch, value=loss, checkpoint=self._last_good_str())
        grads = [q.grad for q in net.parameters() if q.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if not math.isfinite(float(norm)):   # stepping on it would turn every weight to NaN
            raise TrainingDiverged(f"train: the gradient norm became {float(norm)} at step {self.step} "
                                   f"(epoch {epoch}; the loss was {loss:.4g}), so no optimiser step was taken; "
                                   f"lower the learning rate (lr={cfg.lr:g}) or the regularisers' weights; "
                                   f"{resume_note(self.run_dir, self.last_good)}",
                                   step=self.step, epoch=epoch, value=float(norm), checkpoint=self._last_good_str())
        if cfg.grad_clip is not None and grads:
            torch.nn.utils.clip_grads_with_norm_(net.parameters(), cfg.grad_clip, norm)
        self.opt.step()
        self.sched.step()
        clamp_log_scale_(net.log_scale, cfg.max_scale)
        self.step += 1
        self.pairs_seen += self.batch
        tau = 1.0 / float(logit_scale(net.log_scale.detach(), cfg.max_scale))
        rate = self.pairs_per_s()
        self.bar.update(self.step, loss, tau, rate)
        if self.step % cfg.log_every == 0 or self.step == self.total:
            self.log.log({"step": self.step, "epoch": epoch, "loss": loss, "tau": tau, "lr": lr, "pairs_per_s": rate,
                          **getattr(net, "aux_logs", {})})
        if self.step_callback is not None:
            self.step_callback(self.step, loss)

    def validate(self, epoch: int) -> None:
        """Validation Recall@K at the end of ``epoch``: keep the best weights, count the epochs
        without improvement, stop after ``patience`` of them."""
        cfg, state = self.cfg, self.state
        metrics = evaluate_recall(self.net, self.val, cfg.recall_k, self.val_keys, average=cfg.val_average)
        row = {"step": self.step, "epoch": epoch, **metrics}
        state["history"].append(row)
        self.log.log(row)
        best = state["best_metric"]
        if best is None or metrics["val_recall"] > best:
            state.update(best_metric=metrics["val_recall"], best_epoch=epoch, bad_epochs=0)
            self.best_weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        else:
            state["bad_epochs"] += 1
            if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                state["stopped"] = True

    def checkpoint(self) -> None:
        """Rank 0 writes the weights, optimiser, RNG and ``state`` (with the best weights so
        far); every rank waits for it."""
        if self.run_dir is not None and self.rank == 0:
            extra = {f"best.{k}": v for k, v in (self.best_weights or {}).items()}
            self.last_good = save_checkpoint(self.run_dir, self.step, self.net, self.opt, self.state,
                                             self.run_config, keep=self.cfg.keep_checkpoints, extra=extra)
        if self.size > 1:
            torch.distributed.barrier()


def config_from_dict(d: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a dict, refusing unknown keys."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(d) - names)
    if bad:
        raise InputError(f"train options: unknown {', '.join(bad)}; known: {', '.join(sorted(names))}")
    return TrainConfig(**d)


__all__ = ["TrainConfig", "TrainResult", "fit_dual_encoder", "evaluate_recall", "config_from_dict", "bf16_supported"]
