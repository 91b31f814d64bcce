"""Shards searched in parallel and merged (jointspace.index.sharded)."""

from __future__ import annotations

import numpy as np
import pytest

from jointspace import Index
from jointspace.errors import InputError
from jointspace.index.ondisk import build_on_disk
from jointspace.index.sharded import ShardedIndex, merge_results

D = 12


def data(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def flat_shards(x, cuts, metric):
    bounds = [0, *cuts, len(x)]
    return [Index.build(x[a:b], spec="Flat", metric=metric, ids=np.arange(a, b),
                        metadata=[{"label": int(i)} for i in range(a, b)])
            for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_shards_equal_one_flat_index(metric):
    x = data(900)
    whole = Index.build(x, spec="Flat", metric=metric)
    sharded = ShardedIndex(flat_shards(x, [100, 450, 460], metric))
    q = data(40, seed=1)
    for k in (1, 10, 50):
        s1, i1 = sharded.search(q, k)
        s2, i2 = whole.search(q, k)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
    assert sharded.ntotal == 900 and len(sharded) == 900
    np.testing.assert_array_equal(sharded.ids, np.arange(900))


def test_fewer_results_than_k_are_padded_at_the_end():
    x = data(7)
    sharded = ShardedIndex(flat_shards(x, [2], "cosine"))
    scores, ids = sharded.search(x[:3], 10)
    assert (ids[:, 7:] == -1).all() and np.isneginf(scores[:, 7:]).all()
    assert sorted(ids[0, :7].tolist()) == list(range(7)) and ids[0, 0] == 0
    l2 = ShardedIndex(flat_shards(x, [2], "l2"))
    scores, ids = l2.search(x[:1], 9)
    assert (ids[0, 7:] == -1).all() and np.isposinf(scores[0, 7:]).all() and ids[0, 0] == 0


def test_k_beyond_a_shard_but_within_the_whole_is_answered_in_full(monkeypatch):
    import jointspace.index._inputs as inputs

    monkeypatch.setattr(inputs, "MAX_PADDED_K", 5)   # the padding limit, scaled down
    x = data(12)
    sharded = ShardedIndex(flat_shards(x, [4], "cosine"))
    scores, ids = sharded.search(x[:2], 12)   # more than each shard holds (4 and 8)
    assert sorted(ids[0].tolist()) == list(range(12))
    np.testing.assert_array_equal(ids, Index.build(x, spec="Flat", metric="cosine").search(x[:2], 12)[1])
    with pytest.raises(InputError, match=r"k: expected at most 12 results per query \(the index holds 12"):
        sharded.search(x[:2], 13)


def test_merge_orders_by_score_and_keeps_shard_order_on_ties():
    a = (np.array([[0.9, 0.5]], np.float32), np.array([[1, 2]]))
    b = (np.array([[0.7, 0.5]], np.float32), np.array([[3, 4]]))
    c = (np.array([[-np.inf, -np.inf]], np.float32), np.array([[-1, -1]]))
    s, i = merge_results([a, b, c], 5, higher_is_better=True)
    assert i.tolist() == [[1, 3, 2, 4, -1]]
    np.testing.assert_array_equal(s, np.array([[0.9, 0.7, 0.5, 0.5, -np.inf]], np.float32))
    s, i = merge_results([a, b], 3, higher_is_better=False)   # distances: lowest first
    assert i.tolist() == [[2, 4, 3]]


def test_metadata_comes_from_the_shard_that_holds_the_id():
    sharded = ShardedIndex(flat_shards(data(30), [10, 20], "cosine"))
    rows = sharded.metadata([25, -1, 3, 12])
    assert [r and r["label"] for r in rows] == [25, None, 3, 12]
    with pytest.raises(InputError, match="expected ids in the index, got 1"):
        sharded.metadata([30])


def test_items_are_found_by_path_in_every_shard():
    x = data(6)
    paths = ["/p/a.png", "/p/b.png", "/p/a.png", "/p/c.png", "/p/a.png", "/p/d.png"]
    shards = [Index.build(x[a:b], spec="Flat", ids=np.arange(a, b), metadata=[{"path": p} for p in paths[a:b]])
              for a, b in ((0, 3), (3, 6))]
    assert shards[0].ids_with_path("/p/a.png").tolist() == [0, 2]
    assert ShardedIndex(shards).ids_with_path("/p/a.png").tolist() == [0, 2, 4]
    assert ShardedIndex(shards).ids_with_path("/p/zzz.png").size == 0


def test_save_and_load(tmp_path):
    x = data(300)
    sharded = ShardedIndex(flat_shards(x, [150], "cosine"))
    sharded.info = {"model": "m"}
    sharded.save(tmp_path / "s")
    again = Index.load(tmp_path / "s")
    assert isinstance(again, ShardedIndex) and again.info == {"model": "m"} and again.ntotal == 300
    q = data(5, seed=2)
    np.testing.assert_array_equal(again.search(q, 8)[1], sharded.search(q, 8)[1])


def test_on_disk_shards(tmp_path):
    x = data(4000)
    parts = [build_on_disk([x[a:a + 2000]], tmp_path / f"p{a}", spec="IVF4,Flat", train_size=2000,
                           first_id=a) for a in (0, 2000)]
    sharded = ShardedIndex(parts).set_search_params(nprobe=4)   # all lists, no compression: exact
    q = data(20, seed=3)
    np.testing.assert_array_equal(sharded.search(q, 10)[1], Index.build(x, spec="Flat").search(q, 10)[1])
    sharded.save(tmp_path / "all")
    np.testing.assert_array_equal(Index.load(tmp_path / "all").search(q, 10)[1], sharded.search(q, 10)[1])


def test_bad_shards():
    x = data(20)
    with pytest.raises(InputError, match="at least one index"):
        ShardedIndex([])
    with pytest.raises(InputError, match="disjoint ids"):
        ShardedIndex([Index.build(x), Index.build(x)])
    with pytest.raises(InputError, match=r"shards\[1\]: expected dim 12 and metric 'cosine'"):
        ShardedIndex([Index.build(x), Index.build(data(5)[:, :4], ids=np.arange(100, 105))])
    with pytest.raises(InputError, match=r"shards\[0\]: expected an Index"):
        ShardedIndex([object()])
    for bad, name in ((None, "NoneType"), (Index.build(x), "Index"), ("idx/part-0", "str")):
        with pytest.raises(InputError, match=rf"^shards: expected a sequence of Index objects, got {name}$"):
            ShardedIndex(bad)   # None and one Index raised TypeError ('... is not iterable')


def test_search_params_one_shard_refuses_change_no_shard():
    """The shards before the one that refused kept the new value."""
    x = data(400)
    shards = [Index.build(x[:200], spec="IVF16,Flat"), Index.build(x[200:], spec="IVF4,Flat", ids=np.arange(200, 400))]
    sharded = ShardedIndex(shards)
    with pytest.raises(InputError, match=r"^nprobe: expected an integer <= 4 \(nlist\), got 8 "
                                         r"\(in shards\[1\], 'IVF4,Flat'\)$"):
        sharded.set_search_params(nprobe=8)
    assert [s.search_params for s in shards] == [{"nprobe": 16}, {"nprobe": 4}]
    sharded.set_search_params(nprobe=3)
    assert [s.search_params for s in shards] == [{"nprobe": 3}, {"nprobe": 3}]


def test_cli_append_to_a_sharded_index_says_it_cannot_and_a_new_index_may_replace_it(tmp_path, capsys):
    from cli_support import one_line, run

    model, whole = tmp_path / "m", tmp_path / "whole"
    assert run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "6", "--out", model)[0] == 0
    assert run(capsys, "index", model, "--dataset", "wikipedia", "--modality", "image", "--spec", "Flat",
               "--out", whole)[0] == 0
    index = Index.load(whole)
    ids = index.ids
    vectors = np.stack([index._faiss.reconstruct(i) for i in range(index.ntotal)])   # normalised, as stored
    shards = [Index.build(vectors[part], spec="Flat", ids=ids[part]) for part in (slice(0, 300), slice(300, None))]
    sharded = ShardedIndex(shards)
    sharded.info = dict(index.info)
    sharded.save(tmp_path / "sharded")
    before = sorted(p.name for p in (tmp_path / "sharded").iterdir())
    code, _, err = run(capsys, "index", tmp_path / "sharded", "--append", "--dataset", "wikipedia", "--split", "train")
    assert code == 2 and one_line(err), err
    assert f"--append: {str(tmp_path / 'sharded')!r} is a sharded index" in err and "build the index again" in err
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == before
    assert Index.load(tmp_path / "sharded").ntotal == index.ntotal
    # a new index may replace a sharded one, as a sharded one may replace an index
    (tmp_path / "sharded" / "notes.txt").write_text("kept")
    code, _, err = run(capsys, "index", model, "--dataset", "wikipedia", "--modality", "image", "--spec", "Flat",
                       "--out", tmp_path / "sharded")
    assert code == 0, err
    again = Index.load(tmp_path / "sharded")
    assert not isinstance(again, ShardedIndex) and again.ntotal == index.ntotal
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir() if not p.name.startswith(".")) == [
        "index.faiss", "index.json", "metadata.sqlite", "notes.txt"]


