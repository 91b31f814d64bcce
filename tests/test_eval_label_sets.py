"""Label sets: read as sets (relevant when they intersect), never guessed from a list's shape."""

import numpy as np
import pytest

from jointspace.data.labels import read_labels
from jointspace.data.pairs import Pairs
from jointspace.errors import InputError
from jointspace.eval.metrics import ranking_metrics, ranking_metrics_dense
from jointspace.eval.relevance import make_relevance
from jointspace.eval.retrieval import evaluate_retrieval, retrieval_scores
from jointspace.models.base import JointModel


def _by_hand(query_sets, gallery_sets) -> np.ndarray:
    """Relevance by intersecting Python sets, the definition itself."""
    return np.array([[bool(set(q) & set(g)) for g in gallery_sets] for q in query_sets])


def test_lists_of_equal_length_are_label_sets_not_a_multi_hot_matrix():
    labels = [[0, 2], [1, 3], [0, 2]]
    x = np.eye(3, dtype=np.float32)
    per_query = retrieval_scores(x, x, labels, labels, return_per_query=True)[1]
    np.testing.assert_array_equal(per_query["n_relevant"], [2, 1, 2])
    np.testing.assert_array_equal(make_relevance(labels, labels).block(0, 3).mask(), _by_hand(labels, labels))


def test_lists_of_different_lengths_and_python_sets():
    queries = [[0, 2], [5], {3, 1}, frozenset({"x"}) - frozenset({"x"}), (7,)]
    gallery = [{0}, [2, 3], 1, [], (5, 9, 7)]
    queries[3] = set()          # a query without labels: nothing to find
    rel = make_relevance(queries, gallery)
    np.testing.assert_array_equal(rel.block(0, 5).mask(), _by_hand(queries, [{0}, {2, 3}, {1}, set(), {5, 9, 7}]))
    scores = np.random.default_rng(0).random((5, 5))
    got = ranking_metrics(((0, scores),), rel)
    want = ranking_metrics(((0, scores),), make_relevance(_by_hand(queries, [{0}, {2, 3}, {1}, set(), {5, 9, 7}]),
                                                          np.eye(5, dtype=bool)))
    for key in got:
        np.testing.assert_array_equal(got[key], want[key])


def test_string_sets_compare_as_labels_not_as_their_repr():
    # {"a", "b"} and {"b", "a"} print differently but are the same set
    q = [{"a", "b"}, {"c"}]
    g = [{"b", "a"}, {"d", "c"}, {"e"}]
    np.testing.assert_array_equal(make_relevance(q, g).block(0, 2).mask(), [[True, False, False],
                                                                           [False, True, False]])


def test_numbers_compare_as_numbers_and_scalars_are_sets_of_one():
    np.testing.assert_array_equal(make_relevance([[1.0, 2], [3]], [1, 3, np.int64(2)]).block(0, 2).mask(),
                                  [[True, False, True], [False, True, False]])
    # an object column of lists (as pandas gives) reads the same as the list
    col = np.empty(2, dtype=object)
    col[0], col[1] = [1, 2], [3]
    np.testing.assert_array_equal(make_relevance(col, col).block(0, 2).mask(), [[True, False], [False, True]])


def test_one_d_keys_and_boolean_multi_hot_matrices_keep_their_meaning():
    keys = [0, 1, 0, 2]
    np.testing.assert_array_equal(make_relevance(keys, keys).block(0, 4).mask(),
                                  np.equal.outer(keys, keys))
    hot = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(make_relevance(hot, hot).block(0, 3).mask(), (hot.astype(int) @ hot.T) > 0)
    # 0/1 numbers (a multi-hot matrix read from .mat) are a multi-hot matrix too
    np.testing.assert_array_equal(make_relevance(hot.astype(np.float64), hot.astype(np.uint8)).block(0, 3).mask(),
                                  (hot.astype(int) @ hot.T) > 0)


@pytest.mark.parametrize("query, gallery, match", [
    (np.array([[0, 2], [1, 3]]), np.array([[0, 2], [1, 3]]), r"query_keys: a 2-D numeric array is read as a multi-hot "
                                                               r"matrix of 0/1 values, got 2 at row 0, column 1"),
    ([[True, False], [False, True]], [[True, False]], "query_keys: sample 0 holds a set with the boolean True"),
    ([[1, "a"]], [[1]], "query_keys: expected labels of one kind, got both numbers and strings"),
    ([[1]], [["a"]], "expected labels of one kind"),
    ([[1, [2]]], [[1]], "query_keys: sample 0 holds a nested set"),
    ([None, [1]], [[1]], "query_keys: sample 0 is None"),
    ([[1], [float("nan")]], [[1]], "query_keys: sample 1 holds nan"),
    ([[1], [2]], np.eye(2, dtype=bool), "gallery_keys: expected label sets or one key per item"),
    ([[1], [object()]], [[1]], "query_keys: sample 1 holds object"),
])
def test_ambiguous_or_bad_label_sets_are_refused_naming_the_argument(query, gallery, match):
    with pytest.raises(InputError, match=match):
        make_relevance(query, gallery)


def test_pairs_store_label_sets_as_a_multi_hot_matrix_over_the_sorted_labels():
    p = Pairs({"a": np.zeros((3, 2))}, labels=[["cat", "dog"], {"bird"}, []])
    assert p.label_names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(p.labels, [[False, True, True], [True, False, False], [False, False, False]])
    p = Pairs({"a": np.zeros((3, 2))}, labels=[[0, 2], [1, 3], [0, 2]])
    np.testing.assert_array_equal(p.labels.sum(axis=1), [2, 2, 2])
    assert p.is_multilabel
    # with label_names, int label c fills column c
    p = Pairs({"a": np.zeros((2, 2))}, labels=[[2], [0, 1]], label_names=["x", "y", "z"])
    np.testing.assert_array_equal(p.labels, [[False, False, True], [True, True, False]])
    with pytest.raises(InputError, match="labels: label 5 is neither one of label_names"):
        read_labels([[5]], "labels", ["x"])


class _Identity(JointModel):
    modalities_ = ("image", "text")

    def _encode(self, modality, items):
        return np.asarray(items, dtype=np.float64)


def test_evaluating_pairs_with_label_sets_counts_the_intersections():
    rng = np.random.default_rng(1)
    sets = [[0, 2], [1, 3], [0, 2], [3], [4, 1]]
    image, text = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    res = evaluate_retrieval(_Identity(), Pairs({"image": image, "text": text}, labels=sets),
                             directions=["image->text"])
    want = ranking_metrics_dense(
        (image / np.linalg.norm(image, axis=1, keepdims=True)) @ (text / np.linalg.norm(text, axis=1, keepdims=True)).T,
        _by_hand(sets, sets))
    for key, value in want.items():
        assert res[f"image->text/{key}"] == pytest.approx(value, abs=1e-6)
