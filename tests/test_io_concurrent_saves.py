"""Two saves into one folder at the same moment: the last one wins and neither fails."""

import os

import pytest

import jointspace._io as io
from jointspace._io import atomic_dir


def _is_art(path):
    return (path / "art.txt").is_file()


def _save(folder, text):
    with atomic_dir(folder, "artefact", is_kind=_is_art) as tmp:
        (tmp / "art.txt").write_text(text)


@pytest.mark.parametrize("existing", [False, True])
def test_another_save_that_lands_just_before_the_rename_is_replaced(tmp_path, monkeypatch, existing):
    folder = tmp_path / "art"
    if existing:
        _save(folder, "first")
    real = os.replace
    others = []

    def replace(src, dst):   # another process's whole save lands just before this one's rename
        if os.fspath(dst) == os.fspath(folder) and not others:
            others.append(src)
            _save(folder, "other")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    _save(folder, "last")
    assert others
    assert (folder / "art.txt").read_text() == "last"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_a_folder_of_other_files_that_appears_just_before_the_rename_is_kept(tmp_path, monkeypatch):
    from jointspace.errors import InputError

    folder = tmp_path / "art"
    real = os.replace

    def replace(src, dst):   # someone makes a folder of notes there just before the rename
        if os.fspath(dst) == os.fspath(folder) and not folder.exists():
            folder.mkdir()
            (folder / "notes.txt").write_text("keep me")
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", replace)
    with pytest.raises(InputError, match="exists and is not a saved artefact"):
        _save(folder, "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
