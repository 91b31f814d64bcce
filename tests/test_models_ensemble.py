"""The seed ensemble: members are the single models of their seeds; similarities average."""

import numpy as np
import pytest
import torch

import jointspace as js
from jointspace.errors import InputError
from jointspace.models.ensemble import SeedEnsemble

torch.set_num_threads(1)

FAST = dict(dim=6, head="mlp", hidden=16, epochs=4, batch_size=32, lr=3e-3, val_fraction=0.0)


def _pairs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    img = (z @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(n, 10))).astype(np.float32)
    txt = (z @ rng.normal(size=(3, 7)) + 0.1 * rng.normal(size=(n, 7))).astype(np.float32)
    return js.Pairs({"image": img, "text": txt})


def test_members_equal_single_models_and_cosines_average(tmp_path):
    pairs = _pairs()
    ens = js.create_model("ensemble", model="clip", n_members=3, params=FAST, seed=5).fit(pairs)
    assert isinstance(ens, SeedEnsemble) and ens.modalities_ == ("image", "text")
    singles = [js.create_model("clip", **FAST, seed=s).fit(pairs) for s in (5, 6, 7)]
    zi, zt = ens.encode("image", pairs["image"]), ens.encode("text", pairs["text"])
    assert zi.shape == (120, 18)
    np.testing.assert_allclose(np.linalg.norm(zt, axis=1), 1.0, rtol=1e-5)
    for j, m in enumerate(singles):
        np.testing.assert_allclose(zt[:, 6 * j:6 * j + 6] * np.sqrt(3), m.encode("text", pairs["text"]), atol=1e-5)
    mean_cos = np.mean([m.encode("text", pairs["text"]) @ m.encode("image", pairs["image"]).T for m in singles], axis=0)
    np.testing.assert_allclose(zt @ zi.T, mean_cos, atol=1e-5)
    # saved and loaded, it encodes the same
    ens.save(tmp_path / "ens")
    loaded = js.load_model(tmp_path / "ens")
    assert isinstance(loaded, SeedEnsemble) and loaded.get_config() == ens.get_config()
    np.testing.assert_allclose(loaded.encode("text", pairs["text"]), zt, atol=1e-6)


def test_val_reaches_every_member():
    train, val = _pairs(160).split(0.25, seed=0)
    ens = SeedEnsemble("clip", n_members=2, params=dict(FAST, patience=2)).fit(train, val=val)
    assert all(m.train_result_.history and "val_recall" in m.train_result_.history[0] for m in ens.members_)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_members": 0}, "n_members: expected an integer >= 1"),
    ({"params": dict(FAST, seed=3)}, "params: leave out 'seed'"),
    ({"params": [1, 2]}, "params: expected a dict"),
    ({"model": "cca", "params": {}}, "takes no seed"),
    ({"model": "no-such-model"}, "no-such-model"),
    # the last member's seed, seed + 1, is past 2**32 - 1: refused before any member trains
    ({"seed": 2**32 - 1}, r"^seed: expected an integer <= 4294967294 \(member j takes the seed seed \+ j, at most "
                          r"4294967295, and there are n_members=2\), got 4294967295$"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        SeedEnsemble(**{"model": "clip", "n_members": 2, "params": FAST, **kwargs}).fit(_pairs())


def test_raw_items_go_through_the_frozen_tower_once(monkeypatch):
    from jointspace.models.dual_encoder import DualEncoder

    pairs = _pairs()
    ens = SeedEnsemble("clip", n_members=3, params=FAST).fit(pairs)
    raw_calls = []
    original = DualEncoder.features

    def spy(self, modality, items, name="items"):
        if isinstance(items, list):  # raw items: stand in for the tower with fixed features
            raw_calls.append(modality)
            return pairs["text"][:len(items)]
        return original(self, modality, items, name)

    monkeypatch.setattr(DualEncoder, "features", spy)
    # the features are not of MiniLM's size, so say a tower reads the texts
    monkeypatch.setattr(DualEncoder, "raw_kind", lambda self, modality, match_dims=True: "text")
    z = ens.encode("text", ["a", "b", "c"])
    assert raw_calls == ["text"]
    np.testing.assert_allclose(z, ens.encode("text", pairs["text"][:3]), atol=1e-6)


def test_members_fit_in_parallel_processes():
    """``n_jobs=2`` fits the members in two worker processes; they are the same models as
    members fitted one after another (to round-off: threads may differ)."""
    train, val = _pairs(160).split(0.25, seed=0)
    params = dict(FAST, patience=2, progress=True)
    one = SeedEnsemble("clip", n_members=3, params=params, seed=2).fit(train, val=val)
    two = SeedEnsemble("clip", n_members=3, params=params, seed=2, n_jobs=2).fit(train, val=val)
    assert [m.seed for m in two.members_] == [2, 3, 4] and all(m.progress for m in two.members_)
    for a, b in zip(one.members_, two.members_):
        assert a.train_result_.best_epoch == b.train_result_.best_epoch
    for m in ("image", "text"):
        np.testing.assert_allclose(two.encode(m, val[m]), one.encode(m, val[m]), atol=1e-4)
    assert two.get_config()["n_jobs"] == 2


@pytest.mark.parametrize("n_jobs, match", [(0, "n_jobs: expected a positive number"),
                                           (-2, "n_jobs: expected an integer >= -1"),
                                           ("two", "n_jobs: expected an integer")])
def test_bad_n_jobs_is_named(n_jobs, match):
    with pytest.raises(InputError, match=match):
        SeedEnsemble("clip", n_members=2, params=FAST, n_jobs=n_jobs).fit(_pairs())


def test_parallel_members_get_frozen_tower_features_computed_once(monkeypatch):
    from jointspace.models.dual_encoder import DualEncoder
    from jointspace.models.ensemble import _frozen_features

    pairs = _pairs()
    texts = [f"caption {i}" for i in range(len(pairs))]
    calls = []

    def tower(self, modality, items, name="items"):
        calls.append(modality)
        return pairs["text"] if isinstance(items, list) else items

    monkeypatch.setattr(DualEncoder, "features", tower)
    member = js.create_model("clip", **FAST)
    out = _frozen_features(member, pairs.with_modality("text", texts))
    assert calls == ["text"]  # only the raw modality; the image features pass through untouched
    assert out["text"] is pairs["text"] and out["image"] is pairs["image"]


def test_a_loaded_ensemble_refits_without_touching_the_run_folder_it_was_trained_in(tmp_path):
    pairs = _pairs(80)
    run = tmp_path / "run"
    ens = SeedEnsemble("clip", n_members=2, params=dict(FAST, epochs=1, run_dir=str(run), progress=True)).fit(pairs)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert any(p.startswith("member1/checkpoints/") for p in before)
    ens.save(tmp_path / "ens")
    loaded = js.load_model(tmp_path / "ens")
    # as a single model's saved config, the ensemble's records neither run_dir nor progress
    assert loaded.params == dict(FAST, epochs=1) and loaded.members_[0].run_dir is None
    loaded.fit(pairs)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
