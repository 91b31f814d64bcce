"""Indexing a folder reads each file once for its digests (content SHA-256 and cache key)."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

N_PICTURES = 70   # above the number of items a towered model embeds through its cache


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A folder of small pictures with captions (one of them also under a second name) and a
    towered model with cheap random towers fitted on it."""
    from jointspace.data.folder import read_folder
    from jointspace.models.towered import ToweredModel

    root = tmp_path_factory.mktemp("reads")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_PICTURES):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
        (photos / f"p{i:02d}.txt").write_text(f"picture {i} of {['cats', 'dogs', 'boats'][i % 3]}")
    shutil.copyfile(photos / "p00.png", photos / "zz-copy.png")
    model = ToweredModel(towers={"image": "cnn", "text": "bow"}, head="cca", head_params={"n_components": 2},
                         tower_params={"image": {"image_size": 8, "widths": [4], "out_dim": 3},
                                       "text": {"out_dim": 3}}, cache=False)
    model.fit(read_folder(photos))
    model.cache = True   # indexing embeds through the default cache folder (set per test)
    model.save(root / "model")
    return root


@contextlib.contextmanager
def counting_opens(folder: Path):
    """Opens of the pictures under ``folder`` while the block runs, by who opened them: ``"PIL"``
    (an image's header or pixels) or ``"hash"`` (everything else: reading bytes for a digest)."""
    opened: Counter = Counter()
    real_open, inside = builtins.open, str(folder.resolve())

    def counting_open(file, *args, **kwargs):
        path = os.path.realpath(file) if isinstance(file, (str, os.PathLike)) else ""
        if path.startswith(inside) and path.endswith(".png"):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            opened["PIL" if caller.startswith("PIL") else "hash"] += 1
        return real_open(file, *args, **kwargs)

    with mock.patch.object(builtins, "open", counting_open):
        yield opened


def test_indexing_a_folder_hashes_each_file_once(collection, tmp_path, monkeypatch):
    from jointspace.cli import _common, main
    from jointspace.index.faiss_index import Index

    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    photos = collection / "photos"
    n_files = N_PICTURES + 1
    for run, out in (("first", "idx1"), ("again, from the cache", "idx2")):
        monkeypatch.setattr(_common, "_SOURCES", {})   # the folder read anew, as by a new process
        with counting_opens(photos) as opened:
            assert main(["index", str(collection / "model"), "--data", str(photos), "--modality", "image",
                         "--out", str(tmp_path / out)]) == 0
        # each file read once for its SHA-256 and its cache key together (three times before)
        assert opened["hash"] == n_files, (run, opened)
    # the digests are those of the bytes: pinned against hashlib on the files read here
    index = Index.load(tmp_path / "idx2")
    rows = index.metadata(index.ids)
    assert len(rows) == N_PICTURES   # the copy is stored once
    for row in rows:
        data = (photos / Path(row["path"]).name).read_bytes()
        assert row["extra"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_digests_read_once_are_those_read_each_time(tmp_path):
    """Inside ``read_once`` the SHA-256 and the cache key of a file are those computed alone; a
    file changed inside the block is read again."""
    from jointspace._file_digests import read_once
    from jointspace.data.keys import content_hash
    from jointspace.towers.cache import item_digest

    path = tmp_path / "a.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)

    def expected(data: bytes):
        return hashlib.sha256(data).hexdigest(), hashlib.blake2b(b"file\0" + data, digest_size=16).digest()

    alone = (content_hash(path), item_digest(str(path)))
    assert alone == expected(path.read_bytes())
    with read_once():
        assert (content_hash(path), item_digest(str(path))) == alone
        assert (content_hash(str(path)), item_digest(path)) == alone   # a path is a path however it is given
        Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(path)   # another size
        assert (content_hash(path), item_digest(str(path))) == expected(path.read_bytes()) != alone
        os.symlink(path, tmp_path / "link.png")
        assert content_hash(tmp_path / "link.png") == content_hash(path)
        os.symlink(tmp_path / "moved-away.png", tmp_path / "dangling.png")
        with pytest.raises(FileNotFoundError, match="dangling.png"):   # a missing file is named as given
            content_hash(tmp_path / "dangling.png")


def test_fitting_a_folder_hashes_each_file_once(collection, tmp_path, monkeypatch):
    """Fitting reads the folder (content SHA-256) and embeds it through the cache (its key): one read."""
    from jointspace.cli import _common, build_parser, main

    monkeypatch.setenv("JOINTSPACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_common, "_SOURCES", {})
    photos = collection / "photos"
    with counting_opens(photos) as opened:
        assert main(["fit", str(photos), "--towers", "cnn,bow", "--model", "cca", "--out", str(tmp_path / "m")]) == 0
    assert opened["hash"] == N_PICTURES + 1, opened
    # the service runs for long: it keeps no digests between requests
    assert build_parser().parse_args(["serve", "--index", str(tmp_path / "idx")]).read_once is False
