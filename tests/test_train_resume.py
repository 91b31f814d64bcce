"""Checkpoints: exact resume after SIGKILL, truncated checkpoints, foreign configs."""

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jointspace.errors import InputError, JointspaceError
from jointspace.train.checkpoint import checkpoint_dirs, load_checkpoint

torch.set_num_threads(1)

SCRIPT = Path(__file__).parent / "_contrastive" / "resume_run.py"
SRC = Path(__file__).resolve().parents[1] / "src"


def _run_inprocess(run_dir, resume=None):
    return runpy.run_path(str(SCRIPT))["main"](str(run_dir), resume)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    ref_dir = tmp_path / "ref"
    _run_inprocess(ref_dir)
    ref = load_file(str(ref_dir / "final.safetensors"))

    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "", "0.25"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not checkpoint_dirs(run) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "final.safetensors").exists()
    last = checkpoint_dirs(run)[-1]
    step = int(last.name.split("-")[1])
    assert 0 < step < 24 and step % 4 != 0  # killed before the end, checkpoint taken mid-epoch
    _run_inprocess(run, resume=str(run))
    got = load_file(str(run / "final.safetensors"))
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6, msg=f"parameter {k} differs")
    # The metrics file reads as one uninterrupted run: each logged step appears once.
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    ref_steps = [line.split(",")[0] for line in (ref_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ref_steps


def test_truncated_checkpoint_is_refused_and_previous_kept(tmp_path):
    _run_inprocess(tmp_path, None)
    dirs = checkpoint_dirs(tmp_path)
    assert len(dirs) == 2  # keep_checkpoints=2: the newest two remain
    newest, previous = dirs[-1], dirs[-2]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])
    from jointspace.models.dual_encoder import DualEncoderNet
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8, dropout=0.2)
    with pytest.raises(JointspaceError, match=r"truncated or corrupt.*model\.safetensors.*previous checkpoint.*intact"):
        load_checkpoint(tmp_path, net, None, {"net": "tiny"})
    assert previous.is_dir() and newest.is_dir()
    state = load_checkpoint(previous, net, None, {"net": "tiny"})
    assert state["step"] == int(previous.name.split("-")[1])
    (newest / "trainer.json").write_text("{not json")
    with pytest.raises(JointspaceError, match="trainer.json unreadable"):
        load_checkpoint(newest, net, None, {"net": "tiny"})


def test_checkpoint_from_another_model_config_is_refused(tmp_path):
    _run_inprocess(tmp_path, None)
    from jointspace.models.dual_encoder import DualEncoderNet
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8)
    with pytest.raises(InputError, match=r"different model configuration \(net: checkpoint 'tiny' vs model 'wide'\)"):
        load_checkpoint(tmp_path, net, None, {"net": "wide"})
    with pytest.raises(InputError, match="holds no checkpoint"):
        load_checkpoint(tmp_path / "nothing-here", net, None, {"net": "tiny"})
