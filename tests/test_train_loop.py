"""The training loop: schedule, weight-decay groups, accumulation, early stopping, metrics."""

import csv
import math

import numpy as np
import pytest
import torch

from jointspace.errors import InputError, TrainingDiverged
from jointspace.models.dual_encoder import DualEncoderNet
from jointspace.train import TrainConfig, fit_dual_encoder
from jointspace.train.loop import evaluate_recall
from jointspace.objectives.contrastive import clip_loss, logit_scale
from jointspace.train.step import train_step
from jointspace.eval.metrics import top_k_recall
from jointspace.train.schedule import lr_at, make_optimizer, param_groups, resolve_warmup

torch.set_num_threads(1)


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 5)) + 0.3 * rng.normal(size=(n, 5))).astype(np.float32)
    return {"a": x, "b": y}


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return DualEncoderNet({"a": 6, "b": 5}, dim=4, head=kw.pop("head", "mlp"), hidden=8, **kw)


def test_warmup_then_cosine_schedule():
    assert lr_at(0, 1.0, 4, 20) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 20) == pytest.approx(1.0)
    assert lr_at(4, 1.0, 4, 20) == pytest.approx(1.0)
    assert lr_at(12, 1.0, 4, 20) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_at(20, 1.0, 4, 20, min_lr=0.1) == pytest.approx(0.1)
    assert lr_at(8, 2.0, 0, 16) == pytest.approx(1.0 + math.cos(math.pi * 0.5))
    assert resolve_warmup(0.1, 50) == 5 and resolve_warmup(7, 50) == 7
    with pytest.raises(InputError, match="warmup"):
        resolve_warmup(1.5, 10)


def test_torch_scheduler_sets_the_schedule_exactly_per_group_and_on_resume():
    from jointspace.train.schedule import make_scheduler, warmup_cosine

    torch.manual_seed(0)
    net = torch.nn.Module()
    net.head = torch.nn.Linear(3, 2)
    net.tower_modules = torch.nn.ModuleDict({"image": torch.nn.Linear(2, 2)})
    opt = make_optimizer(net, 1e-3, 0.1, tower_lr_scale=0.03)
    rate = warmup_cosine(1e-3, 3, 12, min_lr=1e-5)
    sched = make_scheduler(opt, rate)
    seen = []
    for step in range(12):
        for g in opt.param_groups:   # the hand-written rule the loop used: lr_at(step) * lr_scale, to the bit
            assert g["lr"] == lr_at(step, 1e-3, 3, 12, 1e-5) * g["lr_scale"]
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert {g["lr_scale"] for g in opt.param_groups} == {1.0, 0.03}
    # a resumed run rebuilds the scheduler at the steps done and continues on the same rates
    again = make_optimizer(net, 1e-3, 0.1, tower_lr_scale=0.03)
    again.load_state_dict(opt.state_dict())
    make_scheduler(again, rate, start_step=7)
    assert [g["lr"] for g in again.param_groups] == seen[7]


def test_weight_decay_skips_biases_norms_and_temperature():
    net = _net()
    net.extra_norm = torch.nn.LayerNorm(3)
    groups = param_groups(net, 0.1)
    decay = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in decay}
    assert names == {"heads.a.net.0.weight", "heads.a.net.3.weight", "heads.b.net.0.weight", "heads.b.net.3.weight"}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert any(p is net.log_scale for p in groups[1]["params"])
    opt = make_optimizer(net, 1e-3, 0.1)
    assert isinstance(opt, torch.optim.AdamW)


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_accumulation_keeps_the_negatives_of_the_whole_batch(loss):
    data = {m: torch.from_numpy(v[:24]) for m, v in _data().items()}
    grads = []
    for accum in (1, 3):
        net = _net(siglip=(loss == "siglip"))
        cfg = TrainConfig(batch_size=24, accum_steps=accum, loss=loss)
        value = train_step(cfg, net, data, None, None, False)
        grads.append((value, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}))
    (v1, g1), (v3, g3) = grads
    assert v1 == pytest.approx(v3, rel=1e-6)
    assert set(g1) == set(g3)
    for n in g1:
        torch.testing.assert_close(g3[n], g1[n], rtol=1e-5, atol=1e-7, msg=n)
    # Plain micro-batches would contrast only 8 pairs: a different (larger-batch-less) loss.
    net = _net(siglip=(loss == "siglip"))
    small = train_step(TrainConfig(batch_size=8, loss=loss), net, {m: v[:8] for m, v in data.items()}, None, None, False)
    assert small != pytest.approx(v1, rel=1e-3)


