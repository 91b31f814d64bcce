"""fit_module's phases: further optimiser steps per batch on parts of the network."""

import csv

import numpy as np
import pytest
import torch

from jointspace.errors import InputError, TrainingDiverged
from jointspace.train import FitConfig, fit_module
from jointspace.train.checkpoint import checkpoint_dirs
from jointspace.train.phases import OptimizerSet, Phase
from jointspace.train.schedule import make_optimizer

torch.set_num_threads(1)


class Two(torch.nn.Module):
    """Two linear maps: ``a`` trained by the main loss, ``b`` by a phase."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.a = torch.nn.Linear(3, 1)
        self.b = torch.nn.Linear(3, 1)


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    return {"x": x, "y": y}


def main_loss(net, batch, step, epoch):
    return torch.mean((net.a(batch["x"]) - batch["y"]) ** 2), {}


def b_loss(net, batch, step, epoch):
    # reaches a's parameters too: the phase must update only b
    x = batch["x"] + 0.1 * torch.randn_like(batch["x"])
    loss = torch.mean((net.a(x) + net.b(x) - 2 * batch["y"]) ** 2)
    return loss, {"b_mse": float(loss.detach())}


CFG = dict(epochs=3, batch_size=8, lr=0.05, min_lr=0.05, weight_decay=0.01, seed=4)


def test_a_phase_is_an_adamw_step_of_its_own_on_its_modules_only():
    data = _data()
    net = Two(seed=1)
    fit_module(net, main_loss, data, FitConfig(**CFG), phases=[Phase("b_phase", ("b",), b_loss, lr_scale=0.5)])

    # the same training written out: one AdamW per part, the phase at half the rate
    ref = Two(seed=1)
    torch.manual_seed(CFG["seed"])
    opt = make_optimizer(ref, CFG["lr"], CFG["weight_decay"])
    opt_b = make_optimizer(torch.nn.ModuleList([ref.b]), CFG["lr"] * 0.5, CFG["weight_decay"])
    x, y = torch.as_tensor(data["x"]), torch.as_tensor(data["y"])
    for epoch in range(CFG["epochs"]):
        order = np.random.default_rng([CFG["seed"], epoch]).permutation(len(x))
        for s in range(0, len(x), CFG["batch_size"]):
            idx = torch.as_tensor(order[s:s + CFG["batch_size"]])
            batch = {"x": x[idx], "y": y[idx]}
            ref.zero_grad(set_to_none=True)
            main_loss(ref, batch, 0, epoch)[0].backward()
            opt.step()
            ref.zero_grad(set_to_none=True)
            b_loss(ref, batch, 0, epoch)[0].backward()
            opt_b.step()
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=1e-6, msg=k)
    # without the phase b keeps its initial weights (the main loss does not reach it)
    alone = Two(seed=1)
    fit_module(alone, main_loss, data, FitConfig(**CFG))
    assert torch.equal(alone.b.weight, Two(seed=1).b.weight)
    assert not torch.equal(net.b.weight, Two(seed=1).b.weight)


def _resumable(run_dir, resume=None, callback=None):
    net = Two(seed=2)
    cfg = FitConfig(epochs=3, batch_size=8, lr=0.05, warmup=0.2, checkpoint_every=2, log_every=1, keep_checkpoints=5)
    result = fit_module(net, main_loss, _data(), cfg, run_dir=run_dir, resume=resume, step_callback=callback,
                        model_config={"model": "two"}, phases=[Phase("b_phase", ("b",), b_loss)])
    return net, result


def test_a_run_with_phases_resumes_to_the_same_weights(tmp_path):
    ref_net, ref = _resumable(tmp_path / "ref")

    class Stop(Exception):
        pass

    def stop_at_5(step, loss):
        if step == 5:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        _resumable(run, callback=stop_at_5)
    assert checkpoint_dirs(run)[-1].name == "step-00000004"
    net, result = _resumable(run, resume=run)
    for k, v in ref_net.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    assert result.history == ref.history
    assert "b_phase" in result.history[0] and "b_mse" in result.history[0]
    with open(run / "metrics.csv") as fh:
        assert "b_phase" in next(csv.reader(fh))
    # a checkpoint of a run without phases does not hold the phase's optimiser
    plain = tmp_path / "plain"
    fit_module(Two(seed=2), main_loss, _data(), FitConfig(epochs=1, batch_size=8), run_dir=plain,
               model_config={"model": "two"})
    with pytest.raises(InputError, match="different set of optimisers"):
        fit_module(Two(seed=2), main_loss, _data(), FitConfig(epochs=1, batch_size=8), resume=plain,
                   model_config={"model": "two"}, phases=[Phase("b_phase", ("b",), b_loss)])


def test_optimizer_set_state_round_trips():
    net = Two()
    opts = [torch.optim.AdamW(net.a.parameters(), lr=0.1), torch.optim.AdamW(net.b.parameters(), lr=0.2)]
    for o in opts:
        net.zero_grad()
        (net.a.weight.sum() + net.b.weight.sum() + net.a.bias.sum() + net.b.bias.sum()).backward()
        o.step()
    sd = OptimizerSet(opts).state_dict()
    assert [g["optimizer"] for g in sd["param_groups"]] == [0, 1]
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    fresh = [torch.optim.AdamW(net.a.parameters(), lr=0.1), torch.optim.AdamW(net.b.parameters(), lr=0.2)]
    OptimizerSet(fresh).load_state_dict(sd)
    for o, f in zip(opts, fresh):
        a, b = o.state_dict(), f.state_dict()
        assert a["param_groups"] == b["param_groups"]
        for k in a["state"]:
            for name, v in a["state"][k].items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["state"][k][name]))


@pytest.mark.parametrize("phases, match", [
    ([Phase("p", ("nope",), b_loss)], "phase 'p' names 'nope', which is not a submodule"),
    ([Phase("loss", ("b",), b_loss)], "name of its own.*got 'loss'"),
    ([Phase("p", ("b",), b_loss), Phase("p", ("a",), b_loss)], "name of its own.*got 'p'"),
    ([Phase("p", ("b",), None)], "phase 'p' needs a callable loss_fn"),
    ([Phase("p", "b", b_loss)], r"phase 'p' needs modules as a tuple of submodule names, got 'b'"),
    ([Phase("p", (), b_loss)], r"needs modules as a tuple of submodule names, got \(\)"),
    ([Phase("p", ("b",), b_loss, lr_scale=0.0)], "lr_scale"),
    ([Phase("val_loss", ("b",), b_loss)], "name of its own.*got 'val_loss'"),   # replaced val's in the history
    ([Phase("p", ("b",), b_loss, lr_scale=1e300)], r"^phases: phase 'p' lr x lr_scale: expected a learning rate <= 1e\+30"),
    (["b"], "expected a list of Phase, got an item of type str"),
    (Phase("p", ("b",), b_loss), "expected a list of Phase, got Phase"),
])
def test_bad_phases_are_named(phases, match):
    with pytest.raises(InputError, match=match):
        fit_module(Two(), main_loss, _data(), FitConfig(epochs=1), phases=phases)


def test_a_phase_that_diverges_names_itself():
    def nan_loss(net, batch, step, epoch):
        return net.b(batch["x"]).mean() * float("nan"), {}

    before = Two(seed=3).b.weight.detach().clone()
    net = Two(seed=3)
    with pytest.raises(TrainingDiverged, match="the b_phase loss became nan at step 0"):
        fit_module(net, main_loss, _data(), FitConfig(epochs=1), phases=[Phase("b_phase", ("b",), nan_loss)])
    assert torch.equal(net.b.weight, before)


def test_a_checkpoint_with_phases_resumed_without_them_is_refused(tmp_path):
    run = tmp_path / "run"
    fit_module(Two(seed=2), main_loss, _data(), FitConfig(epochs=1, batch_size=8), run_dir=run,
               model_config={"model": "two"}, phases=[Phase("b_phase", ("b",), b_loss)])
    with pytest.raises(InputError, match="holds the state of a different optimiser"):
        fit_module(Two(seed=2), main_loss, _data(), FitConfig(epochs=1, batch_size=8), resume=run,
                   model_config={"model": "two"})


@pytest.mark.parametrize("main_logs, phases, clash", [
    ({"b_mse": 1.0}, [Phase("p", ("b",), b_loss)], "b_mse"),
    ({}, [Phase("p", ("b",), b_loss), Phase("b_mse", ("b",), b_loss)], "b_mse"),
    ({"q": 1.0}, [Phase("p", ("b",), b_loss), Phase("q", ("b",), b_loss)], "b_mse, q"),
])
def test_a_phase_whose_logs_clash_with_others_is_refused(main_logs, phases, clash):
    """The epoch's history kept one of two values logged under one name, without a word."""
    def logging_loss(net, batch, step, epoch):
        return main_loss(net, batch, step, epoch)[0], dict(main_logs)

    with pytest.raises(InputError, match=f"phases: phase '[a-z_]+' logs {clash}, which the loss or an earlier phase"):
        fit_module(Two(), logging_loss, _data(), FitConfig(epochs=1), phases=phases)
