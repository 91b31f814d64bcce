"""The embedding cache: hits skip the tower, damaged files are recomputed, read-only still works."""

import os
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from jointspace.errors import InputError
from jointspace.towers import EmbeddingCache, Tower, create_tower, embed_cached, register_tower
from jointspace.towers.base import TOWERS
from jointspace.towers.cache import chunk_bounds, item_digest


class CountingTower(Tower):
    """Text tower: vector = (length, number of vowels, seed); counts its batch calls."""

    modality = "text"
    default_batch_size = 2

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.out_dim = 3
        self.calls = 0
        self.items_seen = 0

    def config(self):
        return {"seed": self.seed}

    def _embed_batch(self, items):
        self.calls += 1
        self.items_seen += len(items)
        return np.array([[len(t), sum(c in "aeiou" for c in t), self.seed] for t in items], np.float32)


if "counting-test" not in TOWERS:
    register_tower("counting-test")(CountingTower)

TEXTS = [f"text number {i} about {w}" for i, w in enumerate(["cats", "dogs", "an owl", "trees", "a boat"] * 2)]


def bounds(texts, chunk_size=4):
    return chunk_bounds([item_digest(t, "text") for t in texts], chunk_size)


def test_hit_returns_identical_vectors_without_calling_the_tower(tmp_path):
    cache = EmbeddingCache(tmp_path, chunk_size=4)
    tower = CountingTower()
    first = cache.embed(tower, TEXTS)
    assert np.array_equal(first, tower.embed(TEXTS))
    tower.calls = 0
    again = EmbeddingCache(tmp_path, chunk_size=4).embed(CountingTower(), TEXTS)
    assert np.array_equal(again, first) and again.dtype == np.float32
    t2 = CountingTower()
    EmbeddingCache(tmp_path, chunk_size=4).embed(t2, TEXTS)
    assert t2.calls == 0
    # other settings are another key; other content is another chunk
    t3 = CountingTower(seed=1)
    assert EmbeddingCache(tmp_path, chunk_size=4).embed(t3, TEXTS)[0, 2] == 1 and t3.calls > 0
    t4 = CountingTower()
    edited = TEXTS[:4] + ["changed"] + TEXTS[5:]
    EmbeddingCache(tmp_path, chunk_size=4).embed(t4, edited)
    new = [b for b in bounds(edited) if b not in bounds(TEXTS)]
    assert t4.items_seen == sum(stop - start for start, stop in new) < len(TEXTS)  # only the chunks around it


class PaddingTower(CountingTower):
    """Text tower whose vectors, as a padded network's, depend on the longest text in the batch."""

    def _embed_batch(self, items):
        longest = max(len(t) for t in items)
        return np.array([[len(t), longest] for t in items], np.float32)

    def __init__(self):
        super().__init__()
        self.out_dim = 2


def test_vectors_are_the_towers_of_each_chunk_in_turn(tmp_path):
    tower = PaddingTower()
    got = EmbeddingCache(tmp_path, chunk_size=4).embed(tower, TEXTS)
    by_chunk = np.concatenate([tower.embed(TEXTS[s:e]) for s, e in bounds(TEXTS)])
    assert np.array_equal(got, by_chunk)
    assert not np.array_equal(got, tower.embed(TEXTS, batch_size=len(TEXTS)))   # one batch of all: other padding
    assert np.array_equal(EmbeddingCache(tmp_path, chunk_size=4).embed(tower, TEXTS), by_chunk)   # read back


def test_interrupted_run_resumes(tmp_path):
    class Boom(CountingTower):
        def _embed_batch(self, items):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super()._embed_batch(items)

    Boom.name = "counting-test"
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path, chunk_size=4).embed(Boom(), TEXTS)
    tower = CountingTower()
    out = EmbeddingCache(tmp_path, chunk_size=4).embed(tower, TEXTS)
    (_, first), (_, second), *_ = bounds(TEXTS)
    assert second - first >= 3   # the third batch of 2 that raised was in the second chunk
    assert tower.items_seen == len(TEXTS) - first  # the first chunk was kept
    assert np.array_equal(out, CountingTower().embed(TEXTS))


def test_temporaries_a_killed_writer_left_are_deleted_once_an_hour_old(tmp_path):
    tower = CountingTower()
    folder = EmbeddingCache(tmp_path).folder(tower)
    folder.mkdir(parents=True)
    old, young = folder / ".abc.safetensors.k1.tmp", folder / ".def.safetensors.k2.tmp"
    for f in (old, young):
        f.write_bytes(b"half a chunk")
    os.utime(old, (0, os.path.getmtime(old) - 2 * 3600))
    other = folder / "notes.tmp"   # not a temporary of ours (no leading dot): kept
    other.write_bytes(b"x")
    os.utime(other, (0, 0))
    cache = EmbeddingCache(tmp_path, chunk_size=4)
    cache.embed(tower, TEXTS)
    assert not old.exists() and young.exists() and other.exists()
    n = len(bounds(TEXTS))
    assert len(list(folder.glob("*.safetensors"))) == n and cache.misses == n


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_damaged_chunk_is_recomputed(tmp_path, damage):
    cache = EmbeddingCache(tmp_path, chunk_size=100)
    ref = cache.embed(CountingTower(), TEXTS)
    (path,) = list(cache.folder(CountingTower()).glob("*.safetensors"))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 7])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    elif damage == "flip":  # same length, one vector byte changed: caught by the checksum
        path.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    else:
        path.write_bytes(b"")
    tower = CountingTower()
    out = EmbeddingCache(tmp_path, chunk_size=100).embed(tower, TEXTS)
    assert tower.calls > 0 and np.array_equal(out, ref)
    tower = CountingTower()
    EmbeddingCache(tmp_path, chunk_size=100).embed(tower, TEXTS)  # rewritten: a hit again
    assert tower.calls == 0


