"""Retrieval evaluation on embeddings and on models: directions, relevance kinds, memory."""

import tracemalloc

import numpy as np
import pytest

from jointspace.data.pairs import Pairs
from jointspace.errors import InputError
from jointspace.eval.metrics import ranking_metrics_dense
from jointspace.eval.retrieval import evaluate_embeddings, evaluate_retrieval, retrieval_scores
from jointspace.eval.similarity import pairwise_similarity
from jointspace.models.base import JointModel


class LinearModel(JointModel):
    """A fixed linear map per modality (enough to exercise the evaluation surface)."""

    def __init__(self, weights):
        self.weights = weights
        self.modalities_ = tuple(weights)

    def _encode(self, modality, items):
        return np.asarray(items, dtype=np.float64) @ self.weights[modality]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n, d = 60, 5
    labels = rng.integers(0, 4, n)
    centres = rng.standard_normal((4, d)) * 2
    image = centres[labels] + rng.standard_normal((n, d))
    text = centres[labels] + rng.standard_normal((n, d))
    return image.astype(np.float32), text.astype(np.float32), labels


def test_retrieval_scores_equals_dense_metrics(data):
    image, text, labels = data
    for metric in ("cosine", "dot", "euclidean"):
        got = retrieval_scores(image, text, labels, labels, metric=metric)
        want = ranking_metrics_dense(pairwise_similarity(image, text, metric), labels[:, None] == labels[None, :])
        assert got == pytest.approx(want, abs=1e-12), metric


def test_pair_identity_by_hand():
    # query i's only relevant item is gallery i; item ranks worked out from the dot products
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    g = np.array([[0.9, 0.0], [2.0, 0.0], [0.5, 0.4]])
    # dot scores  q0: .9 2 .5 -> rank 2
    #             q1: 0  0 .4 -> rank 3 (tied with item 0, which the pessimistic rule puts first)
    #             q2: .9 2 .9 -> rank 3 (tied with item 0)
    res, pq = retrieval_scores(q, g, [0, 1, 2], [0, 1, 2], metric="dot", ks=(1, 2), return_per_query=True)
    np.testing.assert_array_equal(pq["first_rank"], [2, 3, 3])
    assert res["R@1"] == 0.0 and res["R@2"] == pytest.approx(1 / 3)
    assert res["MRR"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3) / 3)
    opt = retrieval_scores(q, g, [0, 1, 2], [0, 1, 2], metric="dot", ties="optimistic", return_per_query=True)[1]
    np.testing.assert_array_equal(opt["first_rank"], [2, 2, 2])


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunk_size_does_not_change_results(data, chunk):
    image, text, labels = data
    base = retrieval_scores(image, text, labels, labels, return_per_query=True)[1]
    got = retrieval_scores(image, text, labels, labels, chunk_size=chunk, return_per_query=True)[1]
    for key in base:
        np.testing.assert_array_equal(got[key], base[key])


def test_multilabel_relevance(data):
    image, text, _ = data
    rng = np.random.default_rng(2)
    tags = rng.random((60, 6)) < 0.25
    got = retrieval_scores(image, text, tags, tags)
    want = ranking_metrics_dense(pairwise_similarity(image, text), (tags.astype(int) @ tags.T.astype(int)) > 0)
    assert got == pytest.approx(want, abs=1e-12)


def test_queries_with_no_relevant_items(data):
    image, text, labels = data
    g_labels = np.where(labels == 3, 2, labels)   # no gallery item has label 3 any more
    res = retrieval_scores(image, text, labels, g_labels)
    assert res["n_skipped"] == int((labels == 3).sum()) > 0
    assert res["n_queries"] + res["n_skipped"] == 60


def test_evaluate_embeddings_keys_and_directions(data):
    image, text, labels = data
    res = evaluate_embeddings({"image": image, "text": text}, labels, ks=(1, 5, 10))
    expected = {"mAP", "R@1", "R@5", "R@10", "MRR", "medR", "meanR", "nDCG@10", "n_queries", "n_skipped"}
    assert set(res) == {f"{d}/{m}" for d in ("image->text", "text->image") for m in expected}
    assert res["image->text/mAP"] == pytest.approx(retrieval_scores(image, text, labels, labels)["mAP"])
    assert res["text->image/mAP"] == pytest.approx(retrieval_scores(text, image, labels, labels)["mAP"])
    one = evaluate_embeddings({"image": image, "text": text}, labels, directions=["text->image"])
    assert all(k.startswith("text->image/") for k in one)


