"""Pretrained towers with their top blocks unfrozen: same start as the frozen towers, gradients
only where asked, end-to-end training through the dual encoder, save / load."""

import numpy as np
import pytest
import torch

import jointspace as js
from jointspace.errors import InputError
from jointspace.towers import create_tower
from jointspace.train.schedule import param_groups

torch.set_num_threads(1)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    # blobs on white, dark on light as drawings are
    out = []
    for i in range(n):
        img = np.full((48, 48, 3), 255, np.uint8)
        r, c = rng.integers(4, 30, size=2)
        img[r:r + 14, c:c + 14] = rng.integers(0, 200, size=3)
        out.append(img)
    return out


TEXTS = ["a red square", "a blue circle on white", "bird", "an old steam train", "tux penguin"]


def test_start_equals_the_frozen_towers():
    imgs = _images(3)
    tun = create_tower("efficientnet-lite0-tunable", trainable_blocks=2)
    assert np.allclose(tun.embed(imgs, progress=False), create_tower("efficientnet-lite0").embed(imgs, progress=False),
                       atol=1e-5)
    txt = create_tower("minilm-tunable", trainable_layers=1)
    assert np.allclose(txt.embed(TEXTS, progress=False), create_tower("minilm").embed(TEXTS, progress=False),
                       atol=1e-5)
    assert tun.out_dim == 1280 and txt.out_dim == 384


def test_gradients_only_in_the_unfrozen_blocks():
    tun = create_tower("efficientnet-lite0-tunable", trainable_blocks=2)
    names = {n for n, p in tun.module.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("net._blocks.14.", "net._blocks.15.", "net._conv_head", "net._bn1"))
                         for n in names)
    assert any(n.startswith("net._blocks.14.") for n in names)
    tun.module.train()
    z = tun.forward(_images(2))
    z.sum().backward()
    for n, p in tun.module.named_parameters():
        assert (p.grad is not None) == (n in names), n
    # batch-norm statistics stay frozen while training
    assert not any(m.training for m in tun.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    every = create_tower("efficientnet-lite0-tunable", trainable_blocks="all")
    # everything the features use trains; the unused ImageNet classifier stays as it is
    assert all(p.requires_grad != n.startswith("net._fc") for n, p in every.module.named_parameters())
    txt = create_tower("minilm-tunable", trainable_layers=2)
    names = {n for n, p in txt.module.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("bert.encoder.layer.4.", "bert.encoder.layer.5.", "bert.pooler")) for n in names)
    assert not txt.module.bert.encoder.layer[3].training


def test_bad_settings_name_the_argument():
    for bad in (17, -1, "most", 1.5):
        with pytest.raises(InputError, match="trainable_blocks"):
            create_tower("efficientnet-lite0-tunable", trainable_blocks=bad)
    with pytest.raises(InputError, match="trainable_layers"):
        create_tower("minilm-tunable", trainable_layers=7)
    with pytest.raises(InputError, match="tower_lr_scale"):
        js.create_model("clip", tower_lr_scale=0.0, towers={"text": "minilm-tunable"}).fit(
            js.Pairs({"image": np.zeros((4, 3), np.float32), "text": TEXTS[:4]}))


def test_tower_learning_rate_scale_groups():
    net = torch.nn.Module()
    net.head = torch.nn.Linear(3, 2)
    net.tower_modules = torch.nn.ModuleDict({"image": torch.nn.Linear(2, 2)})
    groups = param_groups(net, 0.1, tower_lr_scale=0.05)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(net.head.weight)] == 1.0 and scale[id(net.tower_modules["image"].weight)] == 0.05
    assert len(param_groups(net, 0.1)) == 2  # no split without a scale


def test_dual_encoder_trains_the_top_block_end_to_end(tmp_path):
    imgs = _images(12, seed=1)
    texts = [f"{c} square" for c in ("red", "green", "blue", "black", "grey", "brown")] * 2
    pairs = js.Pairs({"image": imgs, "text": np.array(texts)})
    model = js.create_model("clip", towers={"image": "efficientnet-lite0-tunable"},
                            tower_params={"image": {"trainable_blocks": 1}}, dim=8, epochs=2, batch_size=6,
                            val_fraction=0.0, tower_lr_scale=0.1, cache=tmp_path / "cache")
    before = {k: v.clone() for k, v in create_tower("efficientnet-lite0-tunable").module.state_dict().items()}
    model.fit(pairs)
    after = model.net_.tower_modules["image"].state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("net._blocks.15.", "net._conv_head", "net._bn1")) for k in changed)
    assert not any("running" in k for k in changed)
    # the head was standardised with the frozen twin's features
    twin = create_tower("efficientnet-lite0").embed(imgs, progress=False)
    np.testing.assert_allclose(model.net_.heads["image"].mean.numpy(), twin.mean(0), rtol=1e-4, atol=1e-5)
    z = model.encode("image", imgs[:3])
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.encode("image", imgs[:3]), z, atol=1e-5)
