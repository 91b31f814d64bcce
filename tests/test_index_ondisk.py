"""On-disk IVF indexes built from a stream of batches (jointspace.index.ondisk)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from jointspace import Index
from jointspace.errors import InputError
from jointspace.index.ondisk import build_on_disk

D, N, TRAIN = 16, 3000, 2000
SPEC = "IVF8,PQ4x4"   # 16 centroids per sub-quantiser: trains on a few thousand rows without warnings


def data(n=N, d=D, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    return (centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def batches(x, size=700):
    return (x[s:s + size] for s in range(0, len(x), size))


def in_memory(x, metric="cosine", nprobe=4):
    """The same index built the ordinary way: trained on the first TRAIN rows, then all added."""
    idx = Index(D, SPEC, metric)
    idx.train(x[:TRAIN], seed=0)
    idx.add(x)
    return idx.set_search_params(nprobe=nprobe)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_streamed_shards_give_the_in_memory_index(tmp_path, metric):
    x = data()
    # batches of 700 and shards of 1,100: shard boundaries fall inside batches
    idx = build_on_disk(batches(x), tmp_path / "idx", spec=SPEC, metric=metric, train_size=TRAIN,
                        shard_size=1100, search_params={"nprobe": 4}, keep_vectors=False)
    assert not idx.keeps_vectors and idx.on_disk and idx.ntotal == N and idx.search_params["nprobe"] == 4
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        ".jointspace-written.json", "index.faiss", "index.json", "lists.ivfdata", "metadata.sqlite"]   # shard files gone
    ref = in_memory(x, metric)
    q = data(50, seed=1)
    s1, i1 = idx.search(q, 10)
    s2, i2 = ref.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(idx.ids, np.arange(N))


def test_recall_against_exact_search(tmp_path):
    x = data()
    idx = build_on_disk(batches(x), tmp_path / "idx", spec="IVF8,Flat", train_size=TRAIN, shard_size=1000,
                        keep_vectors=False)
    exact = Index.build(x, spec="Flat")
    q = data(100, seed=2)
    _, approx = idx.search(q, 10, params={"nprobe": 8})   # every list visited, uncompressed: exact
    _, truth = exact.search(q, 10)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx, truth)])
    assert recall >= 0.99
    _, few = idx.search(q, 10, params={"nprobe": 2})
    assert np.mean([len(set(a) & set(t)) / 10 for a, t in zip(few, truth)]) >= 0.7   # 0.78 measured


def test_save_load_and_moving_the_folder(tmp_path):
    x = data()
    labels = [{"label": int(i % 7), "text": f"item {i}"} for i in range(N)]
    stream = ((x[s:s + 500], labels[s:s + 500]) for s in range(0, N, 500))
    idx = build_on_disk(stream, tmp_path / "a", spec=SPEC, train_size=TRAIN, shard_size=1000,
                        search_params={"nprobe": 3}, info={"model": "m"})
    q = data(20, seed=3)
    want = idx.search(q, 5)
    del idx
    shutil.move(tmp_path / "a", tmp_path / "moved")      # the lists are found beside index.faiss
    again = Index.load(tmp_path / "moved")
    assert again.on_disk and again.info == {"model": "m"} and again.search_params == {"nprobe": 3, "k_factor": 10}
    np.testing.assert_array_equal(again.search(q, 5)[1], want[1])
    assert again.metadata([0, 2999]) == [
        {"id": 0, "label": 0, "text": "item 0", "path": None, "extra": {}},
        {"id": 2999, "label": 2999 % 7, "text": "item 2999", "path": None, "extra": {}}]
    again.save(tmp_path / "copy")                        # copies lists.ivfdata into the new folder
    copy = Index.load(tmp_path / "copy")
    for name in ("lists.ivfdata", "vectors.f32"):
        assert (tmp_path / "copy" / name).stat().st_size == (tmp_path / "moved" / name).stat().st_size
    np.testing.assert_array_equal(copy.search(q, 5)[1], want[1])


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_candidates_are_reranked_by_the_exact_vectors(tmp_path, metric):
    x = data()
    idx = build_on_disk(batches(x), tmp_path / "i", spec=SPEC, metric=metric, train_size=TRAIN, first_id=500,
                        search_params={"nprobe": 4, "k_factor": 6})
    assert idx.keeps_vectors and idx.search_params == {"nprobe": 4, "k_factor": 6}
    assert (tmp_path / "i" / "vectors.f32").stat().st_size == N * D * 4
    q = data(30, seed=4)
    got_s, got_i = idx.search(q, 5)
    # independently: the compressed index's 30 best, scored again exactly
    _, cand = idx.search(q, 30, params={"k_factor": 1})
    stored = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    stored = stored.astype(np.float64)
    qq = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q.astype(np.float64)
    for row, c in enumerate(cand):
        v = stored[c - 500]
        exact = ((v - qq[row]) ** 2).sum(1) if metric == "l2" else v @ qq[row]
        best = np.argsort(exact if metric == "l2" else -exact, kind="stable")[:5]
        np.testing.assert_array_equal(got_i[row], c[best])
        np.testing.assert_allclose(got_s[row], exact[best], rtol=1e-5, atol=1e-5)
    assert Index.load(tmp_path / "i").search(q, 5)[1].tolist() == got_i.tolist()


def test_reranking_raises_recall_of_a_coarse_quantiser(tmp_path):
    x = data(6000)
    idx = build_on_disk(batches(x), tmp_path / "i", spec="IVF8,PQ8x4", train_size=TRAIN)   # 4 bytes a vector
    _, truth = Index.build(x, spec="Flat").search(data(100, seed=5), 10)
    recall = {f: np.mean([len(set(a) & set(t)) / 10 for a, t in
                          zip(idx.search(data(100, seed=5), 10, params={"nprobe": 8, "k_factor": f})[1], truth)])
              for f in (1, 10, 100)}
    # measured: 0.316, 0.828, 1.0 (all lists visited: the 1,000 candidates hold the true ten)
    assert recall[1] < 0.5 and recall[10] > recall[1] + 0.3 and recall[100] >= 0.99


@pytest.mark.parametrize("k", [300, 400])
def test_k_taking_every_vector_still_reranks_by_the_exact_vectors(tmp_path, k):
    """With k at or above the vectors held, the compressed index's own (approximate) scores and
    order came back, while any smaller k gave the exact ones."""
    x, q = data(300), data(4, seed=6)
    idx = build_on_disk([x], tmp_path / "i", spec=SPEC, metric="l2", train_size=300, search_params={"nprobe": 8})
    exact = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(exact, axis=1, kind="stable")
    scores, ids = idx.search(q, k)
    np.testing.assert_array_equal(ids[:, :300], order)
    np.testing.assert_allclose(scores[:, :300], np.take_along_axis(exact, order, 1), rtol=1e-5, atol=1e-5)
    assert (ids[:, 300:] == -1).all()
    np.testing.assert_array_equal(idx.search(q, 5)[1], ids[:, :5])


def test_a_pca_reduced_ivf_flat_keeps_its_vectors_by_default(tmp_path):
    """'PCA4,IVF4,Flat' counted as exact ('IVF...,Flat') and kept no vectors: it ranked by the
    4 PCA dimensions alone (recall@10 0.07 against exact search on 16-d data)."""
    x, q = data(2000), data(20, seed=7)
    idx = build_on_disk([x], tmp_path / "p", spec="PCA4,IVF4,Flat", metric="l2", train_size=2000,
                        search_params={"nprobe": 4, "k_factor": 200})   # every vector a candidate
    assert idx.keeps_vectors and (tmp_path / "p" / "vectors.f32").stat().st_size == 2000 * D * 4
    exact = ((q[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(exact, axis=1, kind="stable")[:, :10]
    scores, ids = idx.search(q, 10)
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, order, 1), rtol=1e-5)
    plain = build_on_disk([x], tmp_path / "f", spec="IVF4,Flat", train_size=2000)
    assert not plain.keeps_vectors and not (tmp_path / "f" / "vectors.f32").exists()


@pytest.mark.parametrize("spec", ["IVF4,PQ4x4,RFlat", "IVF4,Flat,Refine(Flat)"])
def test_a_refine_stage_is_refused_and_the_folder_left_as_it_was(tmp_path, spec):
    """The build went through and replaced the folder with one that did not load ('IndexIDMap
    id_map size (0) does not match ntotal (3000)'): the merged lists kept no ids."""
    x, q = data(), data(5, seed=8)
    before = build_on_disk([x], tmp_path / "i", spec="IVF4,Flat", metric="l2", train_size=TRAIN)
    want = before.search(q, 5)
    with pytest.raises(InputError, match=rf"^spec: an on-disk index needs its IVF layer outermost .* "
                                         rf"got {re.escape(repr(spec))}"):
        build_on_disk([x], tmp_path / "i", spec=spec, metric="l2", train_size=TRAIN)
    got = Index.load(tmp_path / "i").search(q, 5)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("spec", ["IVF4,PQ4x4fs", "IVF4,PQ4x4fsr", "IVF4,FlatPanorama2"])
def test_lists_that_cannot_be_memory_mapped_are_refused_before_the_build(tmp_path, spec):
    """After training and adding every shard the merge failed with FAISS's own RuntimeError
    ('il->nlist == nlist && ...' failed, 'could not load ArrayInvertedLists as ... ilp2')."""
    with pytest.raises(InputError, match=rf"^spec: an on-disk index needs plain inverted lists, and "
                                         rf"{re.escape(repr(spec))} \(IndexIVF\w+\) lays its lists out otherwise"):
        build_on_disk([data(1000)], tmp_path / "i", spec=spec, metric="l2", train_size=1000)
    assert not (tmp_path / "i").exists()


def test_stored_vectors_bad_input(tmp_path):
    x = data()
    with pytest.raises(InputError, match=r"search_params\['k_factor'\]: applies when the vectors are kept"):
        build_on_disk(batches(x), tmp_path / "e", spec=SPEC, train_size=TRAIN, keep_vectors=False,
                      search_params={"k_factor": 4})
    with pytest.raises(InputError, match="keep_vectors: expected True, False or None"):
        build_on_disk(batches(x), tmp_path / "e", spec=SPEC, train_size=TRAIN, keep_vectors="yes")
    plain = build_on_disk(batches(x), tmp_path / "p", spec=SPEC, train_size=TRAIN, keep_vectors=False)
    with pytest.raises(InputError, match=r"params\['k_factor'\]: applies to indexes that keep their vectors"):
        plain.search(x[:2], 3, params={"k_factor": 4})
    with pytest.raises(InputError, match="k_factor: applies to indexes that keep their vectors"):
        Index.build(x, spec="Flat").set_search_params(k_factor=4)
    kept = build_on_disk(batches(x), tmp_path / "k", spec=SPEC, train_size=TRAIN)
    for bad, message in ((0, "expected an integer >= 1"), (10**6, "expected an integer <= 1000"), (2.5, "integer")):
        with pytest.raises(InputError, match=rf"k_factor.*{message}"):
            kept.search(x[:2], 3, params={"k_factor": bad})
    path = tmp_path / "k" / "vectors.f32"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(InputError, match="vectors.f32 .* is truncated"):
        Index.load(tmp_path / "k")


def test_ids_start_where_asked(tmp_path):
    idx = build_on_disk(batches(data()), tmp_path / "i", spec=SPEC, train_size=TRAIN, first_id=10_000)
    np.testing.assert_array_equal(idx.ids, np.arange(10_000, 10_000 + N))


def test_ids_past_two_to_the_63_are_refused_and_nothing_is_left(tmp_path):
    """np.arange raised OverflowError ('Python int too large to convert to C long') half way."""
    x = data()
    with pytest.raises(InputError, match=r"^first_id: expected the ids first_id \.\. first_id \+ n - 1 to stay below "
                                         rf"2\*\*63, got first_id={2**63 - 1000} for a stream of at least 1400 vectors$"):
        build_on_disk(batches(x), tmp_path / "i", spec=SPEC, train_size=TRAIN, first_id=2**63 - 1000)
    assert not (tmp_path / "i").exists()
    with pytest.raises(InputError, match=rf"^first_id: expected an integer <= {2**63 - 1}, got {2**63}$"):
        build_on_disk(batches(x), tmp_path / "i", spec=SPEC, train_size=TRAIN, first_id=2**63)
    last = build_on_disk(batches(x), tmp_path / "i", spec=SPEC, train_size=TRAIN, first_id=2**63 - len(x))
    assert last.ids[-1] == 2**63 - 1 and last.search(x[-1:], 1)[1][0, 0] == 2**63 - 1


def test_truncated_lists_are_refused(tmp_path):
    build_on_disk(batches(data()), tmp_path / "i", spec=SPEC, train_size=TRAIN)
    path = tmp_path / "i" / "lists.ivfdata"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match="lists.ivfdata .* is truncated"):
        Index.load(tmp_path / "i")


