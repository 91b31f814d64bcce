"""A training loop for networks whose loss is not contrastive (autoencoders, VAEs, adversarial
autoencoders, anything with a loss over a batch of aligned rows).

:func:`fit_module` trains any ``torch.nn.Module`` with a loss function the caller writes,
``loss_fn(net, batch, step, epoch) -> (loss, logs)``, on aligned arrays held in memory.  It
shares its parts with :func:`jointspace.train.fit_dual_encoder`: AdamW with warm-up and a cosine
decay (:mod:`.schedule`), checkpoints (:mod:`.checkpoint`), ``metrics.csv`` / TensorBoard and a
progress bar (:mod:`.monitor`).

Exact resumption: the order of the rows in epoch ``e`` is drawn from ``(seed, e)`` alone, the
learning rate is a function of the step (torch's ``LambdaLR`` over :func:`.schedule.lr_at`),
and a checkpoint holds the weights, the optimiser, the torch RNG state (so sampling inside
``loss_fn``, e.g. a VAE's reparameterisation, replays), the early-stopping state and the best
weights so far.  A run stopped at any point and resumed from its last checkpoint ends with the
weights of an uninterrupted run; a checkpoint is resumed only by the run it came from (same network config, training settings and data).

A NaN or infinite loss or gradient stops the run before the optimiser steps on it
(:class:`~jointspace.errors.TrainingDiverged`), leaving the last checkpoint as it was.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._validation import check_bool, check_float, check_int, check_lr
from ..errors import InputError, TrainingDiverged
from .checkpoint import EarlierRun, hold_run_dir, load_checkpoint, resume_note, save_checkpoint
from .device import resolve_device, to_device
from .loop import RESUME_MAY_CHANGE, data_fingerprint, warn_no_early_stopping
from .monitor import MetricsLog, ProgressBar
from .phases import OptimizerSet, Phase, check_phases
from .schedule import make_optimizer, make_scheduler, resolve_warmup, warmup_cosine
from .step import as_training_data, take_rows

#: names the loop writes into each logged row; ``loss_fn``'s logs may not use them
RESERVED_LOGS = frozenset({"step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "val_loss"})


@dataclass
class FitConfig:
    """Settings of a :func:`fit_module` run (all JSON-able).

    Attributes
    ----------
    epochs, batch_size : int
    min_batch : int
        The last incomplete batch of an epoch is kept when it holds at least this many rows (a
        reconstruction loss needs no full batch; by default not a lone row, on which BatchNorm
        cannot train; deep CCA needs enough rows to estimate its covariances).
    lr, weight_decay, min_lr : float
        AdamW; weight decay skips biases and norms; the rate falls to ``min_lr`` by a cosine.
    warmup : int or float
        Warm-up steps, or a fraction of all steps.
    grad_clip : float or None
        Clip the global gradient norm.
    seed : int
        Draws the order of each epoch (and seeds torch at the start of a new run).
    patience : int or None
        Stop after this many epochs without a lower ``val_loss``.
    restore_best : bool
        End with the weights of the epoch with the lowest ``val_loss`` (when validating).
    device : {"cpu", "cuda", "cuda:N", "auto"}
    checkpoint_every : int
        Checkpoint every this many steps (0: at the end of each epoch).
    keep_checkpoints : int
        Checkpoints kept on disk (0: all).
    log_every : int
        Log the training loss every this many steps.
    progress, tensorboard : bool
    """

    epochs: int = 50
    batch_size: int = 256
    min_batch: int = 2
    lr: float = 1e-3
    weight_decay: float = 0.0
    min_lr: float = 0.0
    warmup: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    patience: int | None = None
    restore_best: bool = True
    device: str = "cpu"
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = False
    tensorboard: bool = False

    def validate(self) -> "FitConfig":
        """Return self, or raise :class:`InputError` naming the first bad field."""
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_int(self.min_batch, "min_batch", low=1)
        check_lr(self.lr)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_float(self.min_lr, "min_lr", low=0.0, high=self.lr)
        resolve_warmup(self.warmup, 1)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        check_int(self.seed, "seed", low=0)
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        check_bool(self.restore_best, "restore_best")
        resolve_device(self.device)
        check_int(self.checkpoint_every, "checkpoint_every", low=0)
        check_int(self.keep_checkpoints, "keep_checkpoints", low=0)
        check_int(self.log_every, "log_every", low=1)
        check_bool(self.progress, "progress")
        check_bool(self.tensorboard, "tensorboard")
        return self


@dataclass
class FitResult:
    """What :func:`fit_module` returns.

    Attributes
    ----------
    steps, epochs_run : int
        Optimiser steps and complete epochs, counting those before a resume.
    best_metric : float or None
        Lowest ``val_loss`` (None without validation).
    best_epoch : int or None
        Its epoch, from 0.
    stopped_early : bool
    history : list of dict
        One row per epoch: ``step``, ``epoch``, the mean training ``loss`` and logs over the
        epoch's rows, and the validation metrics.
    samples_per_s : float
        Training rows per second in this call.
    """

    steps: int
    epochs_run: int
    best_metric: float | None
    best_epoch: int | None
    stopped_early: bool
    history: list = field(default_factory=list)
    samples_per_s: float = 0.0


def _rows(data: dict, arg: str) -> int:
    counts = {m: len(v) for m, v in data.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"{arg}: every modality needs the same number of rows, got {counts}")
    n = next(iter(counts.values()))
    if n < 1:
        raise InputError(f"{arg}: expected at least 1 row, got 0")
    return n


def _check_data(data, arg: str) -> dict:
    if not isinstance(data, dict) or not data:
        raise InputError(f"{arg}: expected a dict of modality -> array (N, ...), got {type(data).__name__}")
    for m, v in data.items():
        if not hasattr(v, "__len__"):
            raise InputError(f"{arg}: modality {m!r} needs an array or tensor of shape (N, ...), "
                             f"got {type(v).__name__}")
    return as_training_data(data)


def _diverged(what: str, value: float, step: int, epoch: int, cfg: FitConfig, run_dir, last_good) -> TrainingDiverged:
    where = resume_note(run_dir, last_good)
    advice = "check the inputs for NaN/inf" if what.endswith("loss") else "set grad_clip or check the inputs"
    msg = (f"training diverged: the {what} became {value} at step {step} (epoch {epoch}), so no optimiser step "
           f"was taken; lower the learning rate (lr={cfg.lr:g}) or {advice}; {where}")
    return TrainingDiverged(msg, step=step, epoch=epoch, value=value,
                            checkpoint=None if last_good is None else str(last_good))


def _take_step(net, loss_fn, mb, step, epoch, opt, params, cfg, run_dir, last_good, phase: str):
    """One optimiser step of ``opt`` on ``loss_fn``'s loss over the batch ``mb``; returns the loss,
    the logs and the gradient norm (over ``params``), or raises before stepping on a NaN."""
    who = f"phase {phase!r}'s loss_fn" if phase else "loss_fn"
    out = loss_fn(net, mb, step, epoch)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)
            and out[0].ndim == 0 and isinstance(out[1], dict)):
        raise InputError(f"{who}: expected (loss: 0-d Tensor, logs: dict of str to float), got {type(out).__name__}")
    loss_t, logs = out
    loss = float(loss_t.detach())
    what = f"{phase} loss" if phase else "loss"
    if not math.isfinite(loss):
        raise _diverged(what, loss, step, epoch, cfg, run_dir, last_good)
    clash = sorted(RESERVED_LOGS & set(logs))
    if clash:
        raise InputError(f"{who}: its logs may not be named {', '.join(clash)} (the loop writes those)")
    loss_t.backward()
    grads = [p.grad for p in params if p.grad is not None]
    norm_t = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
    grad_norm = float(norm_t)
    if not math.isfinite(grad_norm):
        raise _diverged(f"{phase} gradient norm" if phase else "gradient norm", grad_norm, step, epoch, cfg,
                        run_dir, last_good)
    if cfg.grad_clip is not None and grads:
        torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, norm_t)
    opt.step()
    return loss, {k: float(v) for k, v in logs.items()}, grad_norm


def fit_module(net: torch.nn.Module, loss_fn, train: dict, config: FitConfig | None = None, *,
               val: dict | None = None, val_fn=None, run_dir=None, resume=None, model_config: dict | None = None,
               step_callback=None, phases=None) -> FitResult:
    """Train ``net`` by minimising ``loss_fn`` over mini-batches of aligned rows.

    Parameters
    ----------
    net : torch.nn.Module
        Any module with trainable parameters; it is moved to ``config.device``.
    loss_fn : callable(net, batch, step, epoch) -> (Tensor, dict)
        ``batch`` is ``{modality: Tensor (b, ...)}`` on the training device (float arrays as
        float32); ``step`` (optimiser steps done) and ``epoch`` count from 0.  Returns the
        loss, a 0-d tensor to minimise, and logs ``{name: float}`` (not named
        :data:`RESERVED_LOGS`).  Called in train mode; random draws should come from torch's
        generator, whose state checkpoints keep.
    train : dict of str to ndarray or Tensor, each (N, ...)
        Aligned training rows per modality (N >= 1).
    config : FitConfig, optional
    val : dict of str to ndarray or Tensor, each (N_val, ...), optional
        Validation rows, handed to ``val_fn`` as tensors on the training device.
    val_fn : callable(net, val) -> dict
        Needed with ``val``: returns at least ``"val_loss"`` (lower is better), called at the
        end of each epoch in eval mode under ``torch.no_grad``; the lowest ``val_loss`` picks
        the weights kept (``restore_best``) and drives ``patience``.
    run_dir : path, optional
        Where checkpoints, ``metrics.csv`` and TensorBoard logs go.  A new run (no
        ``resume``) first removes an earlier run's checkpoints there.
    resume : path, optional
        A run folder (its newest checkpoint) or a checkpoint folder to continue from.
    model_config : dict, optional
        JSON-able description of ``net``.  A checkpoint is resumed only when this, the training
        settings (all but those that do not change the weights, such as ``progress``) and the
        training data are those it was written with.
    step_callback : callable(step, loss), optional
        Called after every optimiser step with the steps done and the loss (float).
    phases : list of Phase, optional
        Further steps on each batch after ``loss_fn``'s, in order, each with an AdamW of its
        own over some submodules (:class:`~jointspace.train.phases.Phase`, e.g. the
        discriminator and then the encoders of an adversarial autoencoder); each phase's loss
        is logged under its name.  ``step`` still counts batches.

    Returns
    -------
    FitResult
        ``net`` is left in eval mode, with the best weights when validating and ``restore_best``.

    Raises
    ------
    InputError
        Bad settings or data (mismatched row counts), a foreign checkpoint.
    TrainingDiverged
        The loss or the gradient norm became NaN or infinite.
    """
    cfg = (config if config is not None else FitConfig())
    if not isinstance(cfg, FitConfig):
        raise InputError(f"config: expected a FitConfig, got {type(cfg).__name__}")
    cfg.validate()
    if not isinstance(net, torch.nn.Module):
        raise InputError(f"net: expected a torch.nn.Module, got {type(net).__name__}")
    if not callable(loss_fn):
        raise InputError(f"loss_fn: expected a callable (net, batch, step, epoch) -> (loss, logs), got {loss_fn!r}")
    phases = check_phases(phases, RESERVED_LOGS)
    for ph in phases:   # the phase's own rate, lr x lr_scale
        check_lr(cfg.lr * ph.lr_scale, f"phases: phase {ph.name!r} lr x lr_scale")
    data = _check_data(train, "train")
    n = _rows(data, "train")
    if (val is None) != (val_fn is None):
        raise InputError("val, val_fn: give both (validation rows and the function scoring them) or neither")
    device = resolve_device(cfg.device)
    val_t = None
    if val is not None:
        val_t = to_device(_check_data(val, "val"), device)
        _rows(val_t, "val")
    elif cfg.patience is not None:
        warn_no_early_stopping(cfg.epochs)

    batch = min(cfg.batch_size, n)
    # the last incomplete batch is kept when it has min_batch rows (not a lone row by default:
    # BatchNorm cannot train on it)
    steps_per_epoch = n // batch + (n % batch >= cfg.min_batch)
    total = cfg.epochs * steps_per_epoch
    warmup = resolve_warmup(cfg.warmup, total)
    run_config = None
    if run_dir is not None or resume is not None:
        run_config = {**(model_config if model_config is not None else {}),
                      **{f"train.{k}": v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_MAY_CHANGE},
                      **{f"data.{k}": v for k, v in data_fingerprint(data).items()}}

    torch.manual_seed(cfg.seed)
    net.to(device)
    opt = make_optimizer(net, cfg.lr, cfg.weight_decay)
    params = [p for g in opt.param_groups for p in g["params"]]
    phase_opts = []
    for ph in phases:
        popt = make_optimizer(ph.parameters(net), cfg.lr, cfg.weight_decay)
        for g in popt.param_groups:
            g["lr_scale"] = float(ph.lr_scale)
        phase_opts.append((ph, popt, [p for g in popt.param_groups for p in g["params"]]))
    saved_opt = OptimizerSet([opt] + [popt for _, popt, _ in phase_opts]) if phases else opt
    state = {"epoch_done": 0, "best_metric": None, "best_epoch": None, "bad_epochs": 0, "stopped": False,
             "history": [], "epoch_sums": {}, "epoch_rows": 0}
    best_weights = None
    step = 0
    last_good = None
    with hold_run_dir(run_dir):   # one training at a time in a run folder
        if resume is not None:
            loaded = load_checkpoint(resume, net, saved_opt, run_config)
            step = loaded["step"]
            last_good = loaded["path"]
            state.update({k: loaded[k] for k in state if k in loaded})
            if loaded["extra"]:
                best_weights = {k[len("best."):]: v.to(device) for k, v in loaded["extra"].items()
                                if k.startswith("best.")}
        lr_of = warmup_cosine(cfg.lr, warmup, total, cfg.min_lr)
        sched = make_scheduler(opt, lr_of, start_step=step)
        phase_scheds = [make_scheduler(popt, lr_of, start_step=step) for _, popt, _ in phase_opts]
        # a new run: an earlier run's checkpoints would be resumed by mistake, so they are set
        # aside until this run writes its own (and put back if it fails before that)
        earlier = EarlierRun(run_dir) if resume is None and run_dir is not None else None
        log = MetricsLog(run_dir, tensorboard=cfg.tensorboard, resume_step=step if resume is not None else None)
        bar = ProgressBar(total, cfg.progress, start=step, unit="samples")
        net.train()
        t_start, seen = time.perf_counter(), 0

        def end_epoch(epoch: int) -> None:
            nonlocal best_weights
            rows = max(state["epoch_rows"], 1)
            row = {"step": step, "epoch": epoch, **{k: v / rows for k, v in state["epoch_sums"].items()}}
            state.update(epoch_done=epoch + 1, epoch_sums={}, epoch_rows=0)
            if val_t is not None:
                net.eval()
                with torch.no_grad():
                    metrics = val_fn(net, val_t)
                net.train()
                if not isinstance(metrics, dict) or "val_loss" not in metrics:
                    raise InputError(f"val_fn: expected a dict with at least 'val_loss', got {metrics!r}")
                metrics = {k: float(v) for k, v in metrics.items()}
                log.log({"step": step, "epoch": epoch, **metrics})
                row.update(metrics)
                value, best = metrics["val_loss"], state["best_metric"]
                if math.isfinite(value) and (best is None or value < best):
                    state.update(best_metric=value, best_epoch=epoch, bad_epochs=0)
                    best_weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    state["bad_epochs"] += 1
                    if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                        state["stopped"] = True
            state["history"].append(row)

        def checkpoint() -> None:
            nonlocal last_good
            if run_dir is not None:
                extra = {f"best.{k}": v for k, v in (best_weights or {}).items()}
                last_good = save_checkpoint(run_dir, step, net, saved_opt, state, run_config,
                                            keep=cfg.keep_checkpoints, extra=extra)

        try:
            while step < total and not state["stopped"]:
                epoch, offset = divmod(step, steps_per_epoch)
                order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
                for b in range(offset, steps_per_epoch):
                    idx = order[b * batch:(b + 1) * batch]
                    mb = {m: to_device(take_rows(v, idx), device) for m, v in data.items()}
                    lr = lr_of(step)   # what the scheduler set for this step
                    opt.zero_grad(set_to_none=True)
                    loss, logs, grad_norm = _take_step(net, loss_fn, mb, step, epoch, opt, params, cfg, run_dir,
                                                       last_good, "")
                    sched.step()
                    for (ph, popt, pparams), psched in zip(phase_opts, phase_scheds):
                        net.zero_grad(set_to_none=True)
                        ph_loss, ph_logs, _ = _take_step(net, ph.loss_fn, mb, step, epoch, popt, pparams, cfg,
                                                         run_dir, last_good, ph.name)
                        psched.step()
                        clash = sorted(set(logs) & (set(ph_logs) | {ph.name}))
                        if clash:   # one value would replace the other in the logs without a word
                            raise InputError(f"phases: phase {ph.name!r} logs {', '.join(clash)}, which the loss "
                                             f"or an earlier phase logs too; name them apart")
                        logs = {**logs, **ph_logs, ph.name: ph_loss}
                    step += 1
                    seen += len(idx)
                    sums = state["epoch_sums"]
                    for k, v in {"loss": loss, **logs}.items():
                        sums[k] = sums.get(k, 0.0) + v * len(idx)
                    state["epoch_rows"] += len(idx)
                    rate = seen / max(time.perf_counter() - t_start, 1e-9)
                    bar.update(step, loss, None, rate,
                               "" if state["best_metric"] is None else f"  best val_loss {state['best_metric']:.4f}")
                    if step % cfg.log_every == 0 or step == total:
                        log.log({"step": step, "epoch": epoch, "loss": loss, **logs, "lr": lr, "grad_norm": grad_norm,
                                 "samples_per_s": rate})
                    if step_callback is not None:
                        step_callback(step, loss)
                    epoch_end = b == steps_per_epoch - 1
                    if epoch_end:
                        end_epoch(epoch)
                    if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or \
                            (epoch_end and not cfg.checkpoint_every) or step == total or state["stopped"]:
                        checkpoint()
                    if state["stopped"]:
                        break
        finally:
            bar.close()
            log.close()
            if earlier is not None:
                earlier.settle()
    if best_weights is not None and cfg.restore_best:
        net.load_state_dict(best_weights)
    net.eval()
    return FitResult(steps=step, epochs_run=state["epoch_done"], best_metric=state["best_metric"],
                     best_epoch=state["best_epoch"], stopped_early=bool(state["stopped"]),
                     history=list(state["history"]), samples_per_s=seen / max(time.perf_counter() - t_start, 1e-9))


__all__ = ["FitConfig", "FitResult", "TrainingDiverged", "fit_module", "RESERVED_LOGS"]