def test_accumulation_with_dropout_is_the_exact_gradient_of_its_masks():
    """The second pass over a micro-batch replays the random state of the first, so dropout
    draws the same masks: the step equals one graph over the same micro-batches in order."""
    data = {m: torch.from_numpy(v[:24]) for m, v in _data().items()}
    chunks = np.array_split(np.arange(24), 3)
    net = _net(dropout=0.4, input_dropout=0.3)
    torch.manual_seed(5)
    value = train_step(TrainConfig(batch_size=24, accum_steps=3), net, data, None, None, False)
    state_after = torch.get_rng_state()
    ref = _net(dropout=0.4, input_dropout=0.3)
    torch.manual_seed(5)
    parts = [ref({m: v[c] for m, v in data.items()}) for c in chunks]
    assert torch.equal(torch.get_rng_state(), state_after)  # the step drew each mask once
    feats = {m: torch.cat([p[m] for p in parts]) for m in ("a", "b")}
    loss = clip_loss(feats["a"], feats["b"], logit_scale(ref.log_scale, 100.0))
    loss.backward()
    assert value == pytest.approx(float(loss.detach()), rel=1e-6)
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)
    # without the replay the cached features would differ from the recomputed ones
    torch.manual_seed(5)
    a = net({m: v[chunks[0]] for m, v in data.items()})["a"]
    assert not torch.allclose(a, net({m: v[chunks[0]] for m, v in data.items()})["a"])


def test_training_improves_recall_and_early_stopping_restores_best(tmp_path):
    data = _data(160)
    train = {m: v[:128] for m, v in data.items()}
    val = {m: v[128:] for m, v in data.items()}
    net = _net()
    before = evaluate_recall(net, {m: torch.from_numpy(v) for m, v in val.items()}, k=3)["val_recall"]
    cfg = TrainConfig(epochs=40, batch_size=32, lr=3e-2, warmup=0.1, patience=3, recall_k=3, log_every=2,
                      progress=True, tensorboard=True)
    res = fit_dual_encoder(net, train, cfg, val=val, run_dir=tmp_path)
    after = evaluate_recall(net, {m: torch.from_numpy(v) for m, v in val.items()}, k=3)["val_recall"]
    assert after > before + 0.2
    assert after == pytest.approx(res.best_metric)  # the best epoch's weights are restored
    assert res.stopped_early and res.epochs_run < 40
    assert res.epochs_run == res.best_epoch + 1 + 3
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert {"step", "loss", "tau", "lr", "pairs_per_s"} <= set(rows[0])
    assert any(r.get("val_recall") for r in rows)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    taus = [float(r["tau"]) for r in rows if r.get("tau")]
    assert all(0.01 - 1e-9 <= t for t in taus)


def test_bf16_supervised_and_three_modalities_run():
    data = _data(64)
    data["c"] = (data["a"][:, :3] * 2).astype(np.float32)
    torch.manual_seed(0)
    net = DualEncoderNet({"a": 6, "b": 5, "c": 3}, dim=4)
    masks = {"c": np.arange(64) % 2 == 0}
    res = fit_dual_encoder(net, data, TrainConfig(epochs=2, batch_size=16, precision="bf16"), masks=masks)
    assert res.steps == 8
    net = _net()
    labels = [f"caption {i % 5}" for i in range(64)]
    res = fit_dual_encoder(net, {m: data[m] for m in "ab"}, TrainConfig(epochs=1, batch_size=16, loss="supervised"),
                           labels=labels)
    assert res.steps == 4


