"""A run folder shared by runs: an earlier run's records set aside by a new run that was killed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jointspace.errors import InputError
from jointspace.train.checkpoint import (EARLIER_RUN, EarlierRun, checkpoint_dirs, load_checkpoint,
                                         save_checkpoint)

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = {"net": "linear"}


def _earlier_run(run_dir):
    """A run folder holding one checkpoint (step 4) and its metrics."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    save_checkpoint(run_dir, 4, net, torch.optim.SGD(net.parameters(), lr=0.1), {"epoch_done": 1}, CONFIG)
    (Path(run_dir) / "metrics.csv").write_text("step,loss\n4,0.5\n")
    return net


def _new_run_killed(run_dir):
    """A new run in ``run_dir`` killed with SIGKILL before its first checkpoint."""
    code = ("import os, signal, sys; from jointspace.train.checkpoint import EarlierRun; "
            "r = EarlierRun(sys.argv[1]); os.kill(os.getpid(), signal.SIGKILL)")
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir)], env=env, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_resuming_after_a_new_run_was_killed_continues_the_earlier_run(tmp_path):
    saved = _earlier_run(tmp_path)
    _new_run_killed(tmp_path)
    assert (tmp_path / EARLIER_RUN).is_dir() and not checkpoint_dirs(tmp_path)
    net = torch.nn.Linear(3, 2)
    state = load_checkpoint(tmp_path, net, None, CONFIG)
    assert state["step"] == 4
    torch.testing.assert_close(net.weight, saved.weight, rtol=0, atol=0)
    assert not (tmp_path / EARLIER_RUN).exists()
    assert (tmp_path / "metrics.csv").read_text() == "step,loss\n4,0.5\n"


def test_resuming_leaves_the_records_a_live_new_run_set_aside(tmp_path):
    _earlier_run(tmp_path)
    live = EarlierRun(tmp_path)   # a new run at work, before its first checkpoint
    try:
        with pytest.raises(InputError, match="holds no checkpoint"):
            load_checkpoint(tmp_path, torch.nn.Linear(3, 2), None, CONFIG)
        assert (tmp_path / EARLIER_RUN / "checkpoints").is_dir() and not checkpoint_dirs(tmp_path)
    finally:
        live.settle()
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000004"]
