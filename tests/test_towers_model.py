"""ToweredModel: frozen towers + a CCA head, fit / encode raw items / save-load / settings search."""

import json

import numpy as np
import pytest

from jointspace.data.pairs import Pairs
from jointspace.errors import InputError
from jointspace.models.base import load_model
from jointspace.models.towered import ToweredModel, fit_with_towers, recall_at_k

COLOURS = {"red": (220, 20, 20), "green": (20, 180, 40), "blue": (30, 40, 220), "yellow": (240, 230, 30),
           "black": (0, 0, 0), "white": (250, 250, 250), "orange": (250, 140, 0), "purple": (130, 30, 160),
           "grey": (128, 128, 128), "brown": (120, 70, 20), "pink": (250, 160, 200), "cyan": (30, 220, 230)}

# a small network input keeps the test fast; the model logic does not depend on it
SMALL = {"image": {"image_size": 64}}


def _pairs(shapes=("square", "picture")):
    rng = np.random.default_rng(0)
    imgs, texts, keys = [], [], []
    for name, rgb in COLOURS.items():
        for shape in shapes:
            img = np.empty((32, 32, 3), np.uint8)
            img[:] = np.clip(np.array(rgb) + rng.integers(-10, 10, 3), 0, 255)
            imgs.append(img)
            texts.append(f"a {name} {shape}")
            keys.append(name)
    return Pairs({"image": np.stack(imgs), "text": texts}, metadata={"colour": keys})


@pytest.fixture(scope="module")
def data():
    return _pairs()


def test_fit_encode_raw_items_and_save_load(tmp_path, data, monkeypatch):
    from jointspace.towers.runtime import default_runtime

    model = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"}, head="rcca",
                         head_params={"n_components": 8, "reg": 0.1, "preprocess": {"image": "pca:16"}},
                         tower_params=SMALL, cache=str(tmp_path / "cache"))
    model.fit(data)
    assert model.modalities_ == ("image", "text")
    zt = model.encode("text", ["a red square", "a blue picture"])
    zi = model.encode("image", [data["image"][0]])
    assert zt.shape == (2, 8) and zi.shape == (1, 8) and zt.dtype == np.float32
    # encoding raw items == tower features projected by the head
    feats = model.embed("text", ["a red square", "a blue picture"], cache=False)
    assert np.allclose(zt, model.head_.encode("text", feats), atol=1e-5)
    # fitted on the same pairs, each text finds its own colour among the images
    z_img = model.encode("image", data["image"])
    z_txt = model.encode("text", data["text"])
    keys = np.asarray(data.metadata["colour"])
    assert recall_at_k(z_txt, z_img, keys, keys, k=2) > 0.8
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model"] == "towers" and cfg["params"]["towers"] == {"image": "efficientnet-lite0", "text": "minilm"}
    runtime = default_runtime()
    assert cfg["params"]["tower_params"]["image"] == {"image_size": 64, "fit": "pad", "runtime": runtime}
    assert cfg["params"]["tower_params"]["text"] == {"max_seq_length": 256, "runtime": runtime}
    assert (tmp_path / "m" / "state.safetensors").stat().st_size < 200_000  # head only, no network weights
    # the saved runtime is the one searched with, whatever the default of the loading process
    monkeypatch.setenv("JOINTSPACE_RUNTIME", "torch" if runtime == "onnx" else "onnx")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, ToweredModel)
    assert loaded.tower("image").runtime == loaded.tower("text").runtime == runtime
    assert np.allclose(loaded.encode("text", ["a red square", "a blue picture"]), zt, atol=1e-6)


def test_fit_with_towers_chooses_settings_on_validation(tmp_path, data):
    val = _pairs(shapes=("drawing",))
    model, report = fit_with_towers(data, {"image": "efficientnet-lite0", "text": "minilm"}, head="rcca",
                                    val_pairs=val, relevance="colour", cache=str(tmp_path / "c"),
                                    tower_params=SMALL,
                                    grid={"pca": [8, 16], "reg": [0.01, 0.3], "n_components": [4, 8],
                                          "weight": [0.0, 1.0]})
    assert len([t for t in report["trials"] if "score" in t]) == 16
    best = report["best"]
    assert best["score"] == max(t["score"] for t in report["trials"] if "score" in t)
    assert model.head_params["n_components"] == best["head_params"]["n_components"]
    assert model.head_.n_components == best["head_params"]["n_components"]
    # the report's score is what the refitted model gets on the validation split
    zi, zt = model.encode("image", val["image"]), model.encode("text", val["text"])
    keys = np.asarray(val.metadata["colour"])
    again = np.mean([recall_at_k(zt, zi, keys, keys), recall_at_k(zi, zt, keys, keys)])
    assert again == pytest.approx(best["score"], abs=1e-9)


