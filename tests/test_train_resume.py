"""Checkpoints: exact resume after SIGKILL, truncated checkpoints, foreign configs."""

import os
import re
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
        load_checkpoint(tmp_path, net, None, _saved_config(previous))
    assert previous.is_dir() and newest.is_dir()
    state = load_checkpoint(previous, net, None, _saved_config(previous))
    assert state["step"] == int(previous.name.split("-")[1])
    (newest / "trainer.json").write_text("{not json")
    with pytest.raises(JointspaceError, match="trainer.json unreadable"):
        load_checkpoint(newest, net, None, _saved_config(previous))


def test_checkpoint_from_another_model_config_is_refused(tmp_path):
    _run_inprocess(tmp_path, None)
    from jointspace.models.dual_encoder import DualEncoderNet
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8)
    saved = _saved_config(checkpoint_dirs(tmp_path)[-1])
    with pytest.raises(InputError, match=r"different run configuration .*\(net: checkpoint 'tiny' vs now 'wide'\)"):
        load_checkpoint(tmp_path, net, None, {**saved, "net": "wide"})
    with pytest.raises(InputError, match="holds no checkpoint"):
        load_checkpoint(tmp_path / "nothing-here", net, None, saved)


def _saved_config(checkpoint) -> dict:
    """The run configuration a checkpoint recorded (network, training settings, data)."""
    import json

    return json.loads((checkpoint / "trainer.json").read_text())["model_config"]


def test_resume_refuses_other_training_settings_or_data(tmp_path):
    # The network alone is not enough: another batch size, rate or epoch count gives another
    # schedule and shuffle order, other data other gradients; either way no exact continuation.
    import numpy as np

    from jointspace.models.dual_encoder import DualEncoderNet
    from jointspace.train import TrainConfig, fit_dual_encoder

    _run_inprocess(tmp_path, None)
    data = runpy.run_path(str(SCRIPT))["data"]
    train, val = data()
    base = dict(epochs=6, batch_size=16, lr=2e-2, warmup=2, checkpoint_every=3, seed=0)

    def resume(cfg, train=train):
        net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8, dropout=0.2)
        return fit_dual_encoder(net, train, TrainConfig(**cfg), val=val, run_dir=tmp_path, resume=str(tmp_path),
                                model_config={"net": "tiny"})

    for change, field in (({"batch_size": 32}, "train.batch_size"), ({"lr": 0.5}, "train.lr"),
                          ({"epochs": 8}, "train.epochs"), ({"seed": 7}, "train.seed")):
        with pytest.raises(InputError, match=rf"different run configuration .*{field}: checkpoint"):
            resume({**base, **change})
    other = {"a": train["a"] + np.float32(0.01), "b": train["b"]}
    with pytest.raises(InputError, match=r"data\.a: checkpoint '64 rows, sha256 [0-9a-f]{16}' vs now '64 rows"):
        resume(base, other)
    resume({**base, "progress": False, "keep_checkpoints": 3})   # settings that do not change the weights


def test_a_new_run_clears_the_checkpoints_of_an_earlier_one(tmp_path):
    runpy.run_path(str(SCRIPT))["main"](str(tmp_path), None, 0.0, 6)      # 4 steps an epoch: up to step 24
    assert int(checkpoint_dirs(tmp_path)[-1].name.split("-")[1]) == 24
    runpy.run_path(str(SCRIPT))["main"](str(tmp_path), None, 0.0, 1)      # a new, shorter run in the same folder
    steps = [int(d.name.split("-")[1]) for d in checkpoint_dirs(tmp_path)]
    assert steps and max(steps) <= 4           # its own checkpoints, not the earlier run's step 24
    runpy.run_path(str(SCRIPT))["main"](str(tmp_path), str(tmp_path), 0.0, 1)   # and it resumes as itself


@pytest.mark.parametrize("edit, needle", [
    (lambda meta: [1], "is a JSON list, expected an object"),
    (lambda meta: {k: v for k, v in meta.items() if k != "step"}, "field 'step': expected an integer >= 0, got None"),
    (lambda meta: {k: v for k, v in meta.items() if k != "sha256"}, "field 'sha256': expected an object"),
    (lambda meta: {**meta, "sha256": {k: v for k, v in meta["sha256"].items() if k != "model.safetensors"}},
     "field 'sha256' lists no model.safetensors"),
    (lambda meta: {**meta, "optimizer_groups": None}, "field 'optimizer_groups': expected a list"),
    (lambda meta: {**meta, "model_config": [1]}, "field 'model_config': expected an object")])
def test_a_malformed_trainer_json_is_refused_with_the_field(tmp_path, edit, needle):
    import json

    from jointspace.models.dual_encoder import DualEncoderNet

    _run_inprocess(tmp_path, None)
    previous, newest = checkpoint_dirs(tmp_path)[-2:]
    saved = _saved_config(newest)
    meta_path = newest / "trainer.json"
    meta_path.write_text(json.dumps(edit(json.loads(meta_path.read_text()))))
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8, dropout=0.2)
    with pytest.raises(JointspaceError, match=rf"is corrupt: trainer\.json {re.escape(needle)}.*previous checkpoint"):
        load_checkpoint(tmp_path, net, None, saved)
    assert newest.is_dir() and previous.is_dir()


def test_a_new_run_that_fails_before_its_first_checkpoint_keeps_the_earlier_one(tmp_path):
    runpy.run_path(str(SCRIPT))["main"](str(tmp_path), None, 0.0, 6)
    before = [d.name for d in checkpoint_dirs(tmp_path)]
    metrics = (tmp_path / "metrics.csv").read_text()

    def stop(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    from jointspace.models.dual_encoder import DualEncoderNet
    from jointspace.train import TrainConfig, fit_dual_encoder

    data, _ = runpy.run_path(str(SCRIPT))["data"]()
    net = DualEncoderNet({"a": 6, "b": 5}, dim=4, head="mlp", hidden=8, dropout=0.2)
    with pytest.raises(KeyboardInterrupt):
        fit_dual_encoder(net, data, TrainConfig(epochs=2, batch_size=16, checkpoint_every=3), run_dir=tmp_path,
                         step_callback=stop)
    assert [d.name for d in checkpoint_dirs(tmp_path)] == before and before[-1] == "step-00000024"
    assert (tmp_path / "metrics.csv").read_text() == metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "final.safetensors", "metrics.csv"]