def test_read_only_cache_computes_and_warns_once(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a cache root below a regular file cannot be created
    cache = EmbeddingCache(blocker / "cache", chunk_size=2)
    with pytest.warns(RuntimeWarning, match="not writable") as rec:
        out = cache.embed(CountingTower(), TEXTS)
    assert len(rec) == 1
    assert np.array_equal(out, CountingTower().embed(TEXTS))

    # a folder whose files cannot be replaced (as a read-only mount): same behaviour
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = EmbeddingCache(ro, chunk_size=2).embed(CountingTower(), TEXTS)
    assert len([w for w in rec if issubclass(w.category, RuntimeWarning)]) == 1
    assert np.array_equal(out, CountingTower().embed(TEXTS))
    os.chmod(ro, 0o755)


def test_files_are_keyed_by_content_not_name(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "b.png")
    tower = create_tower("cnn", image_size=8, widths=[4], out_dim=3)
    cache = EmbeddingCache(tmp_path / "c", chunk_size=1)
    a = cache.embed(tower, [str(tmp_path / "a.png")])
    assert (cache.hits, cache.misses) == (0, 1)
    b = cache.embed(tower, [str(tmp_path / "b.png")])  # same bytes under another name
    assert (cache.hits, cache.misses) == (1, 1) and np.array_equal(a, b)
    Image.fromarray(255 - img).save(tmp_path / "a.png")
    cache.embed(tower, [str(tmp_path / "a.png")])  # edited in place: recomputed
    assert cache.misses == 2


def test_embed_cached_switch(tmp_path):
    tower = CountingTower()
    embed_cached(tower, TEXTS, cache=False)
    embed_cached(tower, TEXTS, cache=tmp_path)
    n = tower.calls
    embed_cached(tower, TEXTS, cache=str(tmp_path))
    assert tower.calls == n
    feats = create_tower("mlp", in_dim=3, hidden=[4], out_dim=2)
    x = np.arange(12.0).reshape(4, 3)
    assert np.allclose(embed_cached(feats, x, cache=tmp_path), feats.embed(x))
    assert np.allclose(embed_cached(feats, x, cache=tmp_path), feats.embed(x))


def _palette_image(rgb, transparency=None):
    img = Image.new("P", (8, 8), 0)
    img.putpalette(list(rgb) + [0, 0, 0] * 255)
    if transparency is not None:
        img.info["transparency"] = transparency
    return img


def test_palette_images_are_keyed_by_their_colours(tmp_path):
    """Two "P" images with the same indices but other palettes are other pictures."""
    from jointspace.towers.cache import item_digest

    red, blue = _palette_image((255, 0, 0)), _palette_image((0, 0, 255))
    assert red.tobytes() == blue.tobytes()  # the indices alone cannot tell them apart
    assert item_digest(red) != item_digest(blue)
    assert item_digest(red) != item_digest(_palette_image((255, 0, 0), transparency=0))  # composited on white
    assert item_digest(red) == item_digest(red.convert("RGB"))  # the same pixels the tower sees
    tower = create_tower("cnn", image_size=8, widths=[4], out_dim=3)
    cache = EmbeddingCache(tmp_path, chunk_size=1)
    a = cache.embed(tower, [red])
    b = cache.embed(tower, [blue])
    assert (cache.hits, cache.misses) == (0, 2)
    assert np.array_equal(a, tower.embed([red])) and np.array_equal(b, tower.embed([blue]))
    assert not np.allclose(a, b)
    assert np.array_equal(cache.embed(tower, [blue.copy()]), b) and cache.hits == 1


@pytest.mark.parametrize("cache, needle", [
    ("", "cache: expected a folder, got ''; pass False for no cache"),
    ("   ", "cache: expected a folder, got '   '"),
    (123, "cache: expected True (the default folder), False (no cache), a folder or an EmbeddingCache, got 123"),
    (b"/tmp/x", "cache: expected True"),
])
def test_a_cache_that_names_no_folder_is_refused(tmp_path, monkeypatch, cache, needle):
    monkeypatch.chdir(tmp_path)   # an empty name was the current folder: chunk files were written here
    tower = CountingTower()
    with pytest.raises(InputError, match=re.escape(needle)):
        embed_cached(tower, TEXTS, cache=cache)
    assert tower.calls == 0 and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="root: expected"):
        EmbeddingCache(cache)


def test_a_cache_folder_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    embed_cached(CountingTower(), TEXTS, cache="~/emb")
    assert list((tmp_path / "home" / "emb").iterdir()) and not (tmp_path / "~").exists()


def test_a_cache_named_by_an_existing_file_is_refused(tmp_path):
    """A file given as the cache folder embedded everything and cached nothing, with a warning."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,caption\n")
    tower = CountingTower()
    with pytest.raises(InputError, match=r"^cache: expected a folder, got the file '.*m\.csv'$"):
        embed_cached(tower, TEXTS, cache=str(manifest))
    with pytest.raises(InputError, match=r"^root: expected a folder, got the file"):
        EmbeddingCache(manifest)
    assert tower.calls == 0 and manifest.read_text() == "path,caption\n"