def test_bad_input(tmp_path):
    x = data()
    with pytest.raises(InputError, match="empty stream"):
        build_on_disk(iter([]), tmp_path / "e", spec=SPEC)
    with pytest.raises(InputError, match="empty stream"):
        build_on_disk([np.empty((0, D), np.float32)], tmp_path / "e", spec=SPEC)
    bad = [x[:2500], x[2500:2600, :8]]
    with pytest.raises(InputError, match=r"batches\[1\]: expected vectors of dim 16 .*got 8"):
        build_on_disk(bad, tmp_path / "e", spec=SPEC, train_size=TRAIN)
    assert not (tmp_path / "e").exists()                 # nothing half-built is left
    with pytest.raises(InputError, match="needs an IVF layer"):
        build_on_disk(batches(x), tmp_path / "e", spec="HNSW16")
    with pytest.raises(InputError, match="explicit IVF spec"):
        build_on_disk(batches(x), tmp_path / "e", spec="auto")
    with pytest.raises(InputError, match="needs at least 16 training vectors"):
        build_on_disk(batches(x[:10]), tmp_path / "e", spec=SPEC)
    with pytest.raises(InputError, match=r"^train_size: spec .* needs at least 16 training vectors .*; got 10\."):
        build_on_disk(batches(x), tmp_path / "e", spec=SPEC, train_size=10)   # it said 'vectors: ... got 10'
    with pytest.raises(InputError, match=r"^train_size: spec .* needs at least 16 training vectors .*; got 10\."):
        build_on_disk(batches(x[:20], size=10), tmp_path / "e", spec=SPEC, train_size=10)
    with pytest.raises(InputError, match=r"^vectors: spec .* needs at least 16 training vectors .*; got 10\. "):
        build_on_disk(batches(x[:10], size=10), tmp_path / "e", spec=SPEC, train_size=10)   # all there is
    with pytest.raises(InputError, match="batches: expected an iterable"):
        build_on_disk(x, tmp_path / "e", spec=SPEC)
    with pytest.raises(InputError, match="shard_size"):
        build_on_disk(batches(x), tmp_path / "e", spec=SPEC, shard_size=0)


