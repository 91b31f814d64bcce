"""The general training loop (fit_module): convergence, validation, exact resume, divergence."""

import csv
import json

import numpy as np
import pytest
import torch

from jointspace.errors import InputError, TrainingDiverged
from jointspace.train import FitConfig, fit_module
from jointspace.train.checkpoint import checkpoint_dirs, load_checkpoint

torch.set_num_threads(1)


class Linear(torch.nn.Module):
    def __init__(self, d_in=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(d_in, 1)

    def forward(self, x):
        return self.lin(x)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.7 + 0.1 * rng.normal(size=(n, 1))
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}


def mse_loss(net, batch, step, epoch):
    loss = torch.mean((net(batch["x"]) - batch["y"]) ** 2)
    return loss, {"mse": float(loss.detach())}


def noisy_loss(net, batch, step, epoch):
    # draws from torch's generator, as a VAE's reparameterisation does: resume must replay it
    x = batch["x"] + 0.1 * torch.randn_like(batch["x"])
    loss = torch.mean((net(x) - batch["y"]) ** 2)
    return loss, {"mse": float(loss.detach())}


def val_mse(net, val):
    return {"val_loss": float(torch.mean((net(val["x"]) - val["y"]) ** 2))}


def _saved_config(checkpoint) -> dict:
    return json.loads((checkpoint / "trainer.json").read_text())["model_config"]


def test_linear_regression_reaches_the_least_squares_solution():
    data = _data()
    design = np.hstack([data["x"], np.ones((40, 1), np.float32)]).astype(np.float64)
    coef = np.linalg.lstsq(design, data["y"].astype(np.float64), rcond=None)[0].ravel()
    # the numbers themselves, so a change of data generator shows up here first
    np.testing.assert_allclose(coef, [1.5232, -2.0222, 0.5127, 0.6830], atol=5e-4)
    net = Linear()
    result = fit_module(net, mse_loss, data, FitConfig(epochs=60, batch_size=10, lr=0.05))
    assert result.steps == 240 and result.epochs_run == 60 and not result.stopped_early
    got = np.r_[net.lin.weight.detach().numpy().ravel(), net.lin.bias.detach().numpy()]
    np.testing.assert_allclose(got, coef, atol=0.02)
    assert not net.training
    assert len(result.history) == 60 and result.best_epoch is None
    residual = np.mean((design @ coef - data["y"].ravel()) ** 2)
    assert result.history[-1]["loss"] == pytest.approx(residual, rel=0.2)
    assert result.history[-1]["mse"] == pytest.approx(result.history[-1]["loss"])
    assert result.history[0]["loss"] > 10 * result.history[-1]["loss"]


@pytest.mark.parametrize("n, batch_size, sizes, min_batch", [
    (23, 5, [5, 5, 5, 5, 3], 2),   # incomplete last batch kept
    (21, 5, [5, 5, 5, 5], 2),      # a lone row is dropped
    (3, 8, [3], 2), (1, 4, [1], 2), (3, 1, [1, 1, 1], 2),
    (23, 5, [5, 5, 5, 5], 4),      # a tail under min_batch is dropped
    (24, 5, [5, 5, 5, 5, 4], 4), (21, 5, [5, 5, 5, 5, 1], 1)])
def test_every_row_once_per_epoch_last_batch_kept(n, batch_size, sizes, min_batch):
    seen = []

    def loss_fn(net, batch, step, epoch):
        seen.append((epoch, batch["id"].numpy().astype(int).tolist()))
        return mse_loss(net, batch, step, epoch)

    data = {**_data(n), "id": np.arange(n, dtype=np.float32)}
    fit_module(Linear(), loss_fn, data, FitConfig(epochs=2, batch_size=batch_size, min_batch=min_batch))
    for e in (0, 1):
        batches = [ids for ep, ids in seen if ep == e]
        assert [len(b) for b in batches] == sizes
        rows = sorted(sum(batches, []))
        assert len(set(rows)) == len(rows) and len(rows) >= n - max(min_batch - 1, 1)
    assert seen[:len(sizes)] != seen[len(sizes):]   # each epoch has its own order


