"""Pairs: what it accepts as items, row indices and split settings, and what it refuses."""

import numpy as np
import pytest

from jointspace import Pairs
from jointspace.data.pairs import concat_pairs
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


@pytest.mark.parametrize("labels, match", [
    ([0, 1, None, 1], r"labels: sample 2 is None"),
    ([1, "1", 2, 3],
     r"labels: expected keys of one kind, got both numbers and strings \(sample 0 is 1, sample 1 is '1'\)"),
    (np.array([0, 1, np.nan, 1], dtype=object), r"labels: sample 2 is nan"),
    (np.array([0.0, 1.0, np.inf, 1.0]), r"labels: expected finite values, got NaN or Inf \(first at sample 2\)"),
])
def test_labels_of_one_kind_without_gaps(labels, match):
    with pytest.raises(InputError, match=match):
        _pairs(labels)
    assert _pairs(np.array([2, 0, 2, 1], dtype=object)).labels.tolist() == [2, 0, 2, 1]


def test_labels_with_none_never_reach_fit_or_split():
    with pytest.raises(InputError, match="labels: sample 0 is None"):
        _pairs([None, 0, 1, 0, 1, 1]).split(stratify=True)


@pytest.mark.parametrize("ids, match", [
    ([None] * 4, r"ids: sample 0 is None"),
    (np.array([1, "1", 2, 3], dtype=object), r"ids: expected keys of one kind"),
    (np.array([0.0, np.nan, 2.0, 3.0]), r"ids: expected finite values, got NaN or Inf \(first at sample 1\)"),
    ([np.nan, 1, 2, 3], r"ids: sample 0 is nan"),
])
def test_ids_of_one_kind_and_finite(ids, match):
    with pytest.raises(InputError, match=match):
        Pairs({"a": np.zeros((4, 2))}, ids=ids)
    assert Pairs({"a": np.zeros((2, 2))}, ids=np.array(["x", "y"], dtype=object)).ids.tolist() == ["x", "y"]


@pytest.mark.parametrize("metadata, match", [
    ([1, 2, 3, 4], r"metadata: expected a mapping of column name -> 4 values, got list"),
    ({"m": 5}, r"metadata\['m'\]: expected a sequence of 4 values, got int 5"),
    ({"m": "abcd"}, r"metadata\['m'\]: expected a sequence of 4 values, got str 'abcd'"),
])
def test_metadata_is_a_mapping_of_columns(metadata, match):
    with pytest.raises(InputError, match=match):
        Pairs({"a": np.zeros((4, 2))}, metadata=metadata)


def test_string_arrays_of_more_than_one_dimension_are_refused():
    with pytest.raises(InputError, match=r"modality 'a': expected N strings, shape \(N,\), got shape \(2, 2\)"):
        Pairs({"a": np.array([["x", "y"], ["z", "w"]])})


@pytest.mark.parametrize("labels, names, match", [
    ([0, 1, 2, 3], ["a"], r"label_names: expected a name for every label 0 \.\. 3 \(4 names\), got 1"),
    ([0, -1, 1, 0], ["a", "b"], r"label_names: name the integer labels 0 \.\. C-1 .* sample 1 has the label -1"),
    (["u", "v", "w", "u"], ["a", "b"], r"label_names: expected a name for each of the 3 classes, got 2"),
    (np.eye(4, 3, dtype=bool), ["a", "b"], r"label_names: expected one name per column .* \(3\), got 2"),
    ([0, 1, 0, 1], "ab", r"label_names: expected a sequence of names, got str 'ab'"),
])
def test_label_names_name_every_class(labels, names, match):
    with pytest.raises(InputError, match=match):
        Pairs({"a": np.zeros((4, 2))}, labels=labels, label_names=names)
    assert Pairs({"a": np.zeros((4, 2))}, labels=[0, 1, 0, 1], label_names=["a", "b"]).label_names == ["a", "b"]


@pytest.mark.parametrize("test_size, match", [
    ("0.5", r"test_size: expected a fraction in \(0, 1\), got '0.5'"),
    (0.99, r"test_size: 0.99 of 4 samples leaves none for training; expected at most 0.75"),
])
def test_split_test_size_leaves_training_samples(test_size, match):
    with pytest.raises(InputError, match=match):
        _pairs([0, 1, 0, 1]).split(test_size)


def test_select_takes_a_list_of_names_or_one_name():
    p = Pairs({"image": np.arange(6.0).reshape(3, 2), "text": ["a", "b", "c"]}, labels=[0, 1, 0])
    one = p.select("image")
    assert one.modalities == ("image",) and np.array_equal(one["image"], p["image"])
    assert p.select(["text", "image"]).modalities == ("text", "image")
    with pytest.raises(InputError, match="modality: expected one of image, text; got 'audio'"):
        p.select("audio")