def test_evaluate_retrieval_with_a_model(data):
    image, text, labels = data
    rng = np.random.default_rng(4)
    model = LinearModel({"image": rng.standard_normal((5, 3)), "text": rng.standard_normal((5, 3))})
    pairs = Pairs({"image": image, "text": text}, labels=labels)
    res = evaluate_retrieval(model, pairs)
    zi, zt = model.encode("image", image), model.encode("text", text)
    assert res["image->text/mAP"] == pytest.approx(retrieval_scores(zi, zt, labels, labels)["mAP"])
    assert res["text->image/R@5"] == pytest.approx(retrieval_scores(zt, zi, labels, labels)["R@5"])
    # pair identity: one relevant item per query
    by_id = evaluate_retrieval(model, pairs, relevance="id", directions=[("image", "text")])
    assert by_id["image->text/mAP"] == pytest.approx(retrieval_scores(zi, zt, pairs.ids, pairs.ids)["mAP"])
    assert by_id["image->text/n_queries"] == 60


def test_evaluate_retrieval_metadata_titles_and_gallery(data):
    image, text, labels = data
    model = LinearModel({"image": np.eye(5), "text": np.eye(5)})
    titles = np.array(["a", "b", "c", "d"])[labels]
    pairs = Pairs({"image": image, "text": text}, metadata={"title": titles})
    by_title = evaluate_retrieval(model, pairs, relevance="title")
    by_label = evaluate_embeddings({"image": model.encode("image", image), "text": model.encode("text", text)},
                                   labels)
    assert by_title == pytest.approx(by_label)
    # a separate gallery: the first 20 samples query the other 40
    q, g = pairs.subset(np.arange(20)), pairs.subset(np.arange(20, 60))
    res = evaluate_retrieval(model, q, gallery=g, relevance="title", directions=["image->text"])
    want = retrieval_scores(model.encode("image", image[:20]), model.encode("text", text[20:]),
                            titles[:20], titles[20:])
    assert res["image->text/mAP"] == pytest.approx(want["mAP"])


def test_auto_relevance_with_a_gallery_is_one_rule_for_both_sides(data):
    image, text, labels = data
    model = LinearModel({"image": np.eye(5), "text": np.eye(5)})
    labelled = Pairs({"image": image[:8], "text": text[:8]}, labels=labels[:8])
    bare = Pairs({"image": image[:8], "text": text[:8]})
    # labels on one side only: class labels would be compared with sample ids
    for q, g, side in ((labelled, bare, "gallery"), (bare, labelled, "pairs")):
        with pytest.raises(InputError, match=rf"relevance: 'auto' means labels, but {side} has none"):
            evaluate_retrieval(model, q, gallery=g)
    # without labels on either side each query's own partner is its one relevant item
    got = evaluate_retrieval(model, bare, gallery=bare, directions=["image->text"])
    want = retrieval_scores(image[:8], text[:8], np.arange(8), np.arange(8))
    assert got["image->text/R@1"] == pytest.approx(want["R@1"])
    got = evaluate_retrieval(model, labelled, gallery=labelled, directions=["image->text"])
    want = retrieval_scores(image[:8], text[:8], labels[:8], labels[:8])
    assert got["image->text/mAP"] == pytest.approx(want["mAP"])


