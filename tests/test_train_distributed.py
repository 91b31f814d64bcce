"""Two processes (gloo) see the global batch: same loss, gradients and weights as one process."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

torch.set_num_threads(1)

WORKER = Path(__file__).parent / "_contrastive" / "dist_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"


def test_two_processes_match_one_process_on_the_global_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), "2", str(tmp_path / "init"), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode()
    two = load_file(str(tmp_path / "rank0_of_2.safetensors"))
    runpy.run_path(str(WORKER))["step_and_fit"](str(tmp_path))  # one process, no process group
    one = load_file(str(tmp_path / "rank0_of_1.safetensors"))
    assert set(one) == set(two)
    _same_step(two, one, "", "")
    for k in (k for k in one if k.startswith("final.")):
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=f"{k} differs after training")
    # label-aware loss (same titles on both ranks) and three modalities with missing ones
    for name in ("supervised", "masked"):
        _same_step(two, one, name, name)
    # gradient accumulation across processes (2 micro-batches on each of 2 ranks) matches one
    # process over the whole batch without accumulation, for each loss
    _same_step(two, one, "accum.clip", "")
    for name in ("supervised", "masked"):
        _same_step(two, one, f"accum.{name}", name)
        _same_step(one, one, f"accum.{name}", name)


def _same_step(run, ref, name, ref_name):
    """Loss and every gradient of step ``name`` in ``run`` equal those of ``ref_name`` in ``ref``."""
    pre, ref_pre = (f"{name}." if name else ""), (f"{ref_name}." if ref_name else "")
    torch.testing.assert_close(run[f"{pre}loss"], ref[f"{ref_pre}loss"], rtol=1e-6, atol=1e-6)
    grads = [k[len(ref_pre) + 5:] for k in ref if k.startswith(f"{ref_pre}grad.")]
    assert "log_scale" in grads and len(grads) >= 5
    assert {k[len(pre) + 5:] for k in run if k.startswith(f"{pre}grad.")} == set(grads)
    for k in grads:  # sums in another order: round-off relative to the tensor's largest entry
        want = ref[f"{ref_pre}grad.{k}"]
        torch.testing.assert_close(run[f"{pre}grad.{k}"], want, rtol=1e-5, atol=1e-6 * float(want.abs().max()),
                                   msg=f"{pre}grad.{k} differs")


def test_torchrun_fit_equals_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m jointspace fit ... --model clip`` trains one model
    across both processes (rank 0 writes it) and matches a single-process fit; here a seed
    ensemble of 2, each member trained with 2 accumulation micro-batches per process."""
    import numpy as np

    import jointspace as js

    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    args = ["fit", "wikipedia", "--model", "clip", "--epochs", "2", "--batch-size", "64",
            "--param", "dim=16", "--param", "val_fraction=0", "--param", "progress=false",
            "--members", "2"]
    two = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "jointspace", *args,
                          "--param", "accum_steps=2", "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    one = subprocess.run([sys.executable, "-m", "jointspace", *args, "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    test = js.load_dataset("wikipedia")["test"]
    m1, m2 = js.load_model(tmp_path / "one"), js.load_model(tmp_path / "two")
    for m in ("image", "text"):
        np.testing.assert_allclose(m2.encode(m, test[m][:50]), m1.encode(m, test[m][:50]), atol=1e-4)
    assert m2.n_members == 2 and m2.members_[0].accum_steps == 2
    assert sorted(p.name for p in (tmp_path / "two.train").iterdir()) == ["member0", "member1"]
    assert not (tmp_path / "two" / "rank1").exists()


def test_torchrun_refuses_jobs_naming_the_option(tmp_path):
    """Under torchrun the members train across the processes; ``--jobs 2`` is refused as
    ``--jobs`` (the message named the library's ``n_jobs``)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "jointspace", "fit",
                           "wikipedia", "--model", "clip", "--epochs", "1", "--param", "dim=8", "--members", "2",
                           "--jobs", "2", "--out", str(tmp_path / "m")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert "error: --jobs: the members already train across the torchrun processes" in done.stderr, done.stderr
    assert "n_jobs" not in done.stderr and not (tmp_path / "m").exists()


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_local_losses_of_a_simulated_world_are_the_global_loss_in_float64(world_size):
    """Rank r's local loss (its rows against the gathered columns), averaged over the ranks,
    is the chapter's loss of the global batch, value and gradients, in float64 when the
    features are float64 (they were computed in float32)."""
    import numpy as np

    from jointspace.objectives.contrastive import clip_loss
    from jointspace.train.distributed import local_clip_loss

    g = torch.Generator().manual_seed(world_size)
    n_local, d = 2, 3
    big = world_size * n_local
    text = torch.randn(big, d, generator=g, dtype=torch.float64, requires_grad=True)
    image = torch.randn(big, d, generator=g, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(7.5, dtype=torch.float64, requires_grad=True)

    def world_mean(t, a, s):
        rows = [slice(r * n_local, (r + 1) * n_local) for r in range(world_size)]
        return sum(local_clip_loss(t[k], a[k], t, a, k.start, s) for k in rows) / world_size

    got = world_mean(text, image, scale)
    assert got.dtype == torch.float64
    c = 7.5 * text.detach().numpy() @ image.detach().numpy().T
    lse_r = np.log(np.exp(c).sum(1))
    lse_c = np.log(np.exp(c).sum(0))
    want = 0.5 * ((lse_r - np.diag(c)).mean() + (lse_c - np.diag(c)).mean())
    assert float(got.detach()) == pytest.approx(want, rel=1e-13, abs=0)
    grads = torch.autograd.grad(got, (text, image, scale))
    ref = torch.autograd.grad(clip_loss(text, image, scale, fused=False), (text, image, scale))
    for x, y in zip(grads, ref):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-13)
    assert torch.autograd.gradcheck(world_mean, (text, image, scale))