@pytest.mark.parametrize("params,message", [
    ([("nprobe", 2)], r"^search_params: expected a dict with keys from nprobe, efSearch, k_factor; got \[\("),
    ({"nprob": 2}, r"^search_params: unknown setting 'nprob'; expected one of nprobe, efSearch, k_factor$"),
    ({"nprobe": 2.5}, r"^search_params\['nprobe'\]: expected an integer, got 2.5$"),
    ({"k_factor": 0}, r"^search_params\['k_factor'\]: expected an integer >= 1, got 0$"),
])
def test_bad_search_params_name_search_params(tmp_path, params, message):
    """They raised TypeError or ValueError from inside the build, after the training."""
    with pytest.raises(InputError, match=message):
        build_on_disk(batches(data()), tmp_path / "e", spec=SPEC, train_size=TRAIN, search_params=params)
    assert not (tmp_path / "e").exists()


def test_on_disk_index_is_read_only(tmp_path):
    idx = build_on_disk(batches(data()), tmp_path / "i", spec=SPEC, train_size=TRAIN)
    with pytest.raises(InputError, match="cannot add vectors in an on-disk index"):
        idx.add(data(5))
    with pytest.raises(InputError, match="cannot remove vectors in an on-disk index"):
        idx.remove([1])


def test_auto_on_disk_spec_trains_on_small_collections():
    from jointspace.index.spec import on_disk_spec

    assert on_disk_spec(256, 128) == "IVF64,PQ16"     # 4 * sqrt(256) lists, 8 dimensions a byte
    assert on_disk_spec(100, 9) == "IVF32,Flat"       # too few for PQ's 256 centroids
    assert on_disk_spec(10, 9) == "IVF8,Flat"         # 4 * sqrt(10) rounds to 16 lists: more than 10
    assert on_disk_spec(1, 4) == "IVF1,Flat"


