"""What a training run reports: validation Recall@K, metrics to CSV / TensorBoard, a progress bar."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_text
from .._progress import Bar
from ..eval.metrics import RECALL_AVERAGES as AVERAGES
from ..eval.metrics import top_k_recall
from .device import to_device

#: names of what the metrics log writes into a run folder
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
REPORT_FILE = "report.json"
GENERATIONS_FILE = "generations.png"


@torch.no_grad()
def evaluate_recall(net, val: dict, k: int = 10, keys=None, batch_size: int = 2048, average: str = "query") -> dict:
    """Validation Recall@K in both directions between the first two modalities, by cosine.

    Ranks as the reports do (:func:`jointspace.eval.metrics.top_k_recall`, pessimistic ties),
    so the epoch kept is the one the evaluation would choose.

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``{modality: Tensor}`` to L2-normalised features.
    val : dict of str to array, each (n, ...)
    k : int
    keys : ndarray, shape (n,), optional
        Relevance keys (e.g. normalised titles): sample j is relevant to query i when
        ``keys[j] == keys[i]``; default: each query's own partner only.
    average : {"query", "group"}
        See :func:`jointspace.eval.metrics.top_k_recall`; with ``keys`` None the two agree.

    Returns
    -------
    dict with ``"a->b/R@k"``, ``"b->a/R@k"`` (named by modality) and ``"val_recall"`` (their mean).
    """
    was_training = net.training
    net.eval()
    names = list(val)[:2]
    n = len(next(iter(val.values())))
    device = next(net.parameters()).device
    emb = {m: [] for m in names}
    for s in range(0, n, batch_size):
        out = net({m: to_device(val[m][s:s + batch_size], device) for m in names})
        for m in names:
            emb[m].append(out[m].float().cpu().numpy())
    emb = {m: np.concatenate(v) for m, v in emb.items()}
    net.train(was_training)
    a, b = names
    keys = np.arange(n) if keys is None else keys
    r_ab = top_k_recall(emb[a], emb[b], keys, keys, k, average=average)
    r_ba = top_k_recall(emb[b], emb[a], keys, keys, k, average=average)
    return {f"{a}->{b}/R@{k}": r_ab, f"{b}->{a}/R@{k}": r_ba, "val_recall": 0.5 * (r_ab + r_ba)}


class MetricsLog:
    """Append rows of metrics to ``metrics.csv`` (and TensorBoard when installed and asked for).

    On resume, rows logged after the resumed step are dropped first, so the file reads as if
    the run had never stopped.
    """

    def __init__(self, run_dir, tensorboard: bool = False, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_FILE if run_dir is not None else None
        self.rows: list[dict] = []
        if self.path is not None and resume_step is not None and self.path.exists():
            with open(self.path, newline="") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(float(r.get("step", 0))) <= resume_step]
            self._rewrite()
        elif self.path is not None and resume_step is None:
            # a new run: the previous run's rows and TensorBoard events would mix with its own
            self.path.unlink(missing_ok=True)
            shutil.rmtree(Path(run_dir) / TENSORBOARD_DIR, ignore_errors=True)
        self.tb = None
        if tensorboard and self.path is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # on resume, events logged after the resumed step are dropped (as the CSV rows)
                purge = None if resume_step is None else resume_step + 1
                self.tb = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge)
            except Exception:  # tensorboard not installed: CSV only
                self.tb = None

    def _rewrite(self) -> None:
        if self.path is None:
            return
        cols: list[str] = []
        for r in self.rows:
            cols += [c for c in r if c not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def log(self, row: dict) -> None:
        row = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in row.items()}
        self.rows.append(row)
        self._rewrite()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, int(row["step"]))
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class ProgressBar:
    """Training's line of the package's progress bar (:class:`jointspace._progress.Bar`): the
    steps, the loss, tau (contrastive runs) and the throughput.

    Drawn as every bar of the package is: never when ``enabled`` is False or
    ``JOINTSPACE_PROGRESS=0``, always with ``JOINTSPACE_PROGRESS=1``, else only when stderr is
    a terminal (piped or captured stderr gets nothing from it).

    Parameters
    ----------
    total : int
        Optimiser steps of the whole run.
    enabled : bool
    start : int
        Steps already done (a resumed run).
    unit : str
        What the throughput counts ("pairs" for contrastive runs, "samples" otherwise).
    """

    def __init__(self, total: int, enabled: bool, start: int = 0, unit: str = "pairs"):
        self.unit = unit
        self.bar = Bar("train", total, enabled=bool(enabled), completed=start, info=True)
        self.enabled = self.bar.drawn

    def update(self, step: int, loss: float, tau: float | None = None, rate: float = 0.0, extra: str = "") -> None:
        """Show ``step`` done, the latest ``loss``, ``tau`` (omitted when None) and ``rate``
        (units per second)."""
        if self.enabled:
            shown_tau = "" if tau is None else f"  tau {tau:.4f}"
            self.bar.update(step, f"loss {loss:.4f}{shown_tau}  {rate:,.0f} {self.unit}/s{extra}")

    def close(self) -> None:
        self.bar.close()
