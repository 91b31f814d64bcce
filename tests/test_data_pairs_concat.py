"""concat_pairs: rows of several Pairs one after the other, and what it refuses."""

import numpy as np
import pytest

from jointspace.data import Pairs, concat_pairs
from jointspace.errors import InputError


def _part(start, n, labels=True, meta=("title",)):
    rng = np.random.default_rng(start)
    return Pairs({"image": rng.normal(size=(n, 3)).astype(np.float32),
                  "text": [f"t{start + i}" for i in range(n)]},
                 labels=np.arange(start, start + n) % 2 if labels else None,
                 ids=np.arange(start, start + n),
                 metadata={k: [f"{k}{start + i}" for i in range(n)] for k in meta},
                 label_names=["even", "odd"] if labels else None, name="demo")


def test_rows_follow_each_other_in_order():
    a, b = _part(0, 3), _part(3, 2)
    c = concat_pairs([a, b])
    assert len(c) == 5 and c.name == "demo" and c.label_names == ["even", "odd"]
    np.testing.assert_array_equal(c["image"], np.vstack([a["image"], b["image"]]))
    assert c["text"] == ["t0", "t1", "t2", "t3", "t4"]
    assert c.ids.tolist() == [0, 1, 2, 3, 4]
    assert c.labels.tolist() == [0, 1, 0, 1, 0]
    assert c.metadata["title"] == ["title0", "title1", "title2", "title3", "title4"]
    # a subset of the result is the same as the part it came from
    np.testing.assert_array_equal(c.subset([3, 4])["image"], b["image"])


def test_metadata_kept_only_where_every_part_has_it():
    c = concat_pairs([_part(0, 2, meta=("title", "url")), _part(2, 2, meta=("title",))], name="both")
    assert list(c.metadata) == ["title"] and c.name == "both"


def test_refusals_name_the_part():
    a = _part(0, 2)
    with pytest.raises(InputError, match=r"parts: expected a non-empty list of Pairs"):
        concat_pairs([])
    with pytest.raises(InputError, match=r"parts: expected a non-empty list"):
        concat_pairs(a)
    with pytest.raises(InputError, match=r"parts\[1\]: expected a Pairs, got dict"):
        concat_pairs([a, {}])
    with pytest.raises(InputError, match=r"parts\[1\]: expected the modalities image, text, got image"):
        concat_pairs([a, _part(2, 2).select(["image"])])
    with pytest.raises(InputError, match=r"parts\[1\]: expected labels in every part or in none"):
        concat_pairs([a, _part(2, 2, labels=False)])
    with pytest.raises(InputError, match=r"ids unique across the parts"):
        concat_pairs([a, _part(1, 2)])
    wide = Pairs({"image": np.zeros((1, 4), np.float32), "text": ["x"]}, labels=[0], ids=[9],
                 label_names=["even", "odd"])
    with pytest.raises(InputError, match=r"modality 'image' has rows of different shapes.*\(3,\), \(4,\)"):
        concat_pairs([a, wide])
    listed = Pairs({"image": ["a.png"], "text": ["x"]}, labels=[0], ids=[9], label_names=["even", "odd"])
    with pytest.raises(InputError, match=r"modality 'image' is an array in some parts and a list"):
        concat_pairs([a, listed])


def test_labels_of_two_kinds_are_refused():
    a = Pairs({"x": np.zeros((2, 3))}, labels=[1, 2], ids=[0, 1])
    b = Pairs({"x": np.zeros((2, 3))}, labels=["1", "2"], ids=[2, 3])
    with pytest.raises(InputError, match=r"parts: labels are numbers in some parts and strings in others"):
        concat_pairs([a, b])


def test_ids_of_two_kinds_are_refused():
    # numbers and strings were joined as text: the ids 0, 1 of the first part became '0', '1'
    a = Pairs({"x": np.zeros((2, 3))}, ids=[0, 1])
    b = Pairs({"x": np.ones((2, 3))}, ids=["photo-a", "photo-b"])
    with pytest.raises(InputError, match=r"parts\[1\]: ids are strings, parts\[0\]'s numbers \(7 would become '7', "
                                         r"and 7 and '7' one id\); give every part ids of one kind"):
        concat_pairs([a, b])
    c = concat_pairs([b, Pairs({"x": np.ones((1, 3))}, ids=["photo-c"])])
    assert c.ids.tolist() == ["photo-a", "photo-b", "photo-c"]
    assert concat_pairs([a, Pairs({"x": np.ones((1, 3))}, ids=np.array([7], dtype=np.uint8))]).ids.tolist() == [0, 1, 7]
