"""Loading an index folder while another process saves over it."""

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.index import persistence
from jointspace.index.faiss_index import Index
from jointspace.index.sharded import ShardedIndex

from replace_support import save_after_reads


def _index(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)
    index = Index.build(x, spec="Flat", metric="cosine", metadata=[{"label": f"v{seed}-{i}"} for i in range(n)])
    return index, x


@pytest.mark.parametrize("sharded", [False, True])
def test_a_folder_replaced_while_it_loads_is_read_whole_from_the_new_version(tmp_path, monkeypatch, sharded):
    old, _ = _index(10, 0)
    new, x_new = _index(12, 1)
    if sharded:
        old, new = ShardedIndex([old]), ShardedIndex([new])
    old.save(tmp_path / "ix")
    calls = save_after_reads(monkeypatch, persistence, "_read_manifest", tmp_path / "ix", new)
    back = Index.load(tmp_path / "ix")
    assert calls and len(back) == 12
    scores, ids = back.search(x_new[:1], 1)
    assert ids[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert back.metadata([11])[0]["label"] == "v1-11"


def test_a_folder_replaced_at_every_read_is_refused_with_a_message(tmp_path, monkeypatch):
    old, _ = _index(10, 0)
    old.save(tmp_path / "ix")
    save_after_reads(monkeypatch, persistence, "_read_manifest", tmp_path / "ix", _index(12, 1)[0], times=100)
    with pytest.raises(InputError, match="folder: .*ix.* was replaced .* while it was read"):
        Index.load(tmp_path / "ix")


def test_saving_over_a_folder_another_process_saved_since_the_load_is_refused(tmp_path):
    _index(10, 0)[0].save(tmp_path / "ix")
    mine = Index.load(tmp_path / "ix")
    theirs = Index.load(tmp_path / "ix")   # another process appends to the same folder first
    theirs.add(np.ones((3, 4), np.float32), metadata=[{"label": "theirs"}] * 3)
    theirs.save(tmp_path / "ix")
    mine.add(np.ones((2, 4), np.float32))
    with pytest.raises(InputError, match="folder: expected the index folder .*ix.* as this index was loaded from it"):
        mine.save(tmp_path / "ix")
    assert len(Index.load(tmp_path / "ix")) == 13   # their items are kept
    mine.save(tmp_path / "elsewhere")
    assert len(Index.load(tmp_path / "elsewhere")) == 12


def test_saving_back_into_the_folder_loaded_from_again_and_again(tmp_path):
    _index(10, 0)[0].save(tmp_path / "ix")
    index = Index.load(tmp_path / "ix")
    for n in (1, 2):
        (tmp_path / "ix" / f"plot{n}.png").write_bytes(b"png")   # a user's file beside the index
        index.add(np.ones((1, 4), np.float32))
        index.save(tmp_path / "ix")
    assert len(Index.load(tmp_path / "ix")) == 12 and (tmp_path / "ix" / "plot2.png").is_file()


def test_a_sharded_folder_replaced_while_it_loads_directly_is_read_whole(tmp_path, monkeypatch):
    from jointspace.index import sharded

    second = Index.build(np.ones((5, 4), np.float32), spec="Flat", ids=np.arange(10, 15))
    ShardedIndex([_index(10, 0)[0], second]).save(tmp_path / "ix")
    new = ShardedIndex([_index(12, 1)[0]])
    read, calls = sharded.read_json_object, []

    def read_then_replaced(path):   # another process saves just after the shard list was read
        meta = read(path)
        if not calls:
            calls.append(path)
            new.save(tmp_path / "ix")
        return meta

    monkeypatch.setattr(sharded, "read_json_object", read_then_replaced)
    back = ShardedIndex.load(tmp_path / "ix")
    assert calls and len(back) == 12 and back.metadata([11])[0]["label"] == "v1-11"