def test_a_1d_object_array_of_items_is_kept_as_a_list_like_an_array_of_strings():
    texts = np.array(["a cat", "a dog"], dtype=object)          # a pandas column's to_numpy()
    p = Pairs({"text": texts, "x": np.zeros((2, 1))}, ids=[0, 1])
    assert p["text"] == ["a cat", "a dog"] and isinstance(p["text"], list)
    q = Pairs({"text": ["a bird"], "x": np.ones((1, 1))}, ids=[2])
    assert concat_pairs([p, q])["text"] == ["a cat", "a dog", "a bird"]   # was refused: array here, list there
    assert "text=list[2]" in repr(p)


def test_pandas_columns_are_read_as_items_by_position():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"caption": ["a cat", "a dog", "a bird"], "f0": [0.0, 1.0, 2.0], "f1": [1.0, 1.0, 1.0]},
                      index=[7, 3, 5])
    p = Pairs({"text": df["caption"], "x": df[["f0", "f1"]]})    # both were refused as 'got Series/DataFrame'
    assert p["text"] == ["a cat", "a dog", "a bird"]
    assert p["x"].shape == (3, 2) and p["x"][:, 0].tolist() == [0.0, 1.0, 2.0]


def test_indexing_by_row_is_refused_pointing_to_subset():
    p = Pairs({"x": np.zeros((3, 2)), "t": ["a", "b", "c"]})
    with pytest.raises(InputError, match=r"modality: expected a modality name \(x, t\), got int 0; "
                                         r"for rows, use pairs\.subset"):
        p[0]                                                     # said 'expected one of x, t; got 0'
    with pytest.raises(InputError, match=r"got slice slice\(0, 2, None\); for rows"):
        p[0:2]                                                   # was TypeError: unhashable type: 'slice'
    with pytest.raises(TypeError, match="not iterable"):
        list(p)
    assert "x" in p and p["t"] == ["a", "b", "c"]


def test_select_refuses_no_modalities_naming_the_ones_there_are():
    p = Pairs({"x": np.zeros((3, 2)), "t": ["a", "b", "c"]})
    with pytest.raises(InputError, match=r"modalities: expected one or more of x, t, got list \[\]"):
        p.select([])                                             # said 'expected a mapping ... got dict'
    with pytest.raises(InputError, match=r"modalities: expected one or more of x, t, got NoneType None"):
        p.select(None)                                           # was a TypeError
    assert p.select(("t",)).modalities == ("t",)


def test_split_refuses_stratify_with_groups_instead_of_dropping_stratify():
    p = _pairs([0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(InputError, match=r"stratify: cannot be kept together with groups"):
        p.split(0.5, stratify=True, groups=[0, 0, 1, 1, 2, 2, 3, 3])   # split by groups only, without a word
    train, test = p.split(0.5, groups=[0, 0, 1, 1, 2, 2, 3, 3])
    assert len(train) + len(test) == 8


def test_split_and_batches_refuse_a_bad_seed_naming_it():
    p = _pairs([0, 0, 0, 1, 1, 1])
    with pytest.raises(InputError, match=r"seed: expected an integer >= 0, got -1"):
        p.split(0.5, seed=-1)                                    # was sklearn's ValueError
    with pytest.raises(InputError, match=r"seed: expected an integer, got 1\.5"):
        p.split(0.5, seed=1.5)
    with pytest.raises(InputError, match=r"seed: expected an integer <= 4294967295"):
        p.split(0.5, seed=2**40)
    with pytest.raises(InputError, match=r"seed: expected an integer >= 0, got -1"):
        list(p.batches(2, shuffle=True, seed=-1))                # was numpy's ValueError
    assert [len(b) for b in p.batches(4, shuffle=True, seed=np.int64(3))] == [4, 2]


def test_split_refuses_groups_that_are_not_one_value_per_sample():
    p = _pairs([0, 0, 0, 1, 1, 1])
    with pytest.raises(InputError, match=r"groups: expected 6 group values, shape \(6,\), got str of shape \(\)"):
        p.split(0.5, groups="abcdef")                            # said 'every sample is in group 'abcdef''
    with pytest.raises(InputError, match=r"groups: expected 6 group values, shape \(6,\), got list of shape \(6, 2\)"):
        p.split(0.5, groups=[[1, 2]] * 6)                        # was 'indices: expected values in [0, 6)'
    assert len(p.split(0.5, groups=list("aabbcc"))[1]) in (2, 4)


def test_with_modality_names_its_own_arguments():
    p = Pairs({"x": np.zeros((3, 2))})
    with pytest.raises(InputError, match=r"items: expected 3 items for modality 'y', one per row, got 2"):
        p.with_modality("y", ["a", "b"])                         # said 'modalities: every modality must ...'
    with pytest.raises(InputError, match=r"name: expected a non-empty modality name, got ''"):
        p.with_modality("", ["a", "b", "c"])
    assert p.with_modality("y", np.array(["a", "b", "c"]))["y"] == ["a", "b", "c"]