def test_bad_training_input():
    data = _data(32)
    with pytest.raises(InputError, match="at least 2 pairs"):
        fit_dual_encoder(_net(), {m: v[:1] for m, v in data.items()}, TrainConfig())
    with pytest.raises(InputError, match="batch_size"):
        fit_dual_encoder(_net(), data, TrainConfig(batch_size=1))
    with pytest.raises(InputError, match="accum_steps"):
        fit_dual_encoder(_net(), data, TrainConfig(batch_size=16, accum_steps=3))
    with pytest.raises(InputError, match="labels"):
        fit_dual_encoder(_net(), data, TrainConfig(loss="supervised"))
    with pytest.raises(InputError, match="bias"):
        fit_dual_encoder(_net(), data, TrainConfig(loss="siglip"))
    bad = {m: v.copy() for m, v in data.items()}
    bad["a"][3, 2] = np.nan
    with pytest.raises(TrainingDiverged, match="loss became nan at step 0"):
        fit_dual_encoder(_net(head="linear"), bad, TrainConfig(batch_size=32, epochs=1))


@pytest.mark.parametrize("field, value", [
    ("min_lr", -1e-3), ("min_lr", 0.5), ("warmup", 2.5), ("seed", -1), ("seed", 1.5), ("keep_checkpoints", -1),
    ("log_every", 0), ("restore_best", "no"), ("progress", "x"), ("tensorboard", None)])
def test_bad_train_config_names_the_field(field, value):
    # a negative min_lr would make the cosine tail a gradient ascent; log_every=0 divided by zero
    with pytest.raises(InputError, match=f"^{field}:"):
        TrainConfig(**{field: value}).validate()
    with pytest.raises(InputError, match=f"^{field}:"):
        fit_dual_encoder(_net(), _data(32), TrainConfig(epochs=1, batch_size=16, **{field: value}))



@pytest.mark.parametrize("grad_clip", [1.0, None])
def test_a_nan_gradient_stops_training_before_the_step(grad_clip):
    """A finite loss whose gradient is NaN (here from step 2 on) is refused before the optimiser
    steps on it: the weights stay finite and the error names the step."""
    net, calls = _net(head="linear"), {"n": 0}

    def poison(grad):
        calls["n"] += 1
        return grad * float("nan") if calls["n"] > 2 else grad

    net.heads["a"].net.weight.register_hook(poison)
    with pytest.raises(TrainingDiverged, match=r"gradient norm became nan at step 2 \(epoch 0; the loss was") as err:
        fit_dual_encoder(net, _data(96), TrainConfig(batch_size=16, epochs=2, grad_clip=grad_clip))
    assert err.value.step == 2 and math.isnan(err.value.value)
    assert all(torch.isfinite(q).all() for q in net.parameters())

def recall_at_k(q, g, k, keys=None, **kw):
    """Validation recall as the training loop computes it (pair identity without keys)."""
    keys = np.arange(len(q)) if keys is None else keys
    return top_k_recall(q, g, keys, keys, k, **kw)


def test_recall_at_k_against_brute_force():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(30, 4))
    g = rng.normal(size=(30, 4))
    keys = rng.integers(0, 6, size=30)
    sim = q @ g.T
    want = np.mean([keys[i] in keys[np.argsort(-sim[i])[:5]] for i in range(30)])
    assert recall_at_k(q, g, 5, keys, chunk=7) == pytest.approx(want)
    want_id = np.mean([i in np.argsort(-sim[i])[:5] for i in range(30)])
    assert recall_at_k(q, g, 5) == pytest.approx(want_id)
    # per-group average against a brute-force loop over the keys
    hit = np.array([keys[i] in keys[np.argsort(-sim[i])[:5]] for i in range(30)])
    want_group = np.mean([hit[keys == key].mean() for key in np.unique(keys)])
    assert recall_at_k(q, g, 5, keys, chunk=7, average="group") == pytest.approx(want_group)
    # without keys every sample is its own group: the two averages agree
    assert recall_at_k(q, g, 5, average="group") == pytest.approx(want_id)


