"""The matcher's parts read in chunks: the same regions and word pieces as one call, a memory
bound checked before the work, one truncation warning for the whole set."""

import warnings

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.models import _matcher_parts as parts


class _Towers:
    default_batch_size = 3

    def __init__(self):
        self.calls = []

    def feature_map(self, items):
        self.calls.append(len(items))
        x = np.asarray(items, dtype=np.float32)
        return np.stack([x * (c + 1) for c in range(5)], axis=1).reshape(len(items), 5, 2, 2)   # (b, C, H, W)

    def word_pieces(self, texts, max_tokens=None):
        long = [t for t in texts if len(t.split()) > max_tokens]
        if long:
            warnings.warn(f"items: {len(long)} of {len(texts)} texts are longer than {max_tokens} word pieces and "
                          "were truncated", UserWarning)
        return [(t.split()[:max_tokens], np.ones((min(len(t.split()), max_tokens), 2), np.float32)) for t in texts]


def test_regions_in_chunks_equal_one_feature_map():
    tower = _Towers()
    images = np.arange(8 * 4, dtype=np.float32).reshape(8, 4)
    got = parts.region_parts(tower, images, progress=False)
    fmap = np.stack([images * (c + 1) for c in range(5)], axis=1).reshape(8, 5, 2, 2)
    np.testing.assert_array_equal(got, fmap.reshape(8, 5, 4).transpose(0, 2, 1))
    assert tower.calls == [3, 3, 2] and got.dtype == np.float32


def test_a_set_too_large_for_the_memory_is_refused_before_the_work(monkeypatch):
    monkeypatch.setattr(parts, "machine_memory", lambda: 8 * 2 ** 30)
    parts.check_region_memory(10_000, 49, 1280)   # 2.3 GiB of 8: fine
    with pytest.raises(InputError, match=r"^images: 40,000 images need 9\.3 GiB of region vectors in memory \(49 "
                                         r"regions x 1280 floats each\), over 50% of this machine's 8\.0 GiB"):
        parts.check_region_memory(40_000, 49, 1280)
    tower = _Towers()
    monkeypatch.setattr(parts, "machine_memory", lambda: 100)
    with pytest.raises(InputError, match="^images: 7 images need"):
        parts.region_parts(tower, np.zeros((7, 4), np.float32), progress=False)
    assert tower.calls == [3]   # one chunk read, to learn the sizes


def test_word_pieces_in_chunks_warn_once_for_the_whole_set(monkeypatch):
    tower = _Towers()
    tower.default_batch_size = 1   # chunks of 8 texts
    texts = ["a b c d" if i % 3 == 0 else "a b" for i in range(20)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = parts.word_parts(tower, texts, 3, progress=False)
    assert [str(w.message) for w in caught] == ["items: 7 of 20 texts are longer than 3 word pieces and were truncated"]
    assert [p for p, _ in got] == [t.split()[:3] for t in texts]


def test_an_image_the_tower_cannot_read_is_named_by_its_place_in_the_whole_set():
    class Picky(_Towers):
        def feature_map(self, items):
            for i, it in enumerate(items):
                if not np.isfinite(it).all():
                    raise InputError(f"items[{i}]: cannot read the image (corrupt)")
            return super().feature_map(items)

    images = np.zeros((8, 4), np.float32)
    images[7, 0] = np.nan
    # the tower's message counted from the first image of the chunk of 3 (items[1])
    with pytest.raises(InputError, match=r"^images\[7\]: cannot read the image \(corrupt\)$"):
        parts.region_parts(Picky(), images, progress=False)
