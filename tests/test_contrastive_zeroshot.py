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


def test_fill_template_with_escaped_braces_fixes_the_article_before_the_placeholder():
    assert fill_template("{{x}} a {}", "apple") == "{x} an apple"
    assert fill_template("a {{}} a {}", "owl") == "a {} an owl"
    assert fill_template("a {{}} a {}", "cat") == "a {} a cat"
    assert fill_template("{{a }}{}", "owl") == "{a }owl"          # "a " then a brace: no article
    assert fill_template("A {}!", "egg") == "An egg!"
    assert fill_template("banana {}", "apple") == "banana apple"   # "a" ends a word, is not one
    with pytest.raises(InputError, match="template: expected each template to hold exactly one"):
        fill_template("{} {}", "owl")


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


def test_zeroshot_inputs_are_checked():
    vec = {"x": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}
    names, emb = ["x", "y", "z"], np.eye(3, dtype=np.float32)

    def classify(labels=(0, 1, 2), image_embeddings=emb, **kw):
        return zeroshot_classify(_Lookup(vec), None, np.asarray(labels, dtype=np.int64), names, "name",
                                 image_embeddings=image_embeddings, **kw)

    assert classify()["top1"] == 1.0
    nan = emb.copy()
    nan[1, 0] = np.nan                       # would be predicted as class 0 and miscounted
    with pytest.raises(InputError, match=r"image_embeddings: expected finite values, got NaN or Inf "
                                         r"\(first at row 1, column 0\)"):
        classify(image_embeddings=nan)
    with pytest.raises(InputError, match=r"image_embeddings: expected embeddings with 3 columns like the class "
                                         r"prompts' embeddings, got shape \(3, 2\)"):
        classify(image_embeddings=emb[:, :2])
    with pytest.raises(InputError, match="labels: expected at least one labelled image, got none"):
        classify(labels=[], image_embeddings=np.zeros((0, 3)))
    with pytest.raises(InputError, match="image_embeddings: expected at least 1 rows, got 0"):
        classify(labels=[0], image_embeddings=np.zeros((0, 3)))
    with pytest.raises(InputError, match="image_embeddings: expected a 2-D array"):
        classify(labels=[0], image_embeddings=np.ones(3))
    with pytest.raises(InputError, match="ks: expected an integer >= 1, got 0"):
        classify(ks=(0,))
    images = np.array([[1.0, 0, 0], [np.nan, 1, 0]])
    with pytest.raises(InputError, match=r"model.encode\('image'\) \(the image embeddings\): expected finite"):
        zeroshot_classify(_Lookup(vec), images, [0, 1], names, "name")


def test_a_nan_class_embedding_is_refused_not_left_unpredicted():
    """Class y's prompt embeds to NaN: its score against every image was NaN, sorted last, so
    y was never predicted and its images were counted as misclassified (top1 2/3)."""
    vec = {"x": [1.0, 0.0, 0.0], "y": [np.nan, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}
    with pytest.raises(InputError, match=r"^model.encode\('text'\) \(the class prompts' embeddings\): expected "
                                         r"finite values, got NaN or Inf \(first at row 1, column 0\)"):
        zeroshot_classify(_Lookup(vec), None, np.array([0, 1, 2]), ["x", "y", "z"], "name",
                          image_embeddings=np.eye(3, dtype=np.float32))
    with pytest.raises(InputError, match=r"^model.encode\('text'\)"):
        class_embeddings(_Lookup(vec), ["x", "y"], "name")


def test_a_repeated_class_name_is_refused_as_it_could_never_be_predicted():
    vec = {"x": [1.0, 0.0], "y": [0.0, 1.0]}
    images = np.array([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0]], np.float32)
    # class 2 has the prompts, and so the vector, of class 0: it ties and loses every time
    with pytest.raises(InputError, match="class_names: expected distinct class names, got 'x' for classes 0 and 2"):
        zeroshot_classify(_Lookup(vec), images, [0, 2, 1], ["x", "y", "x"], "name")
    with pytest.raises(InputError, match="class_names: expected distinct class names, got 'y' for classes 1 and 2"):
        class_embeddings(_Lookup(vec), ["x", "y", "y"], "name")
    assert zeroshot_classify(_Lookup(vec), images, [0, 0, 1], ["x", "y"], "name")["top1"] == 1.0


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
    # the stand-ins' sizes are not the default towers', so say a tower reads the raw items
    monkeypatch.setattr(DualEncoder, "raw_kind", lambda self, modality, match_dims=True: modality)
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
    # 5 samples leave classes without any: their accuracy is null, never a bare NaN (invalid JSON)
    assert main(["zeroshot", str(tmp_path / "m"), "--dataset", "fashion-mnist", "--limit", "5",
                 "--templates", "single", "--json"]) == 0

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    out = json.loads(capsys.readouterr().out, parse_constant=refuse)
    present = set(js.load_dataset("fashion-mnist", "test", limit=5).labels.tolist())
    assert list(out["results"]) == ["single template"] and out["results"]["single template"]["n_templates"] == 1
    per_class = out["results"]["single template"]["per_class"]
    assert len(per_class) == 10 and len(present) < 10
    assert [c for c, v in enumerate(per_class) if v is None] == sorted(set(range(10)) - present)
    assert all(isinstance(per_class[c], float) for c in present)
    # the table says so too: "-" for those classes, a percentage for the others
    assert main(["zeroshot", str(tmp_path / "m"), "--dataset", "fashion-mnist", "--limit", "5",
                 "--templates", "single"]) == 0
    table = capsys.readouterr().out
    assert "nan" not in table.lower()
    for c, word in enumerate(["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                              "bag", "ankle boot"]):
        row = next(line for line in table.splitlines() if line.startswith(f"│ {word} "))
        assert (row.split("│")[2].strip() == "-") == (c not in present), row
    assert main(["zeroshot", str(tmp_path / "m"), "--limit", "50", "--confusion", "--invert"]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "per-class accuracy" in text and "ankle boot" in text
    assert "confusion of the ensemble prompts (rows: true, columns: predicted)" in " ".join(text.split())
    assert main(["zeroshot", str(tmp_path / "m"), "--templates", "nothing"]) == 2
