"""fashion-mnist-trimodal: image, class sentence and spoken class word, aligned by class."""

import numpy as np
import pytest

from jointspace.data.datasets import get_dataset, list_datasets, load_dataset
from jointspace.data.datasets import fashion_mnist as fm
from jointspace.data.datasets import fashion_trimodal as ft
from jointspace.data.datasets import spoken_words as sw
from jointspace.errors import InputError, MissingDependencyError

_WHY = get_dataset("fashion-mnist-trimodal").missing()
needs_data = pytest.mark.skipif(_WHY is not None, reason=f"needs: {_WHY} (make install apt installs it)")
N = 60


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("wavs")


@pytest.fixture(scope="module")
def splits(cache):
    return {s: load_dataset("fashion-mnist-trimodal", split=s, limit=N, settings_per_accent=1, cache_dir=cache)
            for s in ("train", "val", "test")}


def test_registered_with_both_citations():
    row = next(r for r in list_datasets() if r["name"] == "fashion-mnist-trimodal")
    assert row["splits"] == ["train", "val", "test"] and row["modalities"] == ["image", "text", "audio"]
    ds = get_dataset("fashion-mnist-trimodal")
    assert fm.CITATION in ds.citation and "eSpeak NG" in ds.citation


def test_sentences_use_the_right_article():
    assert len(ft.TEMPLATES) == 8 and len(set(ft.TEMPLATES)) == 8
    assert ft.sentence("a photo of a {}", "ankle boot") == "a photo of an ankle boot"
    assert ft.sentence("a {} on a white background", "ankle boot") == "an ankle boot on a white background"
    assert ft.sentence("a small {}", "ankle boot") == "a small ankle boot"
    assert ft.sentence("an image of the {}", "ankle boot") == "an image of the ankle boot"
    assert ft.sentence("a photo of a {}", "t-shirt") == "a photo of a t-shirt"
    for t in ft.TEMPLATES:
        assert "a ankle" not in ft.sentence(t, "ankle boot")


def test_missing_names_each_missing_package(monkeypatch):
    ds = get_dataset("fashion-mnist-trimodal")
    monkeypatch.setattr(ft.speech, "espeak_path", lambda: None)
    monkeypatch.setattr(fm.FashionMNIST, "missing", lambda self: "apt-get install -y dataset-fashion-mnist")
    assert ds.missing() == "apt-get install -y dataset-fashion-mnist espeak-ng"
    monkeypatch.setattr(fm.FashionMNIST, "missing", lambda self: None)
    assert ds.missing() == "apt-get install -y espeak-ng"
    with pytest.raises(MissingDependencyError, match="apt-get install -y espeak-ng"):
        ds.load("test", limit=3)


@needs_data
def test_shapes_types_and_alignment_with_fashion_mnist(splits):
    for split, p in splits.items():
        assert len(p) == N and p.modalities == ("image", "text", "audio")
        img = p["image"]
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (N, 28, 28)
        assert all(isinstance(t, str) for t in p["text"]) and all(isinstance(a, str) for a in p["audio"])
        assert p.labels.dtype == np.int64 and p.labels.min() >= 0 and p.labels.max() <= 9
        assert p.label_names == list(fm.LABEL_NAMES)
        assert list(p.ids[:2]) == [f"{split}-0", f"{split}-1"]
        assert p.metadata["class_name"] == [fm.LABEL_NAMES[c] for c in p.labels]
        assert set(p.metadata) >= {"class_name", "template", "accent", "voice"}
    # val is the tail of Fashion-MNIST's train file, test its test file
    train_file = load_dataset("fashion-mnist", split="train")
    np.testing.assert_array_equal(splits["train"]["image"], train_file["image"][:N])
    np.testing.assert_array_equal(splits["val"]["image"], train_file["image"][55_000:55_000 + N])
    np.testing.assert_array_equal(splits["val"].labels, train_file.labels[55_000:55_000 + N])
    test_file = load_dataset("fashion-mnist", split="test", limit=N)
    np.testing.assert_array_equal(splits["test"]["image"], test_file["image"])


@needs_data
def test_text_and_audio_say_the_class_word(splits, cache):
    for split, p in splits.items():
        clips = load_dataset("spoken-words", split=split, words=list(fm.CLASS_WORDS), settings_per_accent=1,
                             cache_dir=cache)
        word_of = dict(zip(clips["audio"], clips.metadata["word"]))
        for i, c in enumerate(p.labels):
            word = fm.CLASS_WORDS[c]
            assert word in p["text"][i]
            assert p["text"][i] == ft.sentence(ft.TEMPLATES[p.metadata["template"][i]], word)
            assert word_of[p["audio"][i]] == word
            assert p.metadata["clip"][i].endswith("/" + word)
            assert p.metadata["clip"][i] == p.metadata["speaker"][i] + "/" + word
        assert len(set(p.metadata["template"].tolist())) > 1


@needs_data
def test_val_and_test_voices_are_unheard_in_training(splits):
    accents = {s: set(p.metadata["accent"]) for s, p in splits.items()}
    for s in accents:
        assert accents[s] <= set(sw.SPLIT_ACCENTS[s])
    assert not accents["train"] & accents["val"] and not accents["train"] & accents["test"]
    assert len(accents["train"]) > 1


@needs_data
def test_deterministic_per_seed_and_split(splits, cache):
    opts = dict(settings_per_accent=1, cache_dir=cache)
    again = load_dataset("fashion-mnist-trimodal", split="test", limit=N, **opts)
    assert again["text"] == splits["test"]["text"] and again["audio"] == splits["test"]["audio"]
    other = load_dataset("fashion-mnist-trimodal", split="test", limit=N, seed=1, **opts)
    assert other["text"] != splits["test"]["text"]
    np.testing.assert_array_equal(other["image"], splits["test"]["image"])
    # a smaller limit is a prefix of the larger one
    short = load_dataset("fashion-mnist-trimodal", split="test", limit=20, **opts)
    assert short["text"] == splits["test"]["text"][:20] and short["audio"] == splits["test"]["audio"][:20]
    # splits draw differently: train and val templates differ
    assert splits["train"].metadata["template"].tolist() != splits["val"].metadata["template"].tolist()


@needs_data
def test_bad_options_name_the_argument(tmp_path):
    ds = get_dataset("fashion-mnist-trimodal")
    with pytest.raises(InputError, match=r"^limit: expected an integer >= 1, got 0"):
        ds.load("test", limit=0, cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^limit: expected an integer, got '5'"):
        ds.load("test", limit="5", cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^split: dataset 'fashion-mnist-trimodal' has splits train, val, test; "
                                         r"got 'dev'"):
        ds.load("dev", limit=3, cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^split: .* got 'dev'"):
        ds.load("dev", root=tmp_path)
    with pytest.raises(InputError, match=r"^seed: expected an integer >= 0, got -1"):
        ds.load("test", limit=3, seed=-1, cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^settings_per_accent: expected an integer >= 1, got 0"):
        ds.load("test", limit=3, settings_per_accent=0, cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^root: .*not found"):
        ds.load("test", limit=3, root=tmp_path, cache_dir=tmp_path)
    with pytest.raises(InputError, match=r"^root: expected a folder path"):
        ds.load("test", limit=3, root=7, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.wav"))