def test_validation_picks_the_best_epoch_and_stops_early():
    losses = iter([3.0, 2.0, 2.5, 1.5, 1.7, float("nan"), 1.9, 0.1])
    snapshots = []

    def val_fn(net, val):
        assert not net.training and not torch.is_grad_enabled()
        assert isinstance(val["x"], torch.Tensor) and val["x"].dtype == torch.float32
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return {"val_loss": next(losses), "val_other": 1.0}

    data = _data(20)
    net = Linear()
    result = fit_module(net, mse_loss, data, FitConfig(epochs=8, batch_size=10, lr=0.01, patience=3),
                        val=_data(6, seed=1), val_fn=val_fn)
    # epochs 4, 5 (NaN counts as no improvement) and 6 do not beat epoch 3: stop after epoch 6
    assert result.best_epoch == 3 and result.best_metric == 1.5
    assert result.stopped_early and result.epochs_run == 7 and result.steps == 14
    assert [r["val_loss"] for r in result.history][:5] == [3.0, 2.0, 2.5, 1.5, 1.7]
    assert result.history[3]["val_other"] == 1.0 and "loss" in result.history[3]
    for k, v in net.state_dict().items():
        assert torch.equal(v, snapshots[3][k])
    assert not net.training

    losses = iter([3.0, 2.0, 2.5])
    snapshots.clear()
    net = Linear()
    fit_module(net, mse_loss, data, FitConfig(epochs=3, batch_size=10, restore_best=False),
               val=_data(6, seed=1), val_fn=val_fn)
    assert not torch.equal(net.lin.weight, snapshots[1]["lin.weight"])   # last weights kept


def _resumable(run_dir, resume=None, callback=None):
    net = Linear(seed=3)
    cfg = FitConfig(epochs=4, batch_size=6, lr=0.05, warmup=0.2, grad_clip=1.0, checkpoint_every=2, log_every=1,
                    weight_decay=0.01, keep_checkpoints=3)
    result = fit_module(net, noisy_loss, _data(16), cfg, val=_data(6, seed=1), val_fn=val_mse, run_dir=run_dir,
                        resume=resume, model_config={"model": "linear", "d_in": 3}, step_callback=callback)
    return net, result


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    ref_net, ref = _resumable(tmp_path / "ref")

    class Stop(Exception):
        pass

    def stop_at_9(step, loss):
        if step == 9:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        _resumable(run, callback=stop_at_9)
    # 3 steps an epoch: the newest checkpoint is mid-epoch
    assert [p.name for p in checkpoint_dirs(run)] == ["step-00000004", "step-00000006", "step-00000008"]
    net, result = _resumable(run, resume=run)
    for k, v in ref_net.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    assert (result.steps, result.epochs_run) == (ref.steps, ref.epochs_run) == (12, 4)
    assert (result.best_epoch, result.best_metric) == (ref.best_epoch, ref.best_metric)
    assert result.history == ref.history
    with open(run / "metrics.csv") as fh, open(tmp_path / "ref" / "metrics.csv") as fr:
        rows, ref_rows = list(csv.DictReader(fh)), list(csv.DictReader(fr))
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    assert [r["mse"] for r in rows] == [r["mse"] for r in ref_rows]

    # a checkpoint continues only its own run: other data are refused
    with pytest.raises(InputError, match="different run configuration.*data.x"):
        fit_module(Linear(seed=3), noisy_loss, _data(16, seed=5),
                   FitConfig(epochs=4, batch_size=6, lr=0.05, warmup=0.2, grad_clip=1.0, checkpoint_every=2,
                             log_every=1, weight_decay=0.01, keep_checkpoints=3),
                   val=_data(6, seed=1), val_fn=val_mse, resume=run, model_config={"model": "linear", "d_in": 3})
    # a new run in the same folder replaces the old run's checkpoints
    fit_module(Linear(), mse_loss, _data(16), FitConfig(epochs=1, batch_size=16), run_dir=run)
    assert [p.name for p in checkpoint_dirs(run)] == ["step-00000001"]