def test_cli_on_disk_auto_spec_builds_below_256_items(tmp_path, capfd):
    """'--spec auto' chose IVF32,PQ1 for 100 items and failed: 'vectors: spec 'IVF32,PQ1' needs at
    least 256 training vectors ...; use a smaller spec (e.g. 'Flat' ...)', which --on-disk refuses."""
    from cli_support import run

    from jointspace import load_model
    from jointspace.data import load_dataset

    test = load_dataset("wikipedia", "test")
    np.savez(tmp_path / "small.npz", I=np.asarray(test["image"])[:100], T=np.asarray(test["text"])[:100])
    model = tmp_path / "run"
    assert run(capfd, "fit", "wikipedia", "--model", "cca", "--n-components", "6", "--out", model)[0] == 0
    code, out, err = run(capfd, "index", model, "--data", tmp_path / "small.npz", "--modality", "image=I",
                         "--modality", "text=T", "--modality", "image", "--on-disk", "--out", tmp_path / "disk")
    assert code == 0, err
    disk = Index.load(tmp_path / "disk")
    assert disk.on_disk and disk.resolved_spec == "IVF32,Flat" and disk.ntotal == 100
    q = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    flat = Index.build(load_model(model).encode("image", np.asarray(test["image"])[:100]), spec="Flat")
    np.testing.assert_array_equal(disk.search(q, 10, params={"nprobe": 32})[1], flat.search(q, 10)[1])


