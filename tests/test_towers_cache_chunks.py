"""Content-defined chunks: an item inserted or deleted recomputes only the chunk around it."""

import hashlib

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.towers import EmbeddingCache, Tower
from jointspace.towers.cache import chunk_bounds


class CountingTower(Tower):
    """Text tower: vector = (length, number of vowels); counts the items it embeds."""

    name = "chunk-counting-test"
    modality = "text"
    default_batch_size = 16

    def __init__(self):
        self.out_dim = 2
        self.items_seen = 0

    def config(self):
        return {}

    def _embed_batch(self, items):
        self.items_seen += len(items)
        return np.array([[len(t), sum(c in "aeiou" for c in t)] for t in items], np.float32)


class PaddingTower(CountingTower):
    """As a padded network: each vector depends on the longest text the tower was given."""

    name = "chunk-padding-test"

    def embed(self, items, batch_size=None, progress=True):
        self.items_seen += len(items)
        longest = max(len(t) for t in items)
        return np.array([[len(t), longest] for t in items], np.float32)


TEXTS = [f"caption {i}: a photo of item {i} on a table" for i in range(600)]
CHUNK = 32   # shortest chunk 8, longest 128, a boundary after a digest divisible by 25


def oracle_bounds(texts, low=8, divisor=25, high=128):
    """The boundary rule worked out from its definition, with its own text digests."""
    out, start = [], 0
    for i, t in enumerate(texts):
        d = hashlib.blake2b(b"text\0" + t.encode(), digest_size=16).digest()
        if i + 1 - start == high or (i + 1 - start >= low and int(d.hex(), 16) % divisor == 0):
            out.append((start, i + 1))
            start = i + 1
    return out + ([(start, len(texts))] if start < len(texts) else [])


def test_the_boundary_rule_by_hand():
    # chunk_size 8: at least 2 items, a boundary after a multiple of 7, at most 32 items
    values = [7, 1, 14, 3, 0] + [1] * 40
    digests = [v.to_bytes(16, "big") for v in values]
    assert chunk_bounds(digests, 8) == [(0, 3), (3, 5), (5, 37), (37, 45)]
    assert chunk_bounds(digests[:1], 8) == [(0, 1)] and chunk_bounds([], 8) == []
    assert chunk_bounds(digests, 1) == [(i, i + 1) for i in range(45)]   # every item its own chunk


def test_chunks_hold_chunk_size_items_on_average():
    rng = np.random.default_rng(0)
    digests = [rng.bytes(16) for _ in range(200_000)]
    lengths = np.diff([0] + [stop for _, stop in chunk_bounds(digests, 512)])
    assert lengths[:-1].min() >= 128 and lengths.max() <= 2048
    assert abs(lengths.mean() - 512) < 0.1 * 512


@pytest.mark.parametrize("bad", [0, -3, 2.5, "512", True])
def test_a_chunk_size_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(InputError, match="chunk_size"):
        chunk_bounds([b"x" * 16], bad)
    with pytest.raises(InputError, match="chunk_size"):
        EmbeddingCache("unused", chunk_size=bad)


EDITS = {
    "insert at the front": lambda t: ["a new photo that sorts first"] + t,
    "insert in the middle": lambda t: t[:300] + ["a new photo in the middle"] + t[300:],
    "delete in the middle": lambda t: t[:300] + t[301:],
    "append": lambda t: t + ["one more photo"],
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_recomputes_only_the_chunks_around_it(tmp_path, edit):
    assert len(oracle_bounds(TEXTS)) > 10
    EmbeddingCache(tmp_path, chunk_size=CHUNK).embed(CountingTower(), TEXTS)
    edited = EDITS[edit](TEXTS)
    tower = CountingTower()
    cache = EmbeddingCache(tmp_path, chunk_size=CHUNK)
    got = cache.embed(tower, edited)
    cached = {tuple(TEXTS[s:e]) for s, e in oracle_bounds(TEXTS)}
    new = [(s, e) for s, e in oracle_bounds(edited) if tuple(edited[s:e]) not in cached]
    assert tower.items_seen == sum(e - s for s, e in new)
    assert 1 <= len(new) <= 2 and tower.items_seen <= 2 * 4 * CHUNK   # not the 600 after it
    assert (cache.misses, cache.hits) == (len(new), len(oracle_bounds(edited)) - len(new))
    assert np.array_equal(got, CountingTower().embed(edited))


@pytest.mark.parametrize("edit", EDITS)
def test_after_an_edit_the_vectors_are_those_of_a_fresh_cache(tmp_path, edit):
    """Even for a tower whose vectors depend on the batch, the edited collection reads back
    what a cache filled from nothing computes: the chunks are the same."""
    EmbeddingCache(tmp_path / "old", chunk_size=CHUNK).embed(PaddingTower(), TEXTS)
    edited = EDITS[edit](TEXTS)
    got = EmbeddingCache(tmp_path / "old", chunk_size=CHUNK).embed(PaddingTower(), edited)
    fresh = EmbeddingCache(tmp_path / "fresh", chunk_size=CHUNK).embed(PaddingTower(), edited)
    by_chunk = np.concatenate([PaddingTower().embed(edited[s:e]) for s, e in oracle_bounds(edited)])
    assert np.array_equal(got, fresh) and np.array_equal(got, by_chunk)
