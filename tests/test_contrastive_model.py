"""The registered "clip" dual encoder: fit, encode, save / load, losses, bad input."""

import numpy as np
import pytest
import torch

import jointspace as js
from jointspace.errors import InputError
from jointspace.models.dual_encoder import DualEncoder

torch.set_num_threads(1)


def _pairs(n=240, seed=0, labels=False):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    img = (z @ rng.normal(size=(4, 12)) + 0.2 * rng.normal(size=(n, 12)) + 5.0).astype(np.float32)
    txt = (np.tanh(z @ rng.normal(size=(4, 7))) * 3 + 0.2 * rng.normal(size=(n, 7))).astype(np.float32)
    lab = (z[:, 0] > 0).astype(int) if labels else None
    return js.Pairs({"image": img, "text": txt}, labels=lab)


FAST = dict(dim=8, head="mlp", hidden=32, epochs=25, batch_size=32, lr=3e-3, val_fraction=0.0)


def test_fit_encode_save_load_roundtrip(tmp_path):
    train, test = _pairs(240).split(0.25, seed=0)
    model = js.create_model("clip", **FAST).fit(train)
    assert isinstance(model, DualEncoder) and model.modalities_ == ("image", "text")
    zi, zt = model.encode("image", test["image"]), model.encode("text", test["text"])
    assert zi.shape == (60, 8) and zi.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(zt, axis=1), 1.0, rtol=1e-5)
    # Matching pairs are found far above chance (R@5 of 60 candidates by chance is 1/12).
    ranks = (zt @ zi.T).argsort(axis=1)[:, ::-1]
    r5 = np.mean([i in ranks[i, :5] for i in range(60)])
    assert r5 > 0.5
    assert 0.01 <= model.temperature_ <= 1.0
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    assert isinstance(loaded, DualEncoder) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.encode("text", test["text"]), zt)
    raw = loaded.encode("image", test["image"], normalize=False)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), zi, rtol=1e-5, atol=1e-6)
    metrics = js.evaluate_retrieval(loaded, test, relevance="id")
    assert metrics["text->image/R@10"] > 0.5


@pytest.mark.parametrize("loss", ["siglip", "supervised"])
def test_other_losses_fit(loss):
    train = _pairs(160, labels=True)
    model = js.create_model("clip", loss=loss, **dict(FAST, epochs=3)).fit(train)
    assert model.train_result_.steps == 3 * (160 // 32)


def test_three_modalities_and_validation_split():
    p = _pairs(200)
    p = p.with_modality("audio", (p["image"][:, :5] * -1).astype(np.float32))
    model = js.create_model("clip", **dict(FAST, epochs=4, val_fraction=0.2, patience=2)).fit(p)
    assert model.modalities_ == ("image", "text", "audio")
    assert model.encode("audio", p["audio"][:3]).shape == (3, 8)
    assert model.train_result_.best_metric is not None


def test_bad_input():
    p = _pairs(40)
    img = p["image"].copy()
    img[5, 3] = np.nan
    with pytest.raises(InputError, match=r"finite.*row 5, column 3"):
        js.create_model("clip", **FAST).fit(js.Pairs({"image": img, "text": p["text"]}))
    with pytest.raises(InputError, match="at least 2 pairs"):
        js.create_model("clip", **FAST).fit(p.subset([0]))
    with pytest.raises(InputError, match="head"):
        js.create_model("clip", head="conv").fit(p)
    with pytest.raises(InputError, match="two modalities"):
        js.create_model("clip", modalities=["image"]).fit(p)
    for name in ("dropout", "input_dropout"):
        with pytest.raises(InputError, match=name):
            js.create_model("clip", **dict(FAST, **{name: 1.5})).fit(p)
    with pytest.raises(InputError, match="val_average"):
        js.create_model("clip", **dict(FAST, val_average="per-title")).fit(p)
    with pytest.raises(InputError, match="val: expected a jointspace Pairs"):
        js.create_model("clip", **FAST).fit(p, val={"image": p["image"]})
    with pytest.raises(InputError, match="val \\(image\\): expected 12 features, as the training pairs have, got 2"):
        js.create_model("clip", **FAST).fit(p, val=js.Pairs({"image": p["image"][:5, :2], "text": p["text"][:5]}))
    with pytest.raises(InputError, match="loss: 'supervised' takes the pairs that share a label"):
        js.create_model("clip", **dict(FAST, loss="supervised")).fit(p)
    with pytest.raises(InputError, match="warmup: expected a number of steps"):
        js.create_model("clip", **dict(FAST, warmup=float("nan"))).fit(p)
    model = js.create_model("clip", **dict(FAST, epochs=1)).fit(p)
    with pytest.raises(InputError, match="expected 12 features, got 5"):
        model.encode("image", np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match="modality"):
        model.encode("audio", np.zeros((2, 5), np.float32))


def test_trainable_towers_train_end_to_end_and_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    n = 96
    cls = rng.integers(0, 4, n)
    imgs = rng.integers(0, 40, size=(n, 16, 16)).astype(np.uint8)
    for i, c in enumerate(cls):
        imgs[i, c * 4:(c + 1) * 4, :] = 255
    feats = (np.eye(4)[cls] @ rng.normal(size=(4, 10)) + 0.1 * rng.normal(size=(n, 10))).astype(np.float32)
    p = js.Pairs({"image": imgs, "text": feats}, labels=cls)
    model = js.create_model("clip", towers={"image": "cnn", "text": "mlp"},
                            tower_params={"image": {"image_size": 16, "channels": 1, "widths": [8, 16], "out_dim": 16},
                                          "text": {"in_dim": 10, "hidden": [16], "out_dim": 16}},
                            dim=8, epochs=6, batch_size=32, lr=1e-2, val_fraction=0.0)
    from jointspace.towers.base import create_tower
    init = create_tower("cnn", image_size=16, channels=1, widths=[8, 16], out_dim=16).module.state_dict()
    model.fit(p)
    after = model.net_.tower_modules["image"].state_dict()
    assert set(after) == set(init)
    assert all(not torch.equal(init[k], after[k]) for k in init if k.endswith("weight"))  # the tower trained
    zi, zt = model.encode("image", imgs), model.encode("text", feats)
    same_class = (cls[:, None] == cls[None, :])
    top = (zt @ zi.T).argmax(axis=1)
    assert same_class[np.arange(n), top].mean() > 0.5  # chance: about 0.25
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.encode("image", imgs[:7]), zi[:7])
    np.testing.assert_array_equal(loaded.encode("text", feats[:7]), zt[:7])