def test_nan_loss_stops_before_stepping_and_keeps_the_last_checkpoint(tmp_path):
    def loss_fn(net, batch, step, epoch):
        loss, logs = mse_loss(net, batch, step, epoch)
        return (loss * float("nan"), logs) if step == 6 else (loss, logs)

    net = Linear()
    with pytest.raises(TrainingDiverged) as info:
        fit_module(net, loss_fn, _data(16), FitConfig(epochs=3, batch_size=4), run_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "loss became nan at step 6 (epoch 1)" in msg and "lower the learning rate" in msg
    assert "step-00000004" in msg and info.value.step == 6 and info.value.checkpoint.endswith("step-00000004")
    dirs = checkpoint_dirs(tmp_path)
    assert [p.name for p in dirs] == ["step-00000004"]     # nothing newer was written
    fresh = Linear(seed=9)
    state = load_checkpoint(dirs[0], fresh, None, _saved_config(dirs[0]))
    assert state["step"] == 4 and state["epoch_done"] == 1
    assert not torch.equal(fresh.lin.weight, Linear(seed=9).lin.weight)


def test_non_finite_gradient_stops_without_stepping():
    def loss_fn(net, batch, step, epoch):
        loss, logs = mse_loss(net, batch, step, epoch)
        if step == 2:   # finite loss, NaN gradient: d sqrt(u)/du is infinite at u = 0, times du/dw = 0
            loss = loss + torch.sqrt(net.lin.weight.sum() * 0.0)
        return loss, logs

    net = Linear()
    seen = []
    with pytest.raises(TrainingDiverged, match=r"gradient norm became nan at step 2 \(epoch 0\).*no checkpoint"):
        fit_module(net, loss_fn, _data(16), FitConfig(epochs=2, batch_size=4),
                   step_callback=lambda step, loss: seen.append({k: v.clone() for k, v in net.state_dict().items()}))
    assert len(seen) == 2 and torch.equal(net.lin.weight, seen[-1]["lin.weight"])
    assert torch.isfinite(net.lin.weight).all()


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("weight_decay", -1.0), ("min_lr", 0.5), ("warmup", 1.5),
    ("grad_clip", 0.0), ("seed", -1), ("patience", 0), ("restore_best", "yes"), ("device", "tpu"),
    ("checkpoint_every", -1), ("keep_checkpoints", -1), ("log_every", 0), ("min_batch", 0), ("progress", 1),
    ("tensorboard", None), ("epochs", 2.5), ("lr", 1e300)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(InputError, match=f"^{field}:"):
        FitConfig(**{field: value}).validate()
    with pytest.raises(InputError, match=f"^{field}:"):
        fit_module(Linear(), mse_loss, _data(4), FitConfig(**{field: value}))


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match=r"train: every modality needs the same number of rows.*'x': 10.*'y': 9"):
        fit_module(Linear(), mse_loss, {"x": _data(10)["x"], "y": _data(9)["y"]})
    with pytest.raises(InputError, match="train: expected at least 1 row"):
        fit_module(Linear(), mse_loss, {"x": np.zeros((0, 3), np.float32)})
    with pytest.raises(InputError, match="train: expected a dict"):
        fit_module(Linear(), mse_loss, np.zeros((4, 3)))
    with pytest.raises(InputError, match="val, val_fn"):
        fit_module(Linear(), mse_loss, _data(4), val=_data(4))
    with pytest.raises(InputError, match="loss_fn: expected"):
        fit_module(Linear(), lambda net, b, s, e: torch.zeros(()), _data(4))
    with pytest.raises(InputError, match="loss_fn: its logs may not be named lr"):
        fit_module(Linear(), lambda net, b, s, e: (mse_loss(net, b, s, e)[0], {"lr": 1.0}), _data(4))


def test_torch_tensors_progress_and_metrics(tmp_path):
    data = {k: torch.from_numpy(v).double() for k, v in _data(12).items()}   # float64 tensors train as float32
    result = fit_module(Linear(), mse_loss, data, FitConfig(epochs=2, batch_size=4, log_every=2, progress=True),
                        run_dir=tmp_path)
    assert result.steps == 6 and result.samples_per_s > 0
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["2", "4", "6"]
    assert {"loss", "mse", "lr", "grad_norm", "samples_per_s", "epoch"} <= set(rows[0])


