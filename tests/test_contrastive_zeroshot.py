"""Zero-shot classification: prompt ensembling, accuracies, confusion matrix, and the CLI."""

import json
import zlib

import numpy as np
import pytest
import torch

import jointspace as js
from jointspace.cli import main
from jointspace.errors import InputError
from jointspace.eval.zeroshot import class_embeddings, fill_template, resolve_templates, zeroshot_classify
from jointspace.models.dual_encoder import DualEncoder

torch.set_num_threads(1)


class _Lookup:
    """A stand-in joint model: texts and images map to given vectors."""

    modalities_ = ("image", "text")

    def __init__(self, text_vectors: dict):
        self.text_vectors = text_vectors

    def encode(self, modality, items, normalize=True):
        z = np.array([self.text_vectors[t] for t in items], dtype=np.float32) if modality == "text" \
            else np.asarray(items, np.float32)
        return z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z


def test_fill_template_fixes_articles():
    assert fill_template("a photo of a {}.", "ankle boot") == "a photo of an ankle boot."
    assert fill_template("a photo of a {}.", "bag") == "a photo of a bag."
    assert fill_template("a {}.", "owl") == "an owl."
    assert fill_template("{}", "owl") == "owl"
    assert resolve_templates("single") == ("a photo of a {}.",)
    with pytest.raises(InputError, match="templates"):
        resolve_templates("no placeholder")
    with pytest.raises(InputError, match="exactly one"):
        resolve_templates(["{} and {}"])


def test_prompt_ensemble_is_the_renormalised_mean_of_normalised_prompts():
    temps = ["a {}", "the {}"]
    vec = {"a cat": [3.0, 0.0], "the cat": [1.0, 1.0], "a dog": [0.0, 2.0], "the dog": [-1.0, 1.0]}
    w = class_embeddings(_Lookup(vec), ["cat", "dog"], temps)
    cat = np.array([1.0, 0.0]) + np.array([1.0, 1.0]) / np.sqrt(2)
    dog = np.array([0.0, 1.0]) + np.array([-1.0, 1.0]) / np.sqrt(2)
    np.testing.assert_allclose(w, np.stack([cat / np.linalg.norm(cat), dog / np.linalg.norm(dog)]), rtol=1e-6)
    single = class_embeddings(_Lookup(vec), ["cat", "dog"], temps, ensemble=False)
    np.testing.assert_allclose(single, [[1.0, 0.0], [0.0, 1.0]], atol=1e-7)


def test_accuracies_confusion_and_per_class():
    vec = {"x": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}
    images = np.array([[1, .1, 0], [.9, 0, .2], [.6, .5, 0], [0, 1, 0], [0, .2, 1], [.1, 0, 1]], np.float32)
    labels = np.array([0, 0, 1, 1, 2, 0])
    r = zeroshot_classify(_Lookup(vec), images, labels, ["x", "y", "z"], "name", ks=(1, 2))
    assert r["predictions"].tolist() == [0, 0, 0, 1, 2, 2]
    assert r["top1"] == pytest.approx(4 / 6)
    # second choices: image 2 -> y (right), image 5 -> x (right)
    assert r["top2"] == pytest.approx(6 / 6)
    assert r["confusion"].tolist() == [[2, 0, 1], [1, 1, 0], [0, 0, 1]]
    np.testing.assert_allclose(r["per_class"], [2 / 3, 1 / 2, 1.0])
    with pytest.raises(InputError, match=r"labels: expected values in \[0, 3\)"):
        zeroshot_classify(_Lookup(vec), images, labels + 1, ["x", "y", "z"], "name")
    with pytest.raises(InputError, match="6 labels"):
        zeroshot_classify(_Lookup(vec), images, labels[:4], ["x", "y", "z"], "name")


def _word_vectors(texts, dim=48):
    out = np.zeros((len(texts), dim), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace(".", " ").split():
            out[i] += np.random.default_rng(zlib.crc32(w.encode())).normal(size=dim)
    return out


def test_zeroshot_cli_on_fashion_mnist(tmp_path, monkeypatch, capsys):
    try:
        train = js.load_dataset("fashion-mnist", "train", limit=1500)
    except js.MissingDependencyError as exc:
        pytest.fail(f"fashion-mnist is part of the test environment: {exc}")

    def features(self, modality, items, name="items"):  # cheap stand-in towers
        if modality == "text":
            return _word_vectors(list(items))
        return np.asarray(items, np.float32).reshape(len(items), -1) / 255.0

    monkeypatch.setattr(DualEncoder, "features", features)
    model = js.create_model("clip", dim=32, epochs=8, batch_size=100, lr=3e-3, val_fraction=0.0, head="linear",
                            loss="supervised", relevance="label").fit(train)
    model.save(tmp_path / "m")
    assert main(["zeroshot", str(tmp_path / "m"), "--dataset", "fashion-mnist", "--limit", "300",
                 "--templates", "default", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    res = out["results"]
    assert set(res) == {"ensemble", "single template"} and res["ensemble"]["n_templates"] == 10
    assert res["single template"]["top1"] > 0.3  # chance is 0.1
    assert np.asarray(res["ensemble"]["confusion"]).sum() == 300
    assert main(["zeroshot", str(tmp_path / "m"), "--limit", "50", "--confusion", "--invert"]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "per-class accuracy" in text and "ankle boot" in text
    assert main(["zeroshot", str(tmp_path / "m"), "--templates", "nothing"]) == 2