def test_an_index_replaces_a_sharded_index_folder(tmp_path):
    """It was refused: 'exists and is not a saved index (it holds ..., shard-0000, shard-0001 ...)'."""
    x = data(300)
    ShardedIndex(flat_shards(x, [150], "l2")).save(tmp_path / "s")
    single = Index.build(x[:100], metric="l2")
    single.save(tmp_path / "s")
    loaded = Index.load(tmp_path / "s")
    assert not isinstance(loaded, ShardedIndex) and loaded.ntotal == 100
    assert not (tmp_path / "s" / "shard-0000").exists() and not (tmp_path / "s" / "shards.json").exists()
    ShardedIndex(flat_shards(x, [150], "l2")).save(tmp_path / "s")
    disk = build_on_disk([x], tmp_path / "s", spec="IVF4,Flat", train_size=300)
    assert disk.on_disk and not isinstance(Index.load(tmp_path / "s"), ShardedIndex)


@pytest.mark.parametrize("metric", ["ip", "l2", "cosine"])
def test_shards_order_equal_scores_as_one_index_does(metric):
    """Equal scores across shards are merged in increasing id, as one index orders them (the
    merge kept shard order, and one index FAISS's order, so the two differed)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=(300, 4)).astype(np.float32)
    q = rng.integers(-3, 4, size=(60, 4)).astype(np.float32)
    x[~x.any(1)], q[~q.any(1)] = 1, 1   # no zero vectors (cosine)
    whole = Index.build(x, spec="Flat", metric=metric)
    sharded = ShardedIndex([Index.build(x[:130], spec="Flat", metric=metric),
                            Index.build(x[130:], spec="Flat", metric=metric, ids=np.arange(130, 300))])
    s1, i1 = sharded.search(q, 10)
    s2, i2 = whole.search(q, 10)
    np.testing.assert_array_equal(s1, s2)
    all_scores = whole.search(q, 11)[0]
    clean = all_scores[:, 9] != all_scores[:, 10]   # no tie straddles the 10th place
    assert clean.sum() >= 5
    np.testing.assert_array_equal(i1[clean], i2[clean])
    tie = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float32)
    parts = [Index.build(tie[:2], spec="Flat", metric=metric, ids=[7, 2]),
             Index.build(tie[2:], spec="Flat", metric=metric, ids=[9, 0])]
    assert ShardedIndex(parts).search(tie[:1], 4)[1].tolist() == [[0, 2, 7, 9]]


def test_cli_serves_a_sharded_index_folder(tmp_path, capsys, monkeypatch):
    """'serve --index SHARDED' failed before loading: '--index: ... is not a jointspace index (no
    index.json ...)', as reading what the index records looked for index.json alone."""
    from cli_support import run

    from jointspace.index.persistence import read_index_info

    model, whole = tmp_path / "m", tmp_path / "whole"
    assert run(capsys, "fit", "wikipedia", "--model", "cca", "--n-components", "6", "--out", model)[0] == 0
    assert run(capsys, "index", model, "--dataset", "wikipedia", "--modality", "image", "--spec", "Flat",
               "--out", whole)[0] == 0
    index = Index.load(whole)
    vectors = np.stack([index._faiss.reconstruct(i) for i in range(index.ntotal)])
    ids = index._internal_to_external()
    sharded = ShardedIndex([Index.build(vectors[p], spec="Flat", ids=ids[p])
                            for p in (slice(0, 300), slice(300, None))])
    sharded.info = dict(index.info)
    sharded.save(tmp_path / "sharded")
    assert read_index_info(tmp_path / "sharded") == index.info
    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.setdefault("app", app))
    code, _, err = run(capsys, "serve", "--index", tmp_path / "sharded", "--port", "0")
    assert code == 0, err
    from fastapi.testclient import TestClient

    info = TestClient(served["app"], base_url="http://localhost").get("/api/info").json()["indexes"]["image"]
    assert info["ntotal"] == index.ntotal and info["spec"] == "2 shards of Flat"


def test_shard_of_names_the_shard_holding_an_id():
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    first, second = Index.build(x[:10], spec="Flat", ids=range(100, 110)), Index.build(x[10:], spec="Flat")
    sharded = ShardedIndex([first, second])
    assert sharded.shard_of(105) is first and sharded.shard_of(0) is second and sharded.shard_of(19) is second
    assert sharded.shard_of(20) is None and sharded.shard_of(-1) is None