def test_settings_given_are_kept_and_only_the_others_searched(tmp_path, data):
    val = _pairs(shapes=("drawing",))
    grid = {"pca": [8, 16], "reg": [0.01, 0.3], "n_components": [4, 8], "weight": [0.0, 1.0]}
    model, report = fit_with_towers(data, {"image": "efficientnet-lite0", "text": "minilm"}, head="rcca",
                                    head_params={"n_components": 3, "reg": 0.5}, val_pairs=val,
                                    relevance="colour", cache=str(tmp_path / "c"), tower_params=SMALL, grid=grid)
    scored = [t for t in report["trials"] if "score" in t]
    # 2 PCA sizes x 2 weights searched; the ridge and the size are the ones given
    assert len(scored) == 4
    assert {t["reg"] for t in scored} == {0.5} and {t["n_components"] for t in scored} == {3}
    assert model.head_.n_components == 3 and model.head_.reg == 0.5
    # a fixed preprocessing is not searched either
    _, report = fit_with_towers(data, {"image": "efficientnet-lite0", "text": "minilm"}, head="cca",
                                head_params={"preprocess": {"image": "pca:8", "text": "pca:8"}, "weight": 1.0},
                                val_pairs=val, relevance="colour", cache=str(tmp_path / "c"), tower_params=SMALL,
                                grid=grid)
    scored = [t for t in report["trials"] if "score" in t]
    assert len(scored) == 2 and {t["weight"] for t in scored} == {1.0}
    assert report["best"]["head_params"]["preprocess"] == {"image": "pca:8", "text": "pca:8"}


def test_recall_at_k_by_hand():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = np.array([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    # query 0 -> gallery 0 first; query 1 -> gallery 1 first; query 2 ranks 0/1 first, its key is g[2]
    assert recall_at_k(q, g, ["a", "b", "c"], ["a", "b", "c"], k=1) == pytest.approx(2 / 3)
    assert recall_at_k(q, g, ["a", "b", "c"], ["a", "b", "c"], k=3) == 1.0


def test_bad_tower_settings():
    with pytest.raises(InputError, match="handles image items; it was asked for 'text'"):
        ToweredModel(towers={"text": "efficientnet-lite0", "image": "minilm"})
    with pytest.raises(InputError, match="towers"):
        ToweredModel(towers={})
    m = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"})
    with pytest.raises(InputError, match="at least two"):
        m.embed_pairs(Pairs({"text": ["a", "b"]}))


def test_cca_components_capped_by_a_low_rank_text_view(tmp_path):
    # four words spoken as four tones: the text view has rank 3 once centred
    rng = np.random.default_rng(0)
    words = {"low": 220.0, "middle": 440.0, "high": 880.0, "very high": 1760.0}
    clips, texts = [], []
    for w, f in words.items():
        for _ in range(6):
            t = np.arange(3200) / 16000
            clips.append((0.3 * np.sin(2 * np.pi * f * (1 + rng.normal(0, 0.01)) * t)
                          + rng.normal(0, 0.01, t.size)).astype(np.float32))
            texts.append(w)
    pairs = Pairs({"audio": clips, "text": texts}, labels=np.repeat(np.arange(4), 6))
    train, val = pairs.subset(np.arange(24) % 3 != 0), pairs.subset(np.arange(24) % 3 == 0)
    model, report = fit_with_towers(train, {"audio": "mfcc", "text": "minilm"}, head="cca", val_pairs=val,
                                    relevance="label", cache=False, k=1, directions=[("audio", "text")],
                                    grid={"pca": [8], "n_components": [2, 16], "weight": [0.0]})
    assert {t["n_components"] for t in report["trials"] if "score" in t} == {2, 3}
    z_audio = model.encode("audio", val["audio"])
    z_text = model.encode("text", val["text"])
    keys = val.labels
    assert recall_at_k(z_audio, z_text, keys, keys, k=1) == pytest.approx(report["best"]["score"])
    assert report["best"]["score"] >= 0.75


@pytest.mark.parametrize("kwargs, match", [
    ({"towers": ["efficientnet-lite0", "minilm"]}, r"^towers: expected a mapping modality -> tower name, .*got list"),
    ({"towers": "minilm"}, r"^towers: expected a mapping modality -> tower name, .*got str 'minilm'$"),
    ({"head_params": [("n_components", 2)]}, r"^head_params: expected parameters of the head 'cca', .*got list"),
    ({"head_params": "n_components=2"}, r"^head_params: expected parameters of the head 'cca', .*got str"),
    ({"tower_params": ["image"]}, r"^tower_params: expected a dict of tower settings per modality, got list"),
    ({"tower_params": {"image": 64}}, r"^tower_params\['image'\]: expected the settings of the 'image' tower, "
                                      r".*got int 64$"),
])
def test_head_and_tower_params_that_are_no_dict_are_named(kwargs, match):
    with pytest.raises(InputError, match=match):
        ToweredModel(**{"towers": {"image": "efficientnet-lite0", "text": "minilm"}, **kwargs})


@pytest.mark.parametrize("head, head_params, match", [
    ("no-such-model", {}, r"^head: expected a registered model \(.*cca.*\), got 'no-such-model'$"),
    ("rcca", {"no_such_parameter": 1}, r"^model 'rcca': unknown parameter 'no_such_parameter'"),
])
def test_a_bad_head_is_refused_before_the_towers_run(monkeypatch, data, head, head_params, match):
    model = ToweredModel(towers={"image": "efficientnet-lite0", "text": "minilm"}, head=head,
                         head_params=head_params, cache=False)

    def embedded(*args, **kwargs):
        raise AssertionError("the towers ran before the head was checked")

    monkeypatch.setattr(ToweredModel, "embed", embedded)
    with pytest.raises(InputError, match=match):
        model.fit(data)
    with pytest.raises(InputError, match=match):
        fit_with_towers(data, model.towers, head=head, head_params=head_params, cache=False, n_folds=2)
