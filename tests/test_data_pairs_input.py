"""Pairs: what it accepts as items, row indices and split settings, and what it refuses."""

import numpy as np
import pytest

from jointspace import Pairs
from jointspace.errors import InputError


def _pairs(labels):
    n = len(labels)
    return Pairs({"a": np.arange(2 * n, dtype=float).reshape(n, 2)}, labels=labels)


def test_byte_string_arrays_are_decoded_as_utf8():
    p = Pairs({"text": np.array([b"a cat", "caf\u00e9".encode()]), "x": np.zeros((2, 1))})
    assert p["text"] == ["a cat", "caf\u00e9"]                  # not "b'a cat'"
    assert p.subset([1])["text"] == ["caf\u00e9"]
    with pytest.raises(InputError, match=r"modality 'text': expected UTF-8 byte strings, item 1 is not .*b'\\xff'"):
        Pairs({"text": np.array([b"ok", b"\xff"])})
    with pytest.raises(InputError, match=r"modality 'text': expected N byte strings, shape \(N,\), got shape \(1, 2\)"):
        Pairs({"text": np.array([[b"a", b"b"]])})
    assert Pairs({"text": np.array(["x", "y"])})["text"] == ["x", "y"]


def test_subset_refuses_float_indices_and_keeps_masks():
    p = Pairs({"a": np.arange(3.0)[:, None]}, ids=[10, 11, 12])
    with pytest.raises(InputError, match=r"indices: expected integer row numbers or a boolean mask of shape \(3,\), "
                                         r"got dtype float64 \(e\.g\. 0\.9\)"):
        p.subset([0.9, 1.7])                                     # used to give rows 0 and 1
    with pytest.raises(InputError, match="got dtype object"):
        p.subset(np.array([0, None], dtype=object))
    with pytest.raises(InputError, match=r"indices: expected a 1-D array .* got shape \(1, 2\)"):
        p.subset([[0, 1]])
    assert p.subset(np.array([True, False, True])).ids.tolist() == [10, 12]
    assert p.subset(np.array([2, 0], dtype=np.uint8)).ids.tolist() == [12, 10]
    assert p.subset([]).ids.tolist() == []
    with pytest.raises(InputError, match=r"boolean mask must have shape \(3,\), got \(2,\)"):
        p.subset([True, False])


def test_split_stratify_needs_two_of_each_class():
    with pytest.raises(InputError, match=r"stratify: needs at least 2 samples of every class .* "
                                         r"got 2 class\(es\) with a single sample: 7, 9"):
        _pairs([0, 0, 0, 0, 7, 9]).split(stratify=True)
    with pytest.raises(InputError, match=r"stratify: cannot keep 3 classes on both sides of a split of 6 samples "
                                         r"with test_size=0.2"):
        _pairs([0, 0, 1, 1, 2, 2]).split(stratify=True, test_size=0.2)
    tr, te = _pairs([0, 0, 1, 1, 2, 2]).split(stratify=True, test_size=0.5)
    assert sorted(te.labels.tolist()) == [0, 1, 2] and sorted(tr.labels.tolist()) == [0, 1, 2]


def test_split_groups_need_two_distinct_values():
    p = _pairs([0, 1, 0, 1])
    with pytest.raises(InputError, match=r"groups: need at least 2 distinct groups to split, got 1 "
                                         r"\(every sample is in group 'g'\)"):
        p.split(groups=["g"] * 4)
    tr, te = p.split(groups=["g", "g", "h", "h"], test_size=0.5)
    assert {tuple(tr.ids), tuple(te.ids)} == {(0, 1), (2, 3)}
