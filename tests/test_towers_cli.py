"""``jointspace embed``: vectors written atomically as .npy or .safetensors, bad input exits 2."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from jointspace.cli import main
from jointspace.data.datasets import DATASETS, Dataset, load_dataset, register_dataset
from jointspace.data.pairs import Pairs
from jointspace.towers import create_tower


class TinyPictures(Dataset):
    """Four uint8 pictures with captions (for the CLI test only)."""

    name = "tiny-pictures-test"
    modalities = ("image", "text")

    def _load(self, split):
        imgs = np.stack([np.full((12, 10, 3), 60 * i, np.uint8) for i in range(4)])
        return Pairs({"image": imgs, "text": [f"picture {i}" for i in range(4)]})


if TinyPictures.name not in DATASETS:
    register_dataset(TinyPictures)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))


def test_embed_texts_to_npy_and_safetensors(tmp_path, capsys):
    out = tmp_path / "t.npy"
    assert main(["embed", "digits", "--tower", "minilm", "--limit", "6", "--out", str(out), "--json",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 6 and summary["dim"] == 384 and summary["modality"] == "text"
    vec = np.load(out)
    texts = load_dataset("digits", "train")["text"][:6]
    assert vec.shape == (6, 384) and vec.dtype == np.float32
    assert np.allclose(vec, create_tower("minilm").embed(texts), atol=1e-5)
    st = tmp_path / "t.safetensors"
    assert main(["embed", "digits", "--tower", "minilm", "--limit", "6", "--out", str(st), "--quiet"]) == 0
    data = load_file(str(st))
    assert np.array_equal(data["vectors"], vec) and data["ids"].shape == (6,)
    assert not list(tmp_path.glob(".*.tmp"))


def test_embed_images_with_tower_params(tmp_path):
    out = tmp_path / "i.npy"
    assert main(["embed", TinyPictures.name, "--tower", "efficientnet-lite0", "--tower-param", "image_size=64",
                 "--modality", "image", "--split", "test", "--limit", "3", "--out", str(out), "--quiet"]) == 0
    imgs = load_dataset(TinyPictures.name, "test")["image"][:3]
    assert np.allclose(np.load(out), create_tower("efficientnet-lite0", image_size=64).embed(imgs), atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--tower", "mfcc"], "has image, text; got 'audio'"),
    (["--tower", "nope"], "unknown tower 'nope'"),
    (["--tower", "minilm", "--modality", "image"], "handles text items"),
    (["--tower", "minilm", "--split", "dev"], "split"),
    (["--tower", "minilm", "--tower-param", "bogus"], "KEY=VALUE"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    assert main(["embed", "digits", *argv, "--out", str(tmp_path / "x.npy"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("argv, message", [
    (["--cache-dir", ""], "--cache-dir: expected a folder, got ''; give --no-cache for no cache"),
    (["--cache-dir", " "], "--cache-dir: expected a folder, got ' '; give --no-cache for no cache"),
    (["--cache-dir", "c", "--no-cache"], "--cache-dir: names the cache that --no-cache turns off"),
])
def test_a_cache_folder_that_would_not_be_used_is_refused(tmp_path, capsys, argv, message):
    """An empty --cache-dir read the default cache, a blank one said 'cache: ... pass False', and
    --cache-dir beside --no-cache was ignored."""
    assert main(["embed", "digits", "--tower", "minilm", "--limit", "2", *argv, "--out", str(tmp_path / "x.npy"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "cache").exists()


def test_bad_output_suffix(tmp_path, capsys):
    assert main(["embed", "digits", "--tower", "minilm", "--out", str(tmp_path / "x.csv")]) == 2
    assert ".npy or .safetensors" in capsys.readouterr().err


class NamedPictures(Dataset):
    """Three pictures with string ids; counts its loads (for the CLI tests only)."""

    name = "named-pictures-test"
    modalities = ("image", "text")
    loads = 0

    def _load(self, split):
        type(self).loads += 1
        imgs = np.stack([np.full((8, 8, 3), 80 * i, np.uint8) for i in range(3)])
        return Pairs({"image": imgs, "text": ["a", "b", "c"]}, ids=["red/01.png", "blue/02.png", "green/03.png"])


if NamedPictures.name not in DATASETS:
    register_dataset(NamedPictures)

CNN = ["--tower", "cnn", "--tower-param", "image_size=8", "--tower-param", "widths=[4]",
       "--tower-param", "out_dim=3", "--quiet"]


def test_safetensors_keeps_string_and_integer_ids(tmp_path, capsys):
    from safetensors import safe_open

    st = tmp_path / "named.safetensors"
    assert main(["embed", NamedPictures.name, *CNN, "--out", str(st)]) == 0
    with safe_open(str(st), "np") as fh:
        meta, keys = fh.metadata(), set(fh.keys())
        vectors = fh.get_tensor("vectors")
    assert keys == {"vectors"} and vectors.shape == (3, 3)
    assert json.loads(meta["ids"]) == ["red/01.png", "blue/02.png", "green/03.png"]
    imgs = load_dataset(NamedPictures.name, "train")["image"]
    assert np.allclose(vectors, create_tower("cnn", image_size=8, widths=[4], out_dim=3).embed(imgs), atol=1e-6)
    # integer ids: the int64 tensor as before, and the same ids in the metadata
    st = tmp_path / "tiny.safetensors"
    assert main(["embed", TinyPictures.name, *CNN, "--limit", "3", "--out", str(st)]) == 0
    with safe_open(str(st), "np") as fh:
        assert json.loads(fh.metadata()["ids"]) == [0, 1, 2] and fh.get_tensor("ids").tolist() == [0, 1, 2]
    capsys.readouterr()
    assert main(["embed", "--help"]) == 0
    assert "metadata key 'ids'" in " ".join(capsys.readouterr().out.split())


def test_out_is_checked_before_the_work(tmp_path, capsys):
    (tmp_path / "outdir.npy").mkdir()
    before = NamedPictures.loads
    assert main(["embed", NamedPictures.name, *CNN, "--out", str(tmp_path / "outdir.npy")]) == 2
    err = capsys.readouterr().err
    assert f"--out: expected a file to write, got the folder {str(tmp_path / 'outdir.npy')!r}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert NamedPictures.loads == before  # refused before loading or embedding anything
    (tmp_path / "file").write_text("x")
    assert main(["embed", NamedPictures.name, *CNN, "--out", str(tmp_path / "file" / "e.npy")]) == 2
    assert "--out: cannot create" in capsys.readouterr().err and NamedPictures.loads == before


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_runtime_option_chooses_and_records_the_towers_runtime(tmp_path, monkeypatch, runtime):
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
    monkeypatch.delenv("JOINTSPACE_RUNTIME", raising=False)
    out = tmp_path / "t.safetensors"
    assert main(["--runtime", runtime, "embed", "digits", "--tower", "minilm", "--limit", "4", "--out", str(out),
                 "--quiet", "--no-cache"]) == 0
    from safetensors import safe_open

    with safe_open(str(out), "np") as f:
        assert json.loads(f.metadata()["tower_config"])["runtime"] == runtime
        vectors = f.get_tensor("vectors")
    texts = load_dataset("digits", "train")["text"][:4]
    np.testing.assert_allclose(vectors, create_tower("minilm", runtime=runtime).embed(texts, progress=False),
                               rtol=0, atol=1e-6)
    assert "JOINTSPACE_RUNTIME" not in __import__("os").environ     # the option lasts one command


class OneSplitTexts(Dataset):
    """Three captions in a single split 'all', as the built-in photos has (for the CLI test only)."""

    name = "one-split-texts-test"
    modalities = ("text",)
    splits = ("all",)

    def _load(self, split):
        return Pairs({"text": ["a red car", "a cat", "a tree"]})


if OneSplitTexts.name not in DATASETS:
    register_dataset(OneSplitTexts)


def test_a_builtin_dataset_without_the_default_split_reads_its_only_split(tmp_path, capsys):
    out = tmp_path / "t.npy"
    assert main(["embed", OneSplitTexts.name, "--tower", "minilm", "--out", str(out), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == "all" and np.load(out).shape == (3, 384)


def test_embed_reads_your_own_folder_as_its_help_says(tmp_path, capsys):
    """The description said 'a built-in dataset' only; a folder of pictures with captions is read too."""
    from PIL import Image

    for name, caption in (("a", "a black square"), ("b", "a white square")):
        Image.new("RGB", (8, 8), (0, 0, 0) if name == "a" else (255, 255, 255)).save(tmp_path / f"{name}.png")
        (tmp_path / f"{name}.txt").write_text(caption, encoding="utf-8")
    assert main(["embed", "--help"]) == 0
    assert "of your own manifest or folder" in " ".join(capsys.readouterr().out.split())
    out = tmp_path / "t.npy"
    assert main(["embed", str(tmp_path), "--tower", "minilm", "--out", str(out), "--quiet"]) == 0
    np.testing.assert_allclose(np.load(out), create_tower("minilm").embed(["a black square", "a white square"]),
                               atol=1e-5)


def test_a_cache_dir_that_is_a_file_is_refused_before_the_work(tmp_path, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    code = main(["embed", "digits", "--tower", "minilm", "--limit", "2", "--cache-dir", str(taken),
                 "--out", str(tmp_path / "x.npy"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--cache-dir: expected a folder, got the file {str(taken)!r}" in err
    assert taken.read_text() == "mine" and not (tmp_path / "x.npy").exists()
