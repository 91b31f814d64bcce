"""Saving and loading a fitted FusionClassifier: the loaded one predicts exactly as the saved one."""

import json

import numpy as np
import pytest

from jointspace.data.pairs import Pairs
from jointspace.errors import InputError, NotFittedError
from jointspace.models.fusion import FUSIONS, FusionClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = {"epochs": 5, "hidden": 16}


def _pairs(n, seed, labels=("x", "y", "z")):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(labels), n)
    a = rng.normal(size=(len(labels), 6))[y] * 3 + rng.normal(size=(n, 6))
    b = rng.normal(size=(len(labels), 4))[y] * 2 + rng.normal(size=(n, 4))
    return Pairs({"a": a.astype(np.float32), "b": b.astype(np.float32)}, labels=np.asarray(labels)[y])


@pytest.fixture(scope="module")
def data():
    return _pairs(150, 0), _pairs(40, 1)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_loaded_classifier_predicts_exactly_as_the_saved_one(fusion, data, tmp_path):
    train, test = data
    clf = FusionClassifier(fusion=fusion, seed=3, **FAST).fit(train)
    clf.save(tmp_path / "clf")
    back = FusionClassifier.load(tmp_path / "clf")
    subsets = [("a", "b")] if fusion == "early" else [("a", "b"), ("a",), ("b",)]
    for names in subsets:
        items = {m: test[m] for m in names}
        p0, w0 = clf.predict_proba(items, return_weights=True)
        p1, w1 = back.predict_proba(items, return_weights=True)
        np.testing.assert_array_equal(p1, p0)
        np.testing.assert_array_equal(w1, w0)
        np.testing.assert_array_equal(back.predict(items), clf.predict(items))
    assert back.classes_.dtype == clf.classes_.dtype and list(back.classes_) == ["x", "y", "z"]
    assert back.modalities_ == ["a", "b"] and back.in_dims_ == {"a": 6, "b": 4}
    assert (back.fusion, back.hidden, back.seed, back.epochs) == (fusion, 16, 3, 5)


@pytest.mark.parametrize("labels", [(0, 1, 7), (True, False), (0.5, 2.5, -1.0)])
def test_class_labels_keep_their_values_and_dtype(labels, tmp_path):
    train = _pairs(60, 0, labels)
    clf = FusionClassifier(fusion="mean").fit(train)
    back = FusionClassifier.load(clf.save(tmp_path / "m"))
    assert back.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_array_equal(back.predict({"a": train["a"]}), clf.predict({"a": train["a"]}))


def test_saving_again_replaces_the_classifier_and_nothing_else(data, tmp_path):
    train, test = data
    FusionClassifier(fusion="mean").fit(train).save(tmp_path / "m")
    product = FusionClassifier(fusion="product").fit(train)
    product.save(tmp_path / "m")
    assert FusionClassifier.load(tmp_path / "m").fusion == "product"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="path"):
        product.save(other)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(NotFittedError):
        FusionClassifier().save(tmp_path / "unfitted")
    assert not (tmp_path / "unfitted").exists()


def test_bad_folders_are_refused_naming_what_they_hold(data, tmp_path):
    from jointspace import load_model
    from jointspace.models.cca import CCA

    train, _ = data
    clf = FusionClassifier(fusion="mean").fit(train)
    clf.save(tmp_path / "fusion")
    with pytest.raises(InputError, match="holds a saved fusion classifier .*FusionClassifier.load"):
        load_model(tmp_path / "fusion")
    CCA(n_components=2).fit(train).save(tmp_path / "cca")
    with pytest.raises(InputError, match="holds a saved 'cca' model, not a fusion classifier"):
        FusionClassifier.load(tmp_path / "cca")
    with pytest.raises(InputError, match="path: expected a saved fusion classifier folder"):
        FusionClassifier.load(tmp_path / "missing")
    with pytest.raises(InputError, match="path"):
        clf.save(tmp_path / "cca")     # a joint model is not replaced by a classifier
    assert load_model(tmp_path / "cca") is not None


def test_damaged_arrays_are_refused_at_load(data, tmp_path):
    from safetensors.numpy import load_file, save_file

    train, _ = data
    clf = FusionClassifier(fusion="attention", **FAST).fit(train)
    folder = clf.save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["params"]["colour"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="unknown key.*'colour'"):
        FusionClassifier.load(folder)
    folder = clf.save(tmp_path / "m")
    state = load_file(str(folder / "state.safetensors"))
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key].copy()
    state[key].flat[0] = np.nan
    save_file(state, str(folder / "state.safetensors"))
    with pytest.raises(InputError, match=f"array '{key}' holds 1 NaN"):
        FusionClassifier.load(folder)


@pytest.mark.parametrize("fusion", ["mean", "stacking", "attention"])
@pytest.mark.parametrize("edit, field", [
    (lambda e: e["classes"]["values"].append("w"), "extra.classes"),        # a class the arrays lack
    (lambda e: e["classes"]["values"].pop(), "extra.classes"),              # one class too few
    (lambda e: e["classes"].update(dtype="<U1"), "extra.classes"),          # 'yy' would load as 'y'
    (lambda e: e["classes"].update(values=["x", "x", "y"]), "extra.classes"),
    (lambda e: e["classes"].update(values=["x", 1, None]), "extra.classes"),
    (lambda e: e["classes"].update(values="xyz"), "extra.classes"),
    (lambda e: e["in_dims"].update(a=7), "extra.in_dims"),
])
def test_an_edited_config_that_disagrees_with_the_arrays_is_refused(fusion, edit, field, tmp_path):
    train = _pairs(90, 0, labels=("x", "yy", "zzz"))
    folder = FusionClassifier(fusion=fusion, **FAST).fit(train).save(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    edit(config["extra"])
    (folder / "config.json").write_text(json.dumps(config))
    if fusion == "attention":   # a class or feature count the network's arrays do not fit: refused by them
        field = f"({field}|do not hold a fusion classifier)"
    with pytest.raises(InputError, match=f"^path: .*config.json.*{field}"):
        FusionClassifier.load(folder)


def test_bytes_class_labels_are_saved_and_loaded(tmp_path):
    train = _pairs(60, 0, (b"a", b"\xff\x00b", b"c c"))
    clf = FusionClassifier(fusion="mean").fit(train)
    back = FusionClassifier.load(clf.save(tmp_path / "m"))
    assert back.classes_.dtype == clf.classes_.dtype == np.dtype("S3")
    assert back.classes_.tolist() == clf.classes_.tolist() == [b"a", b"c c", b"\xff\x00b"]
    np.testing.assert_array_equal(back.predict({"a": train["a"]}), clf.predict({"a": train["a"]}))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["extra"]["classes"]["dtype"] = "|S1"     # would load b'c c' as b'c'
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="^path: .*config.json field 'extra.classes'"):
        FusionClassifier.load(tmp_path / "m")


@pytest.mark.parametrize("fusion", ["weighted", "stacking"])
def test_member_class_indices_outside_the_classes_are_refused(fusion, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = FusionClassifier(fusion=fusion).fit(_pairs(90, 0)).save(tmp_path / "m")
    state = load_file(str(folder / "state.safetensors"))
    state["member.0.classes"] = state["member.0.classes"] + 5     # indices 5..7 of 3 classes
    save_file(state, str(folder / "state.safetensors"))
    with pytest.raises(InputError, match=r"state.safetensors array 'member.0.classes': expected increasing class "
                                         r"indices in 0..2 .*got \[5, 6, 7\]"):
        FusionClassifier.load(folder)
