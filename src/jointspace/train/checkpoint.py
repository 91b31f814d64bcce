"""Training checkpoints: safetensors + JSON, written atomically, verified on load.

A run folder holds ``checkpoints/step-00000042/`` folders, each with::

    model.safetensors       the module's state_dict
    optimizer.safetensors   the optimiser's tensors (moments, step counts)
    rng.safetensors         the torch RNG state
    extra.safetensors       other tensors the trainer keeps (the best weights so far)
    trainer.json            step, epoch, early-stopping state, optimiser groups, the model
                            config it belongs to, and a SHA-256 of each file above

A folder appears under its final name only once complete (:func:`jointspace._io.atomic_dir`);
older checkpoints are removed only after a newer one is in place.  Loading checks every
digest, so a truncated or altered file is refused with a message and nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .._io import _held, _hold, atomic_dir, read_json_object
from ..errors import InputError, JointspaceError
from .monitor import GENERATIONS_FILE, METRICS_FILE, REPORT_FILE, TENSORBOARD_DIR

CHECKPOINTS = "checkpoints"
#: where :class:`EarlierRun` keeps an earlier run's records while a new run starts
EARLIER_RUN = ".earlier-run"
_STEP_RE = re.compile(r"^step-(\d+)$")
#: a checkpoint folder being deleted by :func:`save_checkpoint`
_PRUNED_RE = re.compile(r"^\.step-\d+\.old$")
FORMAT = 1


def _flatten_optimizer(opt: torch.optim.Optimizer):
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if not isinstance(val, torch.Tensor):
                val = torch.tensor(val)
            tensors[f"state.{idx}.{key}"] = val.detach().cpu().clone().contiguous()
    groups = json.loads(json.dumps(sd["param_groups"], default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
    return tensors, groups


def _unflatten_optimizer(tensors: dict, groups: list) -> dict:
    state: dict = {}
    for name, val in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = val
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checkpoint_dirs(run_dir) -> list[Path]:
    """The checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_checkpoint` (``trainer.json`` with a step)."""
    meta = read_json_object(Path(path) / "trainer.json")
    return meta is not None and "step" in meta


#: what a run folder holds: checkpoints, the metrics log, TensorBoard events, a generative
#: model's test report and grid of generations, an earlier run's records set aside while a new
#: run starts (and, for a seed ensemble, one such folder per member)
RUN_ENTRIES = frozenset({CHECKPOINTS, METRICS_FILE, TENSORBOARD_DIR, REPORT_FILE, GENERATIONS_FILE, EARLIER_RUN})


def is_run_dir(path) -> bool:
    """Whether ``path`` is a folder holding only what training writes into a run folder
    (:data:`RUN_ENTRIES`, or ``member<j>`` folders of those), so a new run may reuse it."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    for entry in path.iterdir():
        if entry.name in RUN_ENTRIES:
            continue
        if entry.name.startswith("member") and entry.name[6:].isdigit() and is_run_dir(entry):
            continue
        return False
    return True


class EarlierRun:
    """An earlier run's records in ``run_dir``, set aside while a new run starts there.

    Creating it moves ``checkpoints/``, ``metrics.csv`` and the TensorBoard events into the
    hidden folder :data:`EARLIER_RUN` (a new run must not resume, or log beside, an earlier
    run's records).  :meth:`settle`, called when the new run ends for any reason, removes them
    once the new run has written a checkpoint of its own, and otherwise puts them back in
    place of whatever the new run logged: a run that fails before its first checkpoint leaves
    the folder as it found it.  A set-aside folder left by a killed process is settled by the
    same rule before a new one is made, and before a run is resumed from the folder
    (:func:`resolve_checkpoint`).  The set-aside folder is locked while the run that made it
    lives, so only one whose run was killed is settled by another process.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (it need not exist yet).
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.aside = self.run_dir / EARLIER_RUN
        self._lock = None
        self.settle()
        present = [name for name in _MOVED if (self.run_dir / name).exists()]
        if present:
            self.aside.mkdir()
            self._lock = _hold(self.aside)
            for name in present:
                os.replace(self.run_dir / name, self.aside / name)

    def settle(self) -> None:
        """Remove the set-aside records if a checkpoint now exists, else put them back."""
        if self.aside.is_dir():
            _settle(self.run_dir, self.aside)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @staticmethod
    def settle_left_over(run_dir) -> None:
        """Settle the records that a new run in ``run_dir``, killed before it ended, left set
        aside; those of a run still at work (it holds their lock) are left alone."""
        aside = Path(run_dir) / EARLIER_RUN
        if aside.is_dir() and not aside.is_symlink() and not _held(aside):
            _settle(Path(run_dir), aside)


#: what :class:`EarlierRun` sets aside
_MOVED = (CHECKPOINTS, METRICS_FILE, TENSORBOARD_DIR)


def _settle(run_dir: Path, aside: Path) -> None:
    """Delete the earlier run's records set aside in ``aside`` if ``run_dir`` now holds a
    checkpoint, else put them back in place of what the new run logged."""
    if not checkpoint_dirs(run_dir):
        # the checkpoints last: a process killed half way leaves none back, so the next settles
        # the rest the same way instead of taking the earlier run as the one to keep
        for name in reversed(_MOVED):
            if (aside / name).exists():
                new = run_dir / name
                if new.is_dir():
                    shutil.rmtree(new)
                elif new.exists():
                    new.unlink()
                os.replace(aside / name, new)
    shutil.rmtree(aside)


@contextlib.contextmanager
def hold_run_dir(run_dir):
    """Hold the lock of the run folder ``run_dir`` (created if missing) while training runs in it.

    Two runs in one folder would set aside, prune and resume each other's checkpoints; the
    second is refused.  The lock goes with the process that holds it, killed or not.  A folder
    made here is removed again if it is still empty at the end (a resume that found no
    checkpoint).  Nothing is done when ``run_dir`` is None.

    Raises
    ------
    InputError
        Another live process holds the folder's lock.
    """
    if run_dir is None:
        yield
        return
    path = Path(run_dir)
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = _hold(path)
    try:
        if lock is None and _held(path):
            raise InputError(f"run_dir: expected a run folder no other training is using, got {str(path)!r}, where "
                             "another process is training now; wait for it to end or choose another run folder")
        yield
    finally:
        if lock is not None:
            os.close(lock)
        if made:
            with contextlib.suppress(OSError):   # not empty: the run wrote into it
                path.rmdir()


def save_checkpoint(run_dir, step: int, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict, model_config: dict, keep: int = 2, extra: dict | None = None) -> Path:
    """Write the checkpoint of ``step`` atomically and prune all but the newest ``keep``.

    ``extra`` (name -> tensor) is stored in ``extra.safetensors`` (e.g. the best weights so far).
    """
    model_bytes = st_save({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    extra_bytes = st_save({k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    opt_tensors, groups = _flatten_optimizer(optimizer)
    opt_bytes = st_save(opt_tensors)
    rng = {"torch": torch.get_rng_state()}
    device = next(module.parameters()).device
    if device.type == "cuda":  # dropout on a GPU draws from the GPU's generator
        rng["cuda"] = torch.cuda.get_rng_state(device)
    rng_bytes = st_save(rng)
    meta = {"format": FORMAT, "step": int(step), "model_config": model_config, "optimizer_groups": groups,
            "trainer": trainer_state,
            "sha256": {"model.safetensors": _digest(model_bytes), "optimizer.safetensors": _digest(opt_bytes),
                       "rng.safetensors": _digest(rng_bytes), "extra.safetensors": _digest(extra_bytes)}}
    path = Path(run_dir) / CHECKPOINTS / f"step-{int(step):08d}"
    with atomic_dir(path, "checkpoint", is_kind=is_checkpoint, arg="run_dir") as tmp:
        (tmp / "model.safetensors").write_bytes(model_bytes)
        (tmp / "optimizer.safetensors").write_bytes(opt_bytes)
        (tmp / "rng.safetensors").write_bytes(rng_bytes)
        (tmp / "extra.safetensors").write_bytes(extra_bytes)
        (tmp / "trainer.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
        # renamed out of the listing first: a process killed while deleting leaves no half
        # checkpoint under a checkpoint's name
        gone = old.with_name(f".{old.name}.old")
        os.replace(old, gone)
        shutil.rmtree(gone, ignore_errors=True)
    for left in path.parent.glob(".step-*.old"):   # what a process stopped while deleting left behind
        if _PRUNED_RE.match(left.name) and left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
    return path


def resume_note(run_dir, last_good) -> str:
    """What a run that stopped on an error leaves to resume from, for its message."""
    if run_dir is None:
        return "no checkpoint was written (no run_dir)"
    if last_good is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint {str(last_good)!r} is left as it was (resume from it)"


def resolve_checkpoint(path) -> Path:
    """A checkpoint folder from a run folder (its newest checkpoint) or a checkpoint folder.

    An earlier run's records that a new run killed before its first checkpoint left set aside
    are put back first (:meth:`EarlierRun.settle_left_over`), so they are what is resumed.
    """
    path = Path(path)
    run_dir = run_dir_of(path)
    if run_dir is not None and run_dir.is_dir():
        EarlierRun.settle_left_over(run_dir)
    if (path / "trainer.json").is_file() or _STEP_RE.match(path.name):
        return path
    dirs = checkpoint_dirs(path)
    if not dirs:
        raise InputError(f"resume: {str(path)!r} holds no checkpoint (expected a run folder with "
                         f"{CHECKPOINTS}/step-*/ or a checkpoint folder)")
    return dirs[-1]


def run_dir_of(path) -> Path | None:
    """The run folder of a ``resume`` path, so that a resumed run writes its checkpoints and
    ``metrics.csv`` beside those it continues, never inside a checkpoint: a checkpoint folder's
    run (the folder holding its ``checkpoints/``), None for a checkpoint folder outside one (a
    copy: the run needs a folder of its own), else ``path`` itself (a run folder)."""
    path = Path(path)
    if (path / "trainer.json").is_file() or _STEP_RE.match(path.name):
        return path.parent.parent if path.parent.name == CHECKPOINTS else None
    return path


def _previous_hint(ckpt: Path) -> str:
    run = ckpt.parent.parent
    older = [p for p in checkpoint_dirs(run) if p != ckpt and p.name < ckpt.name]
    if older:
        return f"; the previous checkpoint {str(older[-1])!r} is intact and kept: resume from it explicitly"
    return ""


#: the files every checkpoint holds (``extra.safetensors`` may be absent)
_REQUIRED = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")


def _meta_problem(meta) -> str | None:
    """What is wrong with the fields of a checkpoint's ``trainer.json`` (None: nothing)."""
    if not isinstance(meta, dict):
        return f"is a JSON {type(meta).__name__}, expected an object"
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"field 'step': expected an integer >= 0, got {step!r}"
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        return "field 'sha256': expected an object of file name -> SHA-256"
    missing = [name for name in _REQUIRED if name not in digests]
    if missing:
        return f"field 'sha256' lists no {', '.join(missing)}"
    if not isinstance(meta.get("optimizer_groups"), list):
        return "field 'optimizer_groups': expected a list"
    for key in ("trainer", "model_config"):
        if not isinstance(meta.get(key) or {}, dict):
            return f"field {key!r}: expected an object"
    return None


def load_checkpoint(path, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    model_config: dict) -> dict:
    """Restore ``module`` (and ``optimizer``, and the torch RNG) from a checkpoint.

    Returns
    -------
    trainer_state : dict
        What the trainer stored (step, epoch, early-stopping state, ...), plus ``"step"``.

    Raises
    ------
    InputError
        Named ``resume``: a file is missing, truncated or altered (digest mismatch), or
        ``trainer.json`` lacks a field or holds one of the wrong type (nothing is deleted); or
        the checkpoint belongs to a different run configuration (network, settings, data).
    """
    ckpt = resolve_checkpoint(path)
    meta_path = ckpt / "trainer.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"resume: checkpoint {str(ckpt)!r} is incomplete or corrupt: trainer.json unreadable "
                         f"({exc}){_previous_hint(ckpt)}") from None
    problem = _meta_problem(meta)
    if problem:
        raise InputError(f"resume: checkpoint {str(ckpt)!r} is corrupt: trainer.json {problem}; refusing to load it"
                         f"{_previous_hint(ckpt)}")
    blobs = {}
    for name, digest in meta.get("sha256", {}).items():
        try:
            data = (ckpt / name).read_bytes()
        except OSError:
            raise InputError(f"resume: checkpoint {str(ckpt)!r} is incomplete: {name} is missing"
                             f"{_previous_hint(ckpt)}") from None
        if _digest(data) != digest:
            raise InputError(f"resume: checkpoint {str(ckpt)!r} is truncated or corrupt: {name} does not match its "
                             f"recorded SHA-256 ({len(data)} bytes read); refusing to load it"
                             f"{_previous_hint(ckpt)}")
        blobs[name] = data
    saved = meta.get("model_config")
    if saved != model_config:
        keys = sorted(k for k in set(saved or {}) | set(model_config) if (saved or {}).get(k) != model_config.get(k))
        diff = ", ".join(f"{k}: checkpoint {(saved or {}).get(k)!r} vs now {model_config.get(k)!r}" for k in keys)
        raise InputError(f"resume: checkpoint {str(ckpt)!r} was written by a different run configuration "
                         f"(network, training settings or data) and cannot be continued exactly ({diff})")
    state = st_load(blobs["model.safetensors"])
    module.load_state_dict(state, strict=True)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_unflatten_optimizer(st_load(blobs["optimizer.safetensors"]),
                                                           meta["optimizer_groups"]))
        except ValueError as exc:   # torch's: other parameter groups, or groups of other sizes
            raise InputError(f"resume: checkpoint {str(ckpt)!r} holds the state of a different optimiser "
                             f"({exc}) and cannot be continued exactly") from None
    rng = st_load(blobs["rng.safetensors"])
    torch.set_rng_state(rng["torch"])
    device = next(module.parameters()).device
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
    out = dict(meta.get("trainer", {}))
    out["step"] = int(meta["step"])
    out["path"] = str(ckpt)
    out["extra"] = st_load(blobs["extra.safetensors"]) if "extra.safetensors" in blobs else {}
    return out
