"""load_model refuses malformed saved model folders with one InputError naming the file and the
field or array (config.json, state.safetensors), never a KeyError / TypeError / numpy error."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import jointspace as js
from jointspace.cli import main
from jointspace.errors import InputError
from jointspace.models.base import SHAPES_KEY, load_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 3))
    x = (z @ rng.normal(size=(3, 9)) + 0.3 * rng.normal(size=(80, 9))).astype(np.float32)
    y = (z @ rng.normal(size=(3, 6)) + 0.3 * rng.normal(size=(80, 6))).astype(np.float32)
    pairs = js.Pairs({"image": x, "text": y})
    js.create_model("cca", n_components=2).fit(pairs).save(root / "cca")
    js.create_model("rcca", n_components=2, preprocess={"image": "standard,pca:5", "text": "ica:4"}).fit(pairs).save(
        root / "rcca_pre")
    js.create_model("clip", dim=4, head="linear", epochs=1, batch_size=32, val_fraction=0.0).fit(pairs).save(
        root / "clip")
    js.create_model("kcca", n_components=2).fit(pairs).save(root / "kcca")
    return root, x


def _copy(saved_models, tmp_path, name):
    root, _ = saved_models
    dst = tmp_path / name
    shutil.copytree(root / name, dst)
    return dst


def _edit_config(folder, fn):
    path = folder / "config.json"
    cfg = fn(json.loads(path.read_text()))
    path.write_text(json.dumps(cfg))


def _edit_state(folder, fn):
    path = folder / "state.safetensors"
    state = load_file(str(path))
    fn(state)
    save_file(state, str(path))


def _drop(key):
    def fn(cfg):
        cfg.pop(key)
        return cfg
    return fn


@pytest.mark.parametrize("name", ["cca", "rcca_pre", "clip", "kcca"])
def test_round_trip_still_loads(saved_models, name):
    root, x = saved_models
    model = load_model(root / name)
    assert model.encode("image", x[:3]).shape[0] == 3
    cfg = json.loads((root / name / "config.json").read_text())
    state = load_file(str(root / name / "state.safetensors"))
    assert {k: v["shape"] for k, v in cfg[SHAPES_KEY].items()} == {k: list(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("edit,words", [
    (_drop("params"), ["config.json", "'params'"]),
    (_drop("modalities"), ["config.json", "'modalities'"]),
    (_drop("model"), ["config.json", "'model'"]),
    (lambda cfg: [1, 2], ["config.json", "JSON object", "array"]),
    (lambda cfg: "cca", ["config.json", "JSON object", "string"]),
    (lambda cfg: {**cfg, "params": {**cfg["params"], "bogus": 1}}, ["config.json", "'params'", "'bogus'",
                                                                     "n_components"]),
    (lambda cfg: {**cfg, "params": [1]}, ["config.json", "'params'", "object"]),
    (lambda cfg: {**cfg, "modalities": "image"}, ["config.json", "'modalities'"]),
    (lambda cfg: {**cfg, "model": "nope"}, ["config.json", "'model'", "unknown model"]),
    (lambda cfg: {**cfg, "extra": []}, ["config.json", "'extra'"]),
    (lambda cfg: {**cfg, "extra": {}}, ["config.json", "'extra'", "n_features_in"]),
    (lambda cfg: {**cfg, SHAPES_KEY: [1]}, ["config.json", SHAPES_KEY]),
])
def test_bad_config_json(saved_models, tmp_path, edit, words):
    folder = _copy(saved_models, tmp_path, "cca")
    _edit_config(folder, edit)
    with pytest.raises(InputError) as err:
        load_model(folder)
    for word in words:
        assert word in str(err.value)


def test_config_json_not_json(saved_models, tmp_path):
    folder = _copy(saved_models, tmp_path, "cca")
    (folder / "config.json").write_text("{nope")
    with pytest.raises(InputError, match=r"config\.json is not valid JSON"):
        load_model(folder)


def test_path_of_wrong_type():
    with pytest.raises(InputError, match="model: expected a saved model folder path, got int"):
        load_model(5)


@pytest.mark.parametrize("name,array,shape", [
    ("cca", "x_mean", (3,)),
    ("cca", "y_weights", (6, 3)),
    ("rcca_pre", "x_pre.1.components_", (5, 8)),
    ("clip", "heads.image.net.weight", (4, 7)),
    ("clip", "heads.text.mean", (2,)),
])
def test_wrong_array_shapes(saved_models, tmp_path, name, array, shape):
    folder = _copy(saved_models, tmp_path, name)
    _edit_state(folder, lambda st: st.update({array: np.zeros(shape, st[array].dtype)}))
    with pytest.raises(InputError) as err:
        load_model(folder)
    msg = str(err.value)
    assert "state.safetensors" in msg and repr(array) in msg and "expected shape" in msg
    assert f"found ({', '.join(map(str, shape))}{',' if len(shape) == 1 else ''})" in msg


def test_config_change_that_the_arrays_do_not_fit(saved_models, tmp_path):
    folder = _copy(saved_models, tmp_path, "clip")
    _edit_config(folder, lambda cfg: {**cfg, "params": {**cfg["params"], "dim": 5}})
    with pytest.raises(InputError, match=r"the arrays of .*state\.safetensors do not fit the model in config\.json"):
        load_model(folder)


@pytest.mark.parametrize("edit,pattern", [
    (lambda st: st.pop("y_mean"), r"state\.safetensors lacks the array 'y_mean'"),
    (lambda st: st.update(extra=np.zeros(2)), r"state\.safetensors has array\(s\) not listed in config\.json: 'extra'"),
    (lambda st: st.update(x_mean=st["x_mean"].astype(np.float32)),
     r"state\.safetensors array 'x_mean': expected dtype float64 .*found float32"),
])
def test_missing_extra_and_retyped_arrays(saved_models, tmp_path, edit, pattern):
    folder = _copy(saved_models, tmp_path, "cca")
    _edit_state(folder, edit)
    with pytest.raises(InputError, match=pattern):
        load_model(folder)


def _set_extra(key, value):
    def fn(cfg):
        cfg["extra"][key] = value
        return cfg
    return fn


def _pca_without_arrays(cfg):
    cfg["extra"]["x_pre"] = [{"class": "PCA", "params": {}, "scalars": {}, "name": "0_pca"}]
    return cfg


@pytest.mark.parametrize("name, edit, pattern", [
    ("cca", _set_extra("n_features_in", "abc"),
     r"config\.json field 'extra' .*n_features_in: expected an integer >= 1, got 'abc'"),
    ("cca", _set_extra("n_features_in", 7),
     r"state\.safetensors do not fit the model in config\.json .*n_features_in: 7 in the config, but the arrays "
     r"of the first view read 9 features"),
    ("cca", _pca_without_arrays,
     r"state\.safetensors do not fit .*x_pre\.0: the PCA step has no array 'x_pre\.0\.components_'"),
    ("rcca_pre", lambda cfg: (cfg["extra"]["x_pre"][0].__setitem__("class", "Bogus"), cfg)[1],
     r"do not fit .*x_pre\.0: unknown step class 'Bogus'"),
    ("rcca_pre", _set_extra("y_pre", "ica"), r"do not fit .*y_pre: expected a list of preprocessing steps"),
    ("cca", lambda cfg: {**cfg, "modalities": ["image", "text", "audio"]},
     r"config\.json field 'modalities': expected 2 names .* got \['image', 'text', 'audio'\]"),
    ("kcca", _set_extra("method", "bogus"),
     r"config\.json field 'extra' .*method: expected one of exact, nystroem, rff; got 'bogus'"),
    ("kcca", _set_extra("kernel_params", [{"kernel": "rbf"}, {"kernel": "rbf"}]),
     r"config\.json field 'extra' .*kernel_params\[0\]: the rbf kernel needs 'gamma'"),
    ("kcca", _set_extra("kernel_params", [{"kernel": "rbf", "gamma": -1.0}, {"kernel": "linear"}]),
     r"config\.json field 'extra' .*kernel_params\[0\]\.gamma: expected a number > 0"),
])
def test_edited_cca_family_config_is_named_at_load(saved_models, tmp_path, name, edit, pattern):
    folder = _copy(saved_models, tmp_path, name)
    _edit_config(folder, edit)
    with pytest.raises(InputError, match=pattern):
        load_model(folder)


def test_cli_eval_reports_bad_state_in_one_line(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["fit", "wikipedia", "--model", "cca", "--out", str(out)]) == 0
    _edit_state(out, lambda st: st.update(x_mean=np.zeros(3)))
    capsys.readouterr()
    code = main(["eval", str(out), "--dataset", "wikipedia"])
    _, err = capsys.readouterr()
    assert code == 2 and "state.safetensors" in err and "'x_mean'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    _edit_config(out, _drop("params"))
    code = main(["eval", str(out), "--dataset", "wikipedia"])
    _, err = capsys.readouterr()
    assert code == 2 and "config.json" in err and "'params'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name, edit", [
    ("ae", lambda c: c["params"].__setitem__("latent_dim", -3)),
    ("dcca", lambda c: c["extra"].__setitem__("out_dim", -1)),
])
def test_a_negative_size_in_an_edited_config_is_named(tmp_path, name, edit):
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(60, 6)).astype(np.float32), "b": rng.normal(size=(60, 4)).astype(np.float32)})
    kw = dict(latent_dim=4, hidden=(8,), epochs=1, progress=False) if name == "ae" else dict(n_components=2, epochs=1)
    js.create_model(name, **kw).fit(pairs).save(tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    edit(cfg)
    (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"config.json field 'extra' \(or 'params'\) does not fit model"):
        load_model(tmp_path / name)


@pytest.mark.parametrize("name,array", [("cca", "x_weights"), ("clip", "heads.image.net.weight"),
                                        ("rcca_pre", "x_pre.1.components_")])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_refused_naming_the_array(saved_models, tmp_path, name, array, bad):
    folder = _copy(saved_models, tmp_path, name)

    def spoil(state):
        arr = state[array].copy()
        arr.flat[0] = bad
        state[array] = arr

    _edit_state(folder, spoil)
    with pytest.raises(InputError, match=rf"state\.safetensors array '{re.escape(array)}' holds 1 NaN or infinite "
                                         r"value\(s\); the saved model is damaged"):
        load_model(folder)


@pytest.mark.parametrize("value", ["no", 0, None, 1.0])
def test_encode_normalize_takes_true_or_false_only(saved_models, value):
    root, x = saved_models
    model = load_model(root / "cca")
    with pytest.raises(InputError, match=rf"^normalize: expected True or False, got {re.escape(repr(value))}$"):
        model.encode("image", x[:3], normalize=value)
    z = model.encode("image", x[:3], normalize=np.bool_(False))
    np.testing.assert_allclose(np.linalg.norm(model.encode("image", x[:3]), axis=1), 1, rtol=1e-6)
    assert not np.allclose(np.linalg.norm(z, axis=1), 1)


@pytest.mark.parametrize("name, edit, pattern", [
    # a zero temperature: the network divides by it while it is built
    ("clip", lambda c: c["params"].__setitem__("tau", 0),
     r"state\.safetensors do not fit the model in config\.json \(ZeroDivisionError"),
    # fewer preprocessing records than views: the arrays are read by index
    ("gcca", lambda c: c["extra"].__setitem__("pre", []), r"state\.safetensors do not fit the model in config\.json"),
])
def test_an_edited_config_that_fails_while_building_is_named(tmp_path, name, edit, pattern):
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(60, 6)).astype(np.float32), "b": rng.normal(size=(60, 4)).astype(np.float32)})
    kw = dict(dim=4, epochs=1, batch_size=32, val_fraction=0.0) if name == "clip" else dict(n_components=2)
    js.create_model(name, **kw).fit(pairs).save(tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    edit(cfg)
    (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=pattern):
        load_model(tmp_path / name)


@pytest.mark.parametrize("name, field, value, pattern", [
    ("clip", "dim", 16385, r"dim: expected an integer <= 16384, got 16385"),
    ("clip", "hidden", 16385, r"hidden: expected an integer <= 16384, got 16385"),
    ("ae", "latent_dim", 4097, r"latent_dim: expected an integer <= 4096, got 4097"),
    ("ae", "hidden", [16385], r"hidden: expected an integer <= 16384, got 16385"),
])
def test_an_edited_size_beyond_what_fit_takes_is_refused_before_allocating(tmp_path, name, field, value, pattern):
    # fit refuses these sizes; a config.json edited to a huge one would otherwise allocate the network first
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(60, 6)).astype(np.float32), "b": rng.normal(size=(60, 4)).astype(np.float32)})
    kw = dict(dim=4, epochs=1, batch_size=32, val_fraction=0.0) if name == "clip" else \
        dict(latent_dim=4, hidden=(8,), epochs=1, progress=False)
    js.create_model(name, **kw).fit(pairs).save(tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    cfg["params"][field] = value
    (tmp_path / name / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"config\.json field .*does not fit model .*" + pattern):
        load_model(tmp_path / name)


def test_clip_arrays_that_the_edited_in_dims_leave_out_are_refused(saved_models, tmp_path):
    folder = _copy(saved_models, tmp_path, "clip")
    _edit_config(folder, lambda cfg: (cfg["extra"]["in_dims"].pop("text"), cfg)[1])
    with pytest.raises(InputError, match=r"state\.safetensors do not fit the model in config\.json .*"
                                         r"'heads\.text\.[^']*' belong to no part of the network"):
        load_model(folder)


@pytest.mark.parametrize("name", ["dcca", "sm"])
@pytest.mark.parametrize("value", [[], {}, [6], "x"])
def test_edited_feature_counts_are_refused_at_load(tmp_path, name, value):
    # they used to load, and encoding then failed with an IndexError / TypeError
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(60, 6)).astype(np.float32), "b": rng.normal(size=(60, 4)).astype(np.float32)},
                     labels=np.arange(60) % 3)
    kw = dict(n_components=2, epochs=1) if name == "dcca" else {}
    js.create_model(name, **kw).fit(pairs).save(tmp_path / name)
    _edit_config(tmp_path / name, lambda cfg: (cfg["extra"].__setitem__("n_features", value), cfg)[1])
    with pytest.raises(InputError, match=r"config\.json field 'extra' \(or 'params'\) does not fit .*n_features"):
        load_model(tmp_path / name)


@pytest.mark.parametrize("edit", [lambda c: c["extra"].__setitem__("members", []),
                                  lambda c: c["extra"].__setitem__("members", c["extra"]["members"][:1]),
                                  lambda c: c["params"].__setitem__("n_members", 3)])
def test_an_ensemble_whose_member_records_do_not_match_is_refused(tmp_path, edit):
    # an empty list used to load, and encoding then raised IndexError
    rng = np.random.default_rng(0)
    pairs = js.Pairs({"a": rng.normal(size=(40, 6)).astype(np.float32), "b": rng.normal(size=(40, 4)).astype(np.float32)})
    js.create_model("ensemble", model="clip", n_members=2,
                    params={"dim": 3, "epochs": 1, "batch_size": 16}).fit(pairs).save(tmp_path / "ens")
    cfg = json.loads((tmp_path / "ens" / "config.json").read_text())
    edit(cfg)
    (tmp_path / "ens" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"config\.json field 'extra' \(or 'params'\) does not fit .*members: expected"):
        load_model(tmp_path / "ens")