@pytest.mark.parametrize("name, params", [("mvae-mopoe", {"val_fraction": 0.0}), ("clip", {"val_fraction": 0.0, "dim": 4}),
                                          ("clip", {"dim": 4})])
def test_patience_without_validation_pairs_is_said_once(name, params):
    """With val_fraction 0, or fewer than 20 pairs, nothing is held out: patience cannot stop anything."""
    import warnings

    import jointspace as js

    rng = np.random.default_rng(0)
    n = 12 if "val_fraction" not in params else 30
    pairs = js.Pairs({"image": rng.normal(size=(n, 5)).astype(np.float32),
                      "text": rng.normal(size=(n, 4)).astype(np.float32)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        js.create_model(name, patience=1, epochs=2, progress=False, **params).fit(pairs)
    said = [str(w.message) for w in caught if "patience" in str(w.message)]
    assert said == ["patience: early stopping watches validation pairs, and there are none (give val, or a "
                    "val_fraction > 0 with at least 20 pairs); all 2 epochs run"]


def test_fusion_default_patience_says_nothing_without_validation_pairs():
    import warnings

    import jointspace as js
    from jointspace.models.fusion import FusionClassifier

    rng = np.random.default_rng(0)
    pairs = js.Pairs({"image": rng.normal(size=(40, 3)).astype(np.float32),
                      "text": rng.normal(size=(40, 2)).astype(np.float32)}, labels=np.arange(40) % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FusionClassifier("attention", val_fraction=0.0, epochs=2).fit(pairs)


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_the_earlier_run(tmp_path):
    fit_module(Linear(), mse_loss, _data(16), FitConfig(epochs=2, batch_size=4, log_every=1), run_dir=tmp_path)
    before = [p.name for p in checkpoint_dirs(tmp_path)]
    metrics = (tmp_path / "metrics.csv").read_text()

    def nan_at_2(net, batch, step, epoch):
        loss, logs = mse_loss(net, batch, step, epoch)
        return (loss * float("nan"), logs) if step == 2 else (loss, logs)

    with pytest.raises(TrainingDiverged):   # 4 steps an epoch: it fails before writing a checkpoint
        fit_module(Linear(), nan_at_2, _data(16), FitConfig(epochs=2, batch_size=4, log_every=1), run_dir=tmp_path)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == before == ["step-00000004", "step-00000008"]
    assert (tmp_path / "metrics.csv").read_text() == metrics       # its own rows are gone, the earlier ones back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.csv"]
    net = Linear(seed=4)   # and the earlier run still resumes
    state = load_checkpoint(tmp_path, net, None, _saved_config(checkpoint_dirs(tmp_path)[-1]))
    assert state["step"] == 8

    def nan_at_6(net, batch, step, epoch):
        loss, logs = mse_loss(net, batch, step, epoch)
        return (loss * float("nan"), logs) if step == 6 else (loss, logs)

    with pytest.raises(TrainingDiverged):   # past its first checkpoint: the folder is the new run's
        fit_module(Linear(), nan_at_6, _data(16), FitConfig(epochs=2, batch_size=4, log_every=1), run_dir=tmp_path)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000004"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "metrics.csv"]
    with open(tmp_path / "metrics.csv") as fh:
        assert [r["step"] for r in csv.DictReader(fh)] == ["1", "2", "3", "4", "5", "6"]


def test_records_set_aside_by_a_killed_run_are_settled_by_the_next(tmp_path):
    from jointspace.train.checkpoint import EARLIER_RUN, EarlierRun, is_run_dir

    fit_module(Linear(), mse_loss, _data(16), FitConfig(epochs=1, batch_size=4), run_dir=tmp_path)
    EarlierRun(tmp_path)            # as a run killed before its first checkpoint leaves it
    assert not checkpoint_dirs(tmp_path) and (tmp_path / EARLIER_RUN).is_dir() and is_run_dir(tmp_path)
    EarlierRun(tmp_path).settle()   # nothing written since: the earlier run comes back
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-00000004"]
    assert not (tmp_path / EARLIER_RUN).exists()