def test_group_average_recall_by_hand():
    # query i's nearest gallery item is perm[i]; keys a, a, b, c
    q = np.eye(4)
    g = np.eye(4)[[1, 0, 3, 2]]
    keys = np.array(["a", "a", "b", "c"])
    # q0 -> g1 (a, hit), q1 -> g0 (a, hit), q2 -> g3 (c, miss), q3 -> g2 (b, miss)
    assert recall_at_k(q, g, 1, keys) == pytest.approx(0.5)
    assert recall_at_k(q, g, 1, keys, average="group") == pytest.approx((1 + 0 + 0) / 3)
    with pytest.raises(InputError, match="average"):
        recall_at_k(q, g, 1, keys, average="title")
    with pytest.raises(InputError, match="val_average"):
        TrainConfig(val_average="macro").validate()


def test_device_setting():
    from jointspace.train.device import backend_for, resolve_device, to_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert backend_for(torch.device("cpu")) == "gloo" and backend_for(torch.device("cuda", 1)) == "nccl"
    for bad in ("gpu", "cuda:x", "", 0, None):
        with pytest.raises(InputError, match="device: expected one of cpu, cuda, cuda:N, auto"):
            TrainConfig(device=bad).validate()
    x = torch.ones(2)
    batch = to_device({"a": x, "b": ["raw", "items"]}, torch.device("cpu"))
    assert batch["a"] is x and batch["b"] == ["raw", "items"]
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        with pytest.raises(InputError, match="does not exist"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(InputError, match="device: 'cuda' needs a CUDA build"):
            TrainConfig(device="cuda").validate()
        # an explicit CPU run and an "auto" one on a machine without a GPU train the same weights
        data = _data(64)
        nets = [_net(), _net()]
        for net, device in zip(nets, ("cpu", "auto")):
            fit_dual_encoder(net, data, TrainConfig(epochs=2, batch_size=16, device=device, accum_steps=2))
        for p, q in zip(*(n.parameters() for n in nets)):
            assert torch.equal(p, q)


def test_cuda_device_resolution(monkeypatch):
    """Which GPU a setting names (checked with a stand-in for CUDA: no GPU is needed)."""
    from jointspace.train.device import backend_for, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")  # under torchrun: the process's own GPU, over NCCL
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert backend_for(resolve_device("cuda")) == "nccl" and backend_for(resolve_device("cpu")) == "gloo"
    with pytest.raises(InputError, match=r"device: 'cuda:2' does not exist; this machine has 2 GPU"):
        resolve_device("cuda:2")


def test_accumulation_counts_each_micro_batch_once_in_batchnorm_statistics():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
            self.norm = torch.nn.BatchNorm1d(4)
            self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def forward(self, batch):
            return {"a": torch.nn.functional.normalize(self.norm(self.a(batch["a"])), dim=-1),
                    "b": torch.nn.functional.normalize(self.b(batch["b"]), dim=-1)}

    data = {m: torch.from_numpy(v[:24]) for m, v in _data().items()}
    net, ref = Net(), Net()
    train_step(TrainConfig(batch_size=24, accum_steps=2), net, data, None, None, False)
    for c in np.array_split(np.arange(24), 2):  # what two plain training passes leave behind
        ref({m: v[c] for m, v in data.items()})
    assert int(net.norm.num_batches_tracked) == 2
    torch.testing.assert_close(net.norm.running_mean, ref.norm.running_mean)
    torch.testing.assert_close(net.norm.running_var, ref.norm.running_var)


def test_a_divergence_names_the_checkpoint_to_resume_from(tmp_path):
    net = _net(head="linear")

    def poison(step, loss):   # after step 5 the heads' weights are NaN, so step 5's loss is
        if step == 5:
            with torch.no_grad():
                for name, p in net.named_parameters():
                    if name != "log_scale":
                        p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged) as info:   # 6 steps an epoch, a checkpoint every 3
        fit_dual_encoder(net, _data(96), TrainConfig(batch_size=16, epochs=2, checkpoint_every=3), run_dir=tmp_path,
                         step_callback=poison)
    assert "loss became nan at step 5" in str(info.value)
    assert info.value.checkpoint == str(tmp_path / "checkpoints" / "step-00000003")
    assert f"the last good checkpoint '{info.value.checkpoint}' is left as it was (resume from it)" in str(info.value)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written \\(no run_dir\\)"):
        fit_dual_encoder(net, _data(96), TrainConfig(batch_size=16, epochs=1))