def test_euclidean_uses_unnormalised_embeddings(data):
    image, text, labels = data
    model = LinearModel({"image": np.eye(5), "text": np.eye(5)})
    pairs = Pairs({"image": image, "text": text}, labels=labels)
    res = evaluate_retrieval(model, pairs, metric="euclidean", directions=["image->text"])
    want = retrieval_scores(image, text, labels, labels, metric="euclidean")
    assert res["image->text/mAP"] == pytest.approx(want["mAP"])


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.zeros((3, 4)), np.zeros((3, 5)), [0, 1, 2], [0, 1, 2]), {}, "gallery: expected 4 columns"),
    ((np.zeros(3), np.zeros((3, 1)), [0, 1, 2], [0, 1, 2]), {}, "queries: expected a 2-D array"),
    ((np.full((3, 2), np.nan), np.zeros((3, 2)), [0, 1, 2], [0, 1, 2]), {}, "queries: expected finite"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1], [0, 1, 2]), {}, "query_keys: expected 3 keys"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [0, 1]), {}, "gallery_keys: expected 3 keys"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], ["a", "b", "c"]), {}, "gallery_keys: expected keys of the same kind"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], np.eye(3)), {}, "gallery_keys: expected the same kind of keys"),
    ((np.ones((3, 2)), np.ones((3, 2)), np.eye(3), np.eye(2)), {}, "gallery_keys: expected a multi-hot matrix with 3"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, np.nan], [0, 1, 2]), {}, "query_keys: expected finite keys"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [0, 1, 2]), {"ks": (1, 0)}, "ks: expected an integer >= 1, got 0"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [0, 1, 2]), {"ndcg_k": -1}, "ndcg_k: expected an integer >= 1"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [0, 1, 2]), {"metric": "l1"}, "metric: expected one of"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [0, 1, 2]), {"chunk_size": 0}, "chunk_size: expected an integer >= 1"),
    ((np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2], [3, 4, 5]), {}, "no query has a relevant item"),
])
def test_bad_inputs(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        retrieval_scores(*args, **kwargs)


def test_bad_evaluate_inputs(data):
    image, text, labels = data
    model = LinearModel({"image": np.eye(5), "text": np.eye(5)})
    pairs = Pairs({"image": image, "text": text}, labels=labels)
    with pytest.raises(InputError, match="directions: query modality must be one of image, text; got 'audio'"):
        evaluate_retrieval(model, pairs, directions=["audio->text"])
    with pytest.raises(InputError, match="directions: expected 'query->target'"):
        evaluate_retrieval(model, pairs, directions=["image-text"])
    with pytest.raises(InputError, match="pairs: expected a Pairs"):
        evaluate_retrieval(model, {"image": image})
    with pytest.raises(InputError, match="model: expected a fitted joint model"):
        evaluate_retrieval(object(), pairs)
    with pytest.raises(InputError, match="directions: need two modalities"):
        evaluate_retrieval(model, pairs.select(["image"]))
    with pytest.raises(InputError, match="relevance: 'label' asked for"):
        evaluate_retrieval(model, Pairs({"image": image, "text": text}), relevance="label")
    with pytest.raises(InputError, match=r"image->text: ks: expected an integer >= 1"):
        evaluate_embeddings({"image": image, "text": text}, labels, ks=(0,))


@pytest.mark.slow
def test_large_evaluation_has_bounded_memory():
    n, d = 20_000, 16
    rng = np.random.default_rng(0)
    q = rng.standard_normal((n, d)).astype(np.float32)
    g = (q + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    ids = np.arange(n)
    tracemalloc.start()
    try:
        res = retrieval_scores(q, g, ids, ids, ks=(1, 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    full = n * n * 4                                   # the full float32 score matrix: 1.6 GB
    assert peak < full / 8, f"peak {peak / 2**20:.0f} MiB"
    assert res["n_queries"] == n and 0.5 < res["R@10"] <= 1.0


def test_top_level_import_and_gallery_keys_rules(data):
    import jointspace

    image, text, labels = data
    assert jointspace.evaluate_retrieval is evaluate_retrieval
    emb = {"image": image, "text": text}
    with pytest.raises(InputError, match="gallery_keys: given without gallery"):
        evaluate_embeddings(emb, labels, gallery_keys=labels)
    with pytest.raises(InputError, match="gallery_keys: expected keys for the gallery"):
        evaluate_embeddings(emb, labels, gallery={"text": text})
    res = evaluate_embeddings(emb, labels, gallery={"text": text[:30]}, gallery_keys=labels[:30])
    assert set(k.split("/")[0] for k in res) == {"image->text"}
    assert res["image->text/mAP"] == pytest.approx(retrieval_scores(image, text[:30], labels, labels[:30])["mAP"])


def test_mixed_float_precisions_are_accepted(data):
    image, text, labels = data
    a = retrieval_scores(image.astype(np.float64), text, labels, labels)
    b = retrieval_scores(image.astype(np.float64), text.astype(np.float64), labels, labels)
    assert a == b


def test_random_ranking_matches_closed_form_expectations():
    from jointspace.eval.retrieval import random_ranking_scores

    n = 50
    res = random_ranking_scores(np.arange(n), np.arange(n), ks=(1, 10), repeats=200, seed=1)
    # the single relevant item is uniformly placed: E[rank] = (n+1)/2, P(rank <= K) = K/n,
    # E[1/rank] = H_n / n (and AP = 1/rank)
    h_n = np.sum(1.0 / np.arange(1, n + 1))
    assert res["meanR"] == pytest.approx((n + 1) / 2, rel=0.02)
    assert res["R@10"] == pytest.approx(10 / n, abs=0.01)
    assert res["MRR"] == pytest.approx(h_n / n, rel=0.03)
    assert res["mAP"] == pytest.approx(res["MRR"])
    # labels: two classes of 25, one relevant class; same seed, same numbers
    labels = np.repeat([0, 1], 25)
    a = random_ranking_scores(labels, labels, repeats=3, seed=7)
    assert a == random_ranking_scores(labels, labels, repeats=3, seed=7)
    with pytest.raises(InputError, match="repeats: expected an integer >= 1"):
        random_ranking_scores(labels, labels, repeats=0)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7"])
def test_random_ranking_refuses_a_bad_seed_naming_it(seed):
    from jointspace.eval.retrieval import random_ranking_scores

    labels = np.repeat([0, 1], 5)
    with pytest.raises(InputError, match="seed: expected an integer"):
        random_ranking_scores(labels, labels, repeats=1, seed=seed)


def test_ndcg_cutoff_beyond_the_gallery_does_not_build_a_huge_table():
    x = np.eye(3, dtype=np.float32)
    res = retrieval_scores(x, x[[1, 0, 2]], [0, 1, 2], [1, 0, 2], ndcg_k=10**11)
    assert res["nDCG@100000000000"] == 1.0 and res["mAP"] == 1.0
    # the partner second of three for every query: 1 / log2(3), as nDCG@3
    g = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32) + 0.5 * x
    res = retrieval_scores(x, g, [0, 1, 2], [0, 1, 2], ndcg_k=10**11)
    assert res["nDCG@100000000000"] == pytest.approx(1 / np.log2(3))
    assert res["nDCG@100000000000"] == pytest.approx(retrieval_scores(x, g, [0, 1, 2], [0, 1, 2], ndcg_k=3)["nDCG@3"])


def test_euclidean_scores_that_overflow_are_refused_not_ranked():
    import warnings

    big = np.array([[1e200, 0.0], [0.0, 1e200], [1e200, 1e200]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the clear error alone, no numpy overflow warnings before it
        with pytest.raises(InputError, match="scores: expected finite values, got nan for query 0"):
            retrieval_scores(big, big, [0, 1, 2], [0, 1, 2], metric="euclidean")


def test_object_keys_of_numbers_match_numeric_keys():
    x = np.eye(3, dtype=np.float32)
    res = retrieval_scores(x, x, np.array([1.0, 2.0, 3.0], dtype=object), np.array([1, 2, 3], dtype=object))
    assert res["mAP"] == 1.0 and res["n_skipped"] == 0
    res = retrieval_scores(x, x, np.array([1, 2, 3], dtype=object), np.array([1, 2, 3]))
    assert res["mAP"] == 1.0 and res["n_skipped"] == 0


# dot: (1, 0) . (3e38, 3e38) = 3e38 fits, 2 * 9e76 does not; euclidean: |(1, 0) - (3e38, 3e38)|
# = 4.2e38 is already beyond float32's 3.4e38
@pytest.mark.parametrize("metric, first", [("dot", 1), ("euclidean", 0)])
def test_pairwise_scores_that_overflow_are_refused_with_the_rows_named(metric, first):
    import warnings

    from jointspace.eval.similarity import pairwise_similarity

    a = np.array([[1.0, 0.0], [3e38, 3e38]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=rf"A, B: the {metric} score of A\[{first}\] and B\[1\] overflows float32"):
            pairwise_similarity(a, a, metric)
        # within range, the same call answers: (1, 0) . (1, 0) = 1, distance 0
        assert pairwise_similarity(a[:1], a[:1], metric)[0, 0] == pytest.approx(1.0 if metric == "dot" else 0.0)
