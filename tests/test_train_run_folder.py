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


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x)


def _mse(net, batch, step, epoch):
    return torch.nn.functional.mse_loss(net(batch["x"]), batch["y"]), {}


def _data():
    x = torch.arange(48, dtype=torch.float32).reshape(16, 3) / 48
    return {"x": x, "y": x.sum(1, keepdim=True)}


def test_a_second_training_in_a_run_folder_in_use_is_refused(tmp_path):
    from jointspace.train import FitConfig, fit_module

    config = FitConfig(epochs=2, batch_size=4, progress=False)
    refused = []

    def second_run(step, loss):   # while the first run trains, after its first checkpoint
        if step == 5:
            with pytest.raises(InputError, match="run_dir: .*another process is training") as info:
                fit_module(_Linear(), _mse, _data(), config, run_dir=tmp_path)
            refused.append(str(info.value))

    fit_module(_Linear(), _mse, _data(), config, run_dir=tmp_path, step_callback=second_run)
    assert refused and str(tmp_path) in refused[0]
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000004", "step-00000008"]
    assert not (tmp_path / EARLIER_RUN).exists()
    fit_module(_Linear(), _mse, _data(), config, run_dir=tmp_path, resume=str(tmp_path))   # the lock is let go


def test_a_resume_from_a_missing_run_folder_leaves_no_folder_behind(tmp_path):
    from jointspace.train import FitConfig, fit_module

    with pytest.raises(InputError, match="holds no checkpoint"):
        fit_module(_Linear(), _mse, _data(), FitConfig(epochs=1, batch_size=4, progress=False),
                   run_dir=tmp_path / "typo", resume=str(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()


def test_a_process_killed_while_putting_the_earlier_run_back_is_finished_by_the_next(tmp_path, monkeypatch):
    import jointspace.train.checkpoint as checkpoint

    _earlier_run(tmp_path)
    _new_run_killed(tmp_path)
    (tmp_path / "metrics.csv").write_text("step,loss\n1,9.0\n")   # what the killed run logged
    real, moves = os.replace, []

    def killed_after_one(src, dst):   # the settling process dies after its first move back
        if moves:
            raise KeyboardInterrupt
        moves.append(dst)
        return real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        EarlierRun.settle_left_over(tmp_path)
    monkeypatch.setattr(checkpoint.os, "replace", real)
    EarlierRun.settle_left_over(tmp_path)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000004"]
    assert (tmp_path / "metrics.csv").read_text() == "step,loss\n4,0.5\n"   # the earlier run's, with its checkpoint
    assert not (tmp_path / EARLIER_RUN).exists()


def test_a_checkpoint_half_deleted_by_an_interrupted_prune_goes_with_the_next_save(tmp_path, monkeypatch):
    import shutil

    import jointspace.train.checkpoint as checkpoint

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    save_checkpoint(tmp_path, 4, net, opt, {}, CONFIG, keep=1)
    real = shutil.rmtree

    def interrupted(path, *args, **kwargs):   # Ctrl-C while the old checkpoint is deleted
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 8, net, opt, {}, CONFIG, keep=1)
    monkeypatch.setattr(checkpoint.shutil, "rmtree", real)
    assert (tmp_path / "checkpoints" / ".step-00000004.old").is_dir()
    save_checkpoint(tmp_path, 12, net, opt, {}, CONFIG, keep=1)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000012"]
