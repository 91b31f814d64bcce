"""A folder of pictures whose sub-folders are symbolic links to folders elsewhere."""

import os

import pytest
from PIL import Image

from jointspace.data.pairs import Pairs

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")


def _png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)


def test_a_sub_folder_that_links_to_another_disk_is_read(tmp_path):
    # photos/dogs -> elsewhere/dogs, as a collection spread over disks is laid out (it was left
    # out: its two pictures were missing from the collection, without a word)
    _png(tmp_path / "photos" / "cats" / "tabby.png", (10, 20, 30))
    _png(tmp_path / "elsewhere" / "dogs" / "pug.png", (200, 0, 0))
    _png(tmp_path / "elsewhere" / "dogs" / "puppies" / "two.png", (0, 200, 0))
    (tmp_path / "elsewhere" / "dogs" / "pug.txt").write_text("a pug on a sofa")
    (tmp_path / "photos" / "dogs").symlink_to(tmp_path / "elsewhere" / "dogs", target_is_directory=True)
    p = Pairs.from_folder(tmp_path / "photos")
    assert p.ids.tolist() == ["cats/tabby.png", "dogs/pug.png", "dogs/puppies/two.png"]
    assert p["text"] == ["tabby", "a pug on a sofa", "two"]
    assert p.label_names == ["cats", "dogs"] and p.labels.tolist() == [0, 1, 1]
    assert p["image"][1] == str((tmp_path / "elsewhere" / "dogs" / "pug.png").resolve())


def test_a_link_back_up_the_tree_is_not_followed_round(tmp_path):
    _png(tmp_path / "photos" / "cats" / "tabby.png", (10, 20, 30))
    (tmp_path / "photos" / "cats" / "again").symlink_to(tmp_path / "photos", target_is_directory=True)
    (tmp_path / "photos" / "cats" / "self").symlink_to(".", target_is_directory=True)
    p = Pairs.from_folder(tmp_path / "photos")
    assert p.ids.tolist() == ["cats/tabby.png"] and p.metadata["paths"] == ["cats/tabby.png"]


def test_a_hidden_linked_folder_stays_hidden(tmp_path):
    _png(tmp_path / "photos" / "a.png", (1, 2, 3))
    _png(tmp_path / "elsewhere" / "b.png", (3, 2, 1))
    (tmp_path / "photos" / ".trash").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert Pairs.from_folder(tmp_path / "photos").ids.tolist() == ["a.png"]