def test_cca_initialised_linear_heads_start_at_the_canonical_directions():
    from jointspace.models.cca import CCA

    p = _pairs(200)
    model = js.create_model("clip", head="linear", dim=3, init="cca", epochs=1, lr=1e-12, batch_size=50,
                            val_fraction=0.0, grad_clip=None).fit(p)
    x, y = p["image"], p["text"]
    sx = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    sy = (y - y.mean(0)) / np.maximum(y.std(0), 1e-6)
    u, v = CCA(n_components=3, reg=0.1, weight=0.0).fit(sx, sy).transform(sx, sy)  # the unweighted directions
    np.testing.assert_allclose(model.encode("image", x, normalize=False), u, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(model.encode("text", y, normalize=False), v, rtol=1e-3, atol=1e-3)
    with pytest.raises(InputError, match="linear heads"):
        js.create_model("clip", head="mlp", init="cca", epochs=1).fit(p)


def test_input_dropout_acts_in_training_only(tmp_path):
    p = _pairs(120)
    model = js.create_model("clip", **dict(FAST, epochs=3, input_dropout=0.5, val_average="group"),
                            relevance="label").fit(p.__class__({"image": p["image"], "text": p["text"]},
                                                               labels=np.arange(120) % 7))
    head = model.net_.heads["image"]
    x = torch.from_numpy(p["image"][:16])
    z = (x - head.mean) * head.inv_std
    head.train()
    torch.manual_seed(0)
    dropped = head(x)
    # training: a fresh mask per call, the kept features scaled by 1 / (1 - 0.5)
    torch.manual_seed(0)
    mask = torch.nn.functional.dropout(torch.ones_like(z), 0.5, training=True)
    head.net.eval()  # the MLP's own dropout off, so only the input mask differs
    torch.manual_seed(0)
    assert torch.allclose(head(x), head.net(z * mask), atol=1e-6)
    head.eval()
    # inference: no dropout, encode() is deterministic and equals the bare head
    assert torch.allclose(head(x), head.net(z), atol=1e-6)
    assert not torch.allclose(dropped, head(x))
    np.testing.assert_array_equal(model.encode("image", p["image"][:16]), model.encode("image", p["image"][:16]))
    model.save(tmp_path / "m")
    loaded = js.load_model(tmp_path / "m")
    assert loaded.get_config()["input_dropout"] == 0.5 and loaded.get_config()["val_average"] == "group"
    np.testing.assert_allclose(loaded.encode("image", p["image"][:16]), model.encode("image", p["image"][:16]),
                               atol=1e-6)


def test_openclipart_rows_have_the_report_format():
    from jointspace.bench._contrastive import openclipart_contrastive_rows

    def part(seed, n):
        p = _pairs(n, seed=seed)
        return js.Pairs({"image": p["image"], "text": p["text"]},
                        metadata={"title_key": [f"title {i % (n // 3)}" for i in range(n)]})

    data = {"train": part(0, 120), "val": part(1, 30), "test": part(2, 30)}
    rows = openclipart_contrastive_rows(variants=["clip (linear heads)"], data=data, epochs=2, batch_size=32,
                                        dim=8, hidden=16)
    assert len(rows) == 1 and rows[0]["method"] == "clip (linear heads)"
    for key in ("text->image/R@10", "text->image/mAP", "image->text/R@10", "image->text/mAP"):
        assert 0.0 <= rows[0][key] <= 1.0
    # several seeds: each metric is the mean of the single-seed rows
    small = dict(epochs=2, batch_size=32, dim=8, hidden=16)
    one = [openclipart_contrastive_rows(variants=["clip (linear heads)"], data=data, seeds=(s,), **small)[0]
           for s in (0, 1)]
    both = openclipart_contrastive_rows(variants=["clip (linear heads)"], data=data, seeds=(0, 1), **small)[0]
    for key in ("text->image/R@10", "image->text/mAP"):
        assert both[key] == pytest.approx((one[0][key] + one[1][key]) / 2)
    assert both["text->image/R@10 sd"] == pytest.approx(abs(one[0]["text->image/R@10"] - one[1]["text->image/R@10"]) / 2)
    assert "per seed" in both["settings"]
    # an "ensemble" of one member is the single model of its seed; CSLS re-ranks the same embeddings
    from jointspace.bench._contrastive import openclipart_ensemble_rows

    plain, csls = openclipart_ensemble_rows("clip (linear heads)", n_members=1, starts=(1,), k=5, data=data, **small)
    assert plain["method"] == "clip (linear heads), ensemble of 1" and csls["method"].endswith("+ CSLS (k=5)")
    for key in ("text->image/R@10", "image->text/mAP", "text->image/pair-R@1"):
        assert plain[key] == pytest.approx(one[1][key])
        assert 0.0 <= csls[key] <= 1.0
    two = openclipart_ensemble_rows("clip (linear heads)", n_members=1, starts=(0, 1), k=5, data=data, **small)
    assert two[0]["text->image/R@10"] == pytest.approx(both["text->image/R@10"])
    assert "per ensemble" in two[1]["settings"]


def test_the_ensemble_variant_is_chosen_on_validation_recall():
    from jointspace.bench._contrastive import choose_variant, fit_openclipart, openclipart_contrastive_rows

    def part(seed, n):
        p = _pairs(n, seed=seed)
        return js.Pairs({"image": p["image"], "text": p["text"]},
                        metadata={"title_key": [f"title {i % (n // 3)}" for i in range(n)]})

    data = {"train": part(0, 120), "val": part(1, 30), "test": part(2, 30)}
    small = dict(epochs=2, batch_size=32, dim=8, hidden=16)
    rows = openclipart_contrastive_rows(variants=["clip (linear heads)", "clip (MLP heads)"], data=data,
                                        seeds=(0, 1), **small)
    # each row's validation recall is the mean of its runs' best early-stopping figure
    for row in rows:
        runs = [fit_openclipart(row["method"], data=data, seed=s, **small).train_result_.best_metric for s in (0, 1)]
        assert row["val_recall"] == pytest.approx(np.mean(runs))
    assert choose_variant(rows) == max(rows, key=lambda r: r["val_recall"])["method"]
    # the choice reads validation recall only: test figures that say otherwise do not move it
    fake = [{"method": "a", "val_recall": 0.2, "text->image/R@10": 0.9},
            {"method": "b", "val_recall": 0.5, "text->image/R@10": 0.1}]
    assert choose_variant(fake) == "b"
    with pytest.raises(InputError, match="val_recall"):
        choose_variant([{"method": "a", "text->image/R@10": 0.9}])


def test_refit_ensemble_rows_train_on_train_and_val_without_early_stopping():
    from jointspace.data import concat_pairs
    from jointspace.bench._contrastive import DEFAULT_TRAINING, openclipart_ensemble_rows, openclipart_test_metrics

    def part(seed, n, first_id):
        p = _pairs(n, seed=seed)
        return js.Pairs({"image": p["image"], "text": p["text"]}, ids=np.arange(first_id, first_id + n),
                        metadata={"title_key": [f"title {seed} {i % (n // 3)}" for i in range(n)]})

    data = {"train": part(0, 90, 0), "val": part(1, 30, 90), "test": part(2, 30, 120)}
    small = dict(epochs=3, batch_size=32, dim=8, hidden=16)
    plain, csls = openclipart_ensemble_rows("clip (linear heads)", n_members=1, starts=(2,), k=5, data=data,
                                            refit=True, **small)
    assert plain["method"] == "clip (linear heads), ensemble of 1, refit on train+val"
    # the same as one model of that seed fitted on train + val, every epoch run, CSLS bank train + val
    trainval = concat_pairs([data["train"], data["val"]])
    params = {**DEFAULT_TRAINING, "head": "linear", "loss": "clip", "relevance": "title_key", **small}
    model = js.create_model("clip", **{**params, "seed": 2, "patience": None, "val_fraction": 0.0}).fit(trainval)
    assert model.train_result_.epochs_run == 3 and model.train_result_.best_epoch is None
    z = {m: model.encode(m, data["test"][m]) for m in ("image", "text")}
    bank = {m: model.encode(m, trainval[m]) for m in ("image", "text")}
    want_plain = openclipart_test_metrics(z, data["test"])
    want_csls = openclipart_test_metrics(z, data["test"], bank, 5)
    for key in ("text->image/R@10", "image->text/mAP", "text->image/pair-R@1"):
        assert plain[key] == pytest.approx(want_plain[key])
        assert csls[key] == pytest.approx(want_csls[key])


def test_raw_kind_says_which_modalities_take_raw_items():
    # Features of the default towers' sizes (MiniLM 384, EfficientNet-Lite0 1280): raw texts and
    # images go through those towers; features of another size have no tower behind them.
    rng = np.random.default_rng(0)
    p = js.Pairs({"image": rng.normal(size=(24, 1280)).astype(np.float32),
                  "text": rng.normal(size=(24, 10)).astype(np.float32)})
    model = js.create_model("clip", **FAST).fit(p)
    assert model.raw_kind("image") == "image"
    assert model.raw_kind("text") is None and model.raw_kind("text", match_dims=False) == "text"
    assert model.raw_kind("audio") is None
    cca = js.create_model("cca", n_components=2).fit(p)
    assert cca.raw_kind("image") is None


@pytest.mark.parametrize("tau", [0.005, 2.0])
def test_a_temperature_training_would_move_is_refused(tau):
    # the logit scale 1/tau is clamped to [1, 100] after each step: tau=0.005 trained at 0.01, tau=2 at 1
    with pytest.raises(InputError, match=r"^tau: expected a temperature in \[0\.01, 1\]"):
        DualEncoder(dim=4, epochs=1, tau=tau, learn_tau=False).fit(_pairs(60))


@pytest.mark.parametrize("tau", [0.01, 1.0])
def test_the_temperature_bounds_are_kept_when_fixed(tau):
    model = DualEncoder(dim=4, epochs=1, batch_size=32, tau=tau, learn_tau=False).fit(_pairs(60))
    assert model.temperature_ == pytest.approx(tau, rel=1e-6)


def test_training_features_are_unit_norm_under_bf16_autocast():
    # the rows the contrastive loss sees are normalised in float32 (as encode does), not in
    # bf16, whose norms missed 1 by up to ~0.5% (0.5 of a logit at 1/tau = 100)
    from jointspace.models._dual_encoder_nets import DualEncoderNet

    torch.manual_seed(0)
    net = DualEncoderNet({"image": 16, "text": 12}, dim=8)
    batch = {"image": torch.randn(256, 16), "text": torch.randn(256, 12)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(batch)
        heads = {m: net.head_output(m, x) for m, x in batch.items()}
    for m, z in out.items():
        assert z.dtype == torch.float32
        h = heads[m].detach().double().numpy()
        want = h / np.sqrt((h ** 2).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(z.detach().numpy(), want, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(z.detach().double().numpy(), axis=1), 1.0, atol=1e-6)
