"""``jointspace embed --ray``: Ray Data over a local Ray instance, Parquet shards, resuming.

One local Ray (2 CPUs, a small object store) serves the whole module; when it cannot start,
the tests fail (they do not skip).
"""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pyarrow.parquet as pq
import pytest

from cli_support import one_line, run

import ray  # noqa: E402 -- the 'scale' extra is part of make install; a missing Ray fails here

from jointspace.towers import create_tower  # noqa: E402
from jointspace.towers.ray_embed import MANIFEST, embed_with_ray, read_embeddings, shard_name  # noqa: E402

WORDS = "red blue cat dog house tree car small big running under over the a green bird river".split()


@pytest.fixture(scope="module")
def local_ray():
    try:
        ray.init(num_cpus=2, object_store_memory=80 * 1024 ** 2, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 -- any failure to start is a failure of the module
        pytest.fail(f"a local Ray instance (2 CPUs) could not start: {exc}", pytrace=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    """A manifest of 70 captions of varied length (so MiniLM's longest-first order reorders them)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("captions") / "captions.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "label"])
        for i in range(70):
            w.writerow([1000 + i, " ".join(rng.choice(WORDS, size=int(rng.integers(2, 14)))), "xyz"[i % 3]])
    return path


def test_ray_vectors_equal_the_single_process_ones_bit_for_bit(local_ray, captions, tmp_path, capsys):
    code, _, err = run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "one.npy",
                       "--batch-size", 8, "--no-cache", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "shards",
                         "--ray", "--workers", 2, "--shard-size", 20, "--batch-size", 8, "--quiet", "--json")
    assert code == 0, err
    summary = json.loads(out)
    # 20 rows rounded up to 3 batches of 8 = 24 rows a shard: 70 rows -> 3 shards
    assert (summary["n"], summary["dim"], summary["shards"], summary["written"], summary["skipped"]) == \
        (70, 384, 3, 3, 0)
    ids, vectors = read_embeddings(tmp_path / "shards")
    expected = np.load(tmp_path / "one.npy")
    assert vectors.dtype == np.float32 and np.array_equal(vectors, expected)
    with captions.open(encoding="utf-8") as fh:
        assert ids.tolist() == [row["id"] for row in csv.DictReader(fh)]
    # the files themselves: row, id and vector columns, each shard at most 24 rows, every row once
    rows = []
    for s in range(3):
        t = pq.read_table(tmp_path / "shards" / shard_name(s))
        assert t.column_names == ["row", "id", "vector"] and t.num_rows <= 24
        r = t.column("row").to_numpy()
        v = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
        assert np.array_equal(v, expected[r])
        rows += r.tolist()
    assert sorted(rows) == list(range(70))


def test_a_rerun_skips_finished_shards_and_refuses_another_run(local_ray, captions, tmp_path, capsys):
    args = ["embed", captions, "--tower", "minilm", "--out", tmp_path / "s", "--ray", "--workers", 1,
            "--shard-size", 32, "--batch-size", 16, "--quiet", "--json"]
    assert run(capsys, *args)[0] == 0
    first = read_embeddings(tmp_path / "s")[1]
    (tmp_path / "s" / shard_name(1)).unlink()
    kept = {s: (tmp_path / "s" / shard_name(s)).stat().st_mtime_ns for s in (0, 2)}
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert (json.loads(out)["written"], json.loads(out)["skipped"]) == (1, 2)
    assert {s: (tmp_path / "s" / shard_name(s)).stat().st_mtime_ns for s in (0, 2)} == kept
    assert np.array_equal(read_embeddings(tmp_path / "s")[1], first)
    code, out, err = run(capsys, *args)
    assert code == 0 and (json.loads(out)["written"], json.loads(out)["skipped"]) == (0, 3)
    # the same folder with other batches is another run: refused, one line
    code, _, err = run(capsys, *[a if a != 16 else 8 for a in args])
    assert code != 0 and one_line(err) and "another embedding run" in err and "batch_size" in err
    assert json.loads((tmp_path / "s" / MANIFEST).read_text())["batch_size"] == 16


def test_an_unfinished_folder_is_not_read_as_complete(local_ray, captions, tmp_path, capsys):
    run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "s", "--ray", "--workers", 2,
        "--shard-size", 40, "--quiet")
    (tmp_path / "s" / shard_name(0)).unlink()
    with pytest.raises(ValueError, match="unfinished"):
        read_embeddings(tmp_path / "s")


def test_features_through_a_seeded_trainable_tower_one_and_two_workers(local_ray, tmp_path):
    x = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    tower = create_tower("mlp", in_dim=8, hidden=[16], out_dim=4, seed=3)
    expected = tower.embed(x, batch_size=16, progress=False)
    for workers in (1, 2):
        done = embed_with_ray(tower, x, np.arange(50) * 2, tmp_path / f"w{workers}", batch_size=16,
                              shard_size=16, workers=workers, progress=False)
        assert (done["shards"], done["written"]) == (4, 4)
        ids, vectors = read_embeddings(tmp_path / f"w{workers}")
        assert np.array_equal(vectors, expected) and ids.tolist() == list(range(0, 100, 2))
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_ray_options_are_checked(local_ray, captions, tmp_path, capsys):
    code, _, err = run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "v.npy", "--workers", 2)
    assert code != 0 and one_line(err) and "--workers: only with --ray" in err
    code, _, err = run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "v.npy", "--ray")
    assert code != 0 and one_line(err) and "--out: with --ray, expected a folder" in err
    code, _, err = run(capsys, "embed", captions, "--tower", "minilm", "--out", tmp_path / "s", "--ray",
                       "--shard-size", 0)
    assert code != 0 and one_line(err) and "--shard-size" in err


def test_an_address_nobody_answers_fails_in_one_line(captions, tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "jointspace", "embed", str(captions), "--tower", "minilm",
                           "--out", str(tmp_path / "s"), "--ray", f"127.0.0.1:{port}", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and one_line(done.stderr), done.stderr
    assert f"--ray: no Ray cluster answers at '127.0.0.1:{port}'" in done.stderr


@pytest.mark.parametrize("module", ["ray", "ray.data", "pyarrow"])
def test_without_ray_data_the_error_says_what_to_install_and_nothing_is_written(tmp_path, monkeypatch, module):
    from jointspace.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, module, None)   # as if it were not installed
    tower = create_tower("mlp", in_dim=8, out_dim=4, seed=0)
    x = np.zeros((5, 8), dtype=np.float32)
    with pytest.raises(MissingDependencyError, match=r"^embedding with Ray needs Ray Data and pyarrow "
                                                     rf"\({module} is not installed\): pip install 'jointspace\[scale\]'$"):
        embed_with_ray(tower, x, np.arange(5), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()   # no folder with a manifest and no shards


def test_a_damaged_folder_is_refused_naming_the_file(tmp_path):
    """A truncated shard raised pyarrow's ArrowInvalid; an embedding.json whose n exceeds the shards'
    rows gave ids None and uninitialised vectors for the rows past them."""
    from jointspace.errors import InputError
    from jointspace.towers.ray_embed import _write_shard

    def folder(name, **edit):
        out = tmp_path / name
        out.mkdir()
        manifest = {"n": 6, "dim": 3, "shards": 2}
        for s in range(2):
            rows = np.arange(3 * s, 3 * s + 3)
            _write_shard(out / shard_name(s), rows, rows + 100, np.full((3, 3), s, np.float32), manifest)
        (out / MANIFEST).write_text(json.dumps({**manifest, **edit}))
        return out

    ids, vectors = read_embeddings(folder("good"))
    assert ids.tolist() == [100, 101, 102, 103, 104, 105] and vectors[:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    bad = folder("truncated")
    (bad / shard_name(1)).write_bytes((bad / shard_name(1)).read_bytes()[:50])
    with pytest.raises(InputError, match=r"^folder: part-00001.parquet in .* could not be read \(.*\); the folder "
                                         r"is corrupted: delete that file and rerun the same command"):
        read_embeddings(bad)
    with pytest.raises(InputError, match=r"^folder: the shards in .* leave 2 of the 8 rows embedding.json says out "
                                         r"and hold 0 twice; the folder is corrupted$"):
        read_embeddings(folder("more", n=8))
    with pytest.raises(InputError, match=r"^folder: part-00000.parquet in .* holds 3 rows of 3 values; "
                                         r"embedding.json says rows 0..5 of dim 4; the folder is corrupted$"):
        read_embeddings(folder("dim", dim=4))
    with pytest.raises(InputError, match=r"^folder: embedding.json in .* has a bad 'shards': expected an integer "
                                         r">= 0, got '2'; the folder is corrupted$"):
        read_embeddings(folder("text", shards="2"))



def test_a_rerun_over_items_edited_in_place_is_another_run(local_ray, tmp_path):
    """The same ids over a corrected caption resumed: every shard was skipped and the folder
    kept the vectors of the old caption."""
    from jointspace.errors import InputError

    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 14)))) for _ in range(30)]
    ids = np.arange(100, 130)
    tower = create_tower("minilm")
    kw = dict(batch_size=8, shard_size=16, workers=1, progress=False)
    assert embed_with_ray(tower, texts, ids, tmp_path / "s", **kw)["written"] == 2
    first = read_embeddings(tmp_path / "s")[1]
    assert np.allclose(first, tower.embed(texts, batch_size=8, progress=False), atol=1e-6)
    assert embed_with_ray(tower, texts, ids, tmp_path / "s", **kw)["skipped"] == 2   # the same items resume
    # one letter changed: the same ids, lengths and longest-first order, another text
    edited = list(texts)
    edited[5] = ("X" if texts[5][0] != "X" else "Y") + texts[5][1:]
    with pytest.raises(InputError, match=r"^--out: .* holds shards of another embedding run \(differs in "
                                         r"items_digest\)"):
        embed_with_ray(tower, edited, ids, tmp_path / "s", **kw)
    assert np.array_equal(read_embeddings(tmp_path / "s")[1], first)   # the folder is left as it was


def test_a_rerun_with_other_weights_at_the_same_place_is_another_run(local_ray, tmp_path, monkeypatch):
    """A fine-tuned weights file where the packaged one was: resuming would mix the vectors of both."""
    import hashlib

    from jointspace.errors import InputError
    from jointspace.towers.minilm import MiniLMTower

    texts = ["a red car", "two small birds over the river", "a house", "the green tree"]
    tower = create_tower("minilm")
    kw = dict(batch_size=2, shard_size=2, workers=1, progress=False)
    assert embed_with_ray(tower, texts, np.arange(4), tmp_path / "s", **kw)["written"] == 2
    assert "tower_weights" not in json.loads((tmp_path / "s" / MANIFEST).read_text())   # the published weights
    tuned = tmp_path / "tuned.safetensors"
    tuned.write_bytes(b"other weights")
    monkeypatch.setattr(MiniLMTower, "weights_files", lambda self: {"model.safetensors": tuned})
    weights = hashlib.sha256(f"model.safetensors\0{13}\0{hashlib.sha256(b'other weights').hexdigest()}\0"
                             .encode()).hexdigest()
    assert tower.weights_digest() == weights
    with pytest.raises(InputError, match=r"another embedding run \(differs in tower_weights\)"):
        embed_with_ray(tower, texts, np.arange(4), tmp_path / "s", **kw)
    assert embed_with_ray(tower, texts, np.arange(4), tmp_path / "t", **kw)["written"] == 2
    assert json.loads((tmp_path / "t" / MANIFEST).read_text())["tower_weights"] == weights


def test_a_rerun_over_image_files_edited_in_place_is_another_run(local_ray, tmp_path, monkeypatch):
    """Files are keyed by path, size and modification time: not read to be hashed on every rerun."""
    from PIL import Image

    from jointspace.errors import InputError
    from jointspace.towers import cache

    rng = np.random.default_rng(4)
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"p{i}.png"))
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(paths[-1])
    tower = create_tower("cnn", image_size=16, out_dim=8)
    kw = dict(batch_size=2, shard_size=2, workers=1, progress=False)
    assert embed_with_ray(tower, paths, np.arange(5), tmp_path / "s", **kw)["written"] == 3
    first = read_embeddings(tmp_path / "s")[1]
    assert np.allclose(first, tower.embed(paths, batch_size=2, progress=False), atol=1e-6)

    def unread(*args, **kwargs):
        raise AssertionError("a file was read to key the run")

    monkeypatch.setattr(cache, "item_digest", unread)
    assert embed_with_ray(tower, paths, np.arange(5), tmp_path / "s", **kw)["skipped"] == 3
    Image.fromarray(rng.integers(0, 256, (13, 12, 3), dtype=np.uint8)).save(paths[3])   # edited in place
    with pytest.raises(InputError, match=r"another embedding run \(differs in items_digest\)"):
        embed_with_ray(tower, paths, np.arange(5), tmp_path / "s", **kw)
    assert np.array_equal(read_embeddings(tmp_path / "s")[1], first)
