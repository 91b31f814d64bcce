"""The cache key holds the weights files a tower loads: other weights at the same place miss."""

import hashlib
import json
import os

import numpy as np
import pytest

from jointspace.towers import EmbeddingCache, Tower, create_tower, register_tower
from jointspace.towers.base import TOWERS


class WeightsFileTower(Tower):
    """Text tower whose vector is (length, the first byte of its weights file); counts its calls."""

    modality = "text"
    default_batch_size = 4
    published_weights = ""

    def __init__(self, weights: str = "", scale: int = 1):
        self.weights = weights
        self.scale = scale
        self.out_dim = 2
        self.calls = 0

    def config(self):
        return {"scale": self.scale}   # the file's place is not a setting: only its contents count

    def weights_files(self):
        return {"weights.bin": self.weights}

    def _embed_batch(self, items):
        self.calls += 1
        with open(self.weights, "rb") as fh:
            w = fh.read(1)[0]
        return np.array([[len(t) * self.scale, w] for t in items], np.float32)


if "weights-file-test" not in TOWERS:
    register_tower("weights-file-test")(WeightsFileTower)


def expected_key(scale: int, contents: bytes, published: str = "") -> str:
    """The key computed independently: sha256 of the tower's description, whose weights entry is
    sha256 of the file's name, size and sha256 of its bytes (left out for the published ones)."""
    described = {"tower": "weights-file-test", "config": {"scale": scale}}
    file_sha = hashlib.sha256(contents).hexdigest()
    weights = hashlib.sha256(f"weights.bin\0{len(contents)}\0{file_sha}\0".encode()).hexdigest()
    if weights != published:
        described["weights"] = weights
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def write(path, contents: bytes, later_ns: int = 0):
    path.write_bytes(contents)
    if later_ns:   # a replaced file: its modification time moves on, as it does between two writes
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + later_ns))
    return str(path)


def test_the_key_holds_the_contents_of_the_weights_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a" / "w.bin", b"\x07" * 64)
    b = write(tmp_path / "b" / "w.bin", b"\x09" * 64)
    same = write(tmp_path / "b" / "copy.bin", b"\x07" * 64)
    key_a, key_b = WeightsFileTower(a).cache_key(), WeightsFileTower(b).cache_key()
    assert key_a == expected_key(1, b"\x07" * 64) != key_b == expected_key(1, b"\x09" * 64)
    assert WeightsFileTower(same).cache_key() == key_a   # the same bytes elsewhere: the same key
    assert WeightsFileTower(a, scale=2).cache_key() == expected_key(2, b"\x07" * 64)
    write(tmp_path / "a" / "w.bin", b"\x08" * 64, later_ns=10_000_000)   # replaced in place, same size
    assert WeightsFileTower(a).cache_key() == expected_key(1, b"\x08" * 64) != key_a


def test_the_published_weights_keep_the_key_of_features_cached_before(tmp_path, monkeypatch):
    path = write(tmp_path / "w.bin", b"\x07" * 64)
    legacy = hashlib.sha256(json.dumps({"tower": "weights-file-test", "config": {"scale": 1}},
                                       sort_keys=True).encode()).hexdigest()
    from jointspace.towers.base import weights_fingerprint

    published = weights_fingerprint(WeightsFileTower(path).weights_files())
    monkeypatch.setattr(WeightsFileTower, "published_weights", published)
    assert WeightsFileTower(path).cache_key() == legacy == expected_key(1, b"\x07" * 64, published)
    write(tmp_path / "w.bin", b"\x08" * 64, later_ns=10_000_000)
    assert WeightsFileTower(path).cache_key() == expected_key(1, b"\x08" * 64, published) != legacy


def test_replaced_weights_are_not_answered_from_the_cache(tmp_path):
    path = write(tmp_path / "w.bin", b"\x07" * 8)
    texts = ["a cat", "two dogs", "an owl"]
    first = EmbeddingCache(tmp_path / "cache").embed(WeightsFileTower(path), texts)
    assert np.array_equal(first, [[5, 7], [8, 7], [6, 7]])
    again = WeightsFileTower(path)
    assert np.array_equal(EmbeddingCache(tmp_path / "cache").embed(again, texts), first) and again.calls == 0
    write(tmp_path / "w.bin", b"\x2a" * 8, later_ns=10_000_000)   # a fine-tuned file at the same place
    tuned = WeightsFileTower(path)
    got = EmbeddingCache(tmp_path / "cache").embed(tuned, texts)
    assert np.array_equal(got, [[5, 42], [8, 42], [6, 42]]) and tuned.calls == 1


@pytest.mark.parametrize("name", ["efficientnet-lite0", "minilm"])
def test_the_packaged_weights_are_the_published_ones(name):
    """Features cached with the packaged weights before the key held them keep their key."""
    from jointspace.towers.base import weights_fingerprint

    try:
        tower = create_tower(name, runtime="torch")
        files = tower.weights_files()
    except Exception as exc:  # noqa: BLE001 - the package is not installed
        pytest.skip(f"{name}: {exc}")
    assert weights_fingerprint(files) == tower.published_weights
    legacy = {"minilm": {"max_seq_length": 256}, "efficientnet-lite0": {"image_size": 224, "fit": "pad"}}[name]
    assert tower.cache_key() == hashlib.sha256(json.dumps({"tower": name, "config": legacy},
                                                          sort_keys=True).encode()).hexdigest()
    # the fingerprint reads the bytes of each file: pinned against sha256 of the files read here
    h = hashlib.sha256()
    for n in sorted(files):
        data = open(files[n], "rb").read()
        h.update(f"{n}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\0".encode())
    assert h.hexdigest() == tower.published_weights


def test_the_tunable_minilm_key_holds_its_tokenizer_files(tmp_path, monkeypatch):
    """minilm-tunable hashes its weights from the module; its tokenizer's files count too. The
    packaged ones keep the key the tower had before (name, settings and the module's state)."""
    import shutil

    import jointspace.towers.minilm as minilm
    from jointspace.towers.base import weights_fingerprint

    try:
        tower = create_tower("minilm-tunable")
        files = tower.weights_files()
    except Exception as exc:  # noqa: BLE001 - the package is not installed
        pytest.skip(f"minilm-tunable: {exc}")
    assert sorted(files) == sorted(minilm.TOKENIZER_FILES)
    assert weights_fingerprint(files) == tower.published_weights

    def state_key(t):   # the key as computed before the tokenizer counted, independently
        plain = {"tower": "minilm-tunable", "config": t.config()}
        h = hashlib.sha256(hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest().encode())
        for k, v in sorted(t.module.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    assert tower.cache_key() == state_key(tower)
    # another vocabulary at the tokenizer's place: another key for the same weights
    folder = tmp_path / "model"
    folder.mkdir()
    for name in minilm.TOKENIZER_FILES:
        shutil.copy(files[name], folder / name)
    with open(folder / "vocab.txt", "a", encoding="utf-8") as fh:
        fh.write("jointspaceword\n")
    monkeypatch.setattr(minilm, "minilm_model_dir", lambda: str(folder))
    assert tower.cache_key() != state_key(tower)