def test_cli_streams_into_an_on_disk_index(tmp_path, capfd, monkeypatch):
    """capfd: what FAISS prints from C++ (file descriptor 1) is captured too."""
    import json

    from cli_support import one_line, run

    model = tmp_path / "run"
    assert run(capfd, "fit", "wikipedia", "--model", "rcca", "--param", "reg=0.5", "--n-components", "9",
               "--out", model)[0] == 0
    common = ["index", model, "--dataset", "wikipedia", "--modality", "image", "--spec", "IVF4,Flat"]
    code, out, err = run(capfd, *common, "--on-disk", "--batch-rows", "100", "--out", tmp_path / "disk")
    assert code == 0, err
    assert "indexed 693 image vectors" in out
    assert run(capfd, *common, "--out", tmp_path / "mem")[0] == 0
    disk, mem = Index.load(tmp_path / "disk"), Index.load(tmp_path / "mem")
    assert disk.on_disk and not mem.on_disk and disk.info["modality"] == "image"
    q = np.random.default_rng(0).normal(size=(30, 9)).astype(np.float32)
    # trained on the same (all) vectors with the same seed, the streamed index is the same index
    np.testing.assert_array_equal(disk.search(q, 10, params={"nprobe": 2})[1], mem.search(q, 10, params={"nprobe": 2})[1])
    assert disk.metadata(disk.ids[:50]) == mem.metadata(mem.ids[:50])
    code, out, err = run(capfd, "search", tmp_path / "disk", "--modality", "text", "--query-row", "3", "-k", "5",
                         "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 5          # FAISS prints nothing into the JSON
    code, _, err = run(capfd, "index", tmp_path / "disk", "--append", "--on-disk", "--dataset", "wikipedia")
    assert code != 0 and one_line(err) and "cannot be appended" in err
    from jointspace.models.base import JointModel

    encoded = []
    real_encode = JointModel.encode
    monkeypatch.setattr(JointModel, "encode", lambda self, m, items, **kw: encoded.append(len(items)) or
                        real_encode(self, m, items, **kw))
    code, _, err = run(capfd, "index", tmp_path / "disk", "--append", "--dataset", "wikipedia", "--split", "train")
    assert code == 2 and one_line(err), err
    assert f"--append: {str(tmp_path / 'disk')!r} is an on-disk index, whose lists are read-only, and 2163 image " \
           "items are new; build it again with all the data (--on-disk)" in err
    assert encoded == [1]   # only the probe of the model's dimension: nothing was embedded in vain
    monkeypatch.undo()
    code, _, err = run(capfd, *common, "--batch-rows", "0", "--on-disk", "--out", tmp_path / "x")
    assert code != 0 and one_line(err) and "--batch-rows: expected an integer >= 1, got 0" in err
    code, _, err = run(capfd, *common, "--on-disk", "--train-size", "2", "--out", tmp_path / "x")
    assert code == 2 and one_line(err) and "--train-size: spec 'IVF4,Flat' needs at least 4 training vectors" in err
    code, _, err = run(capfd, *common[:-2], "--spec", "HNSW32", "--on-disk", "--out", tmp_path / "x")
    assert code != 0 and one_line(err) and "needs an IVF layer" in err
    code, _, err = run(capfd, *common[:-2], "--no-keep-vectors", "--out", tmp_path / "x")
    assert code != 0 and one_line(err) and "add --on-disk" in err
    # a PQ index keeps the exact vectors by default and re-ranks by them; --no-keep-vectors keeps none
    pq = [*common[:-2], "--spec", "IVF4,PQ3x4", "--on-disk", "--train-size", "693"]
    assert run(capfd, *pq, "--out", tmp_path / "pq")[0] == 0
    assert run(capfd, *pq, "--no-keep-vectors", "--out", tmp_path / "pq-plain")[0] == 0
    kept, plain = Index.load(tmp_path / "pq"), Index.load(tmp_path / "pq-plain")
    assert kept.keeps_vectors and kept.search_params["k_factor"] == 10 and not plain.keeps_vectors
    assert (tmp_path / "pq" / "vectors.f32").is_file() and not (tmp_path / "pq-plain" / "vectors.f32").exists()
    _, truth = mem.search(q, 5, params={"nprobe": 4})
    hits = {name: np.mean([len(set(a) & set(t)) for a, t in zip(i.search(q, 5, params={"nprobe": 4})[1], truth)])
            for name, i in (("kept", kept), ("plain", plain))}
    # 9-d vectors in 3 bytes lose most neighbours; re-ranking 50 candidates restores nearly all
    assert hits["plain"] < 2.5 and hits["kept"] > 4.5   # measured: 1.9 and 4.77 of 5
