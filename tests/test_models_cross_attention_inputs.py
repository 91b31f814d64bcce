"""Cross-attention matcher and re-ranking: inputs refused by name, before any tower work."""

import warnings

import numpy as np
import pytest

from jointspace.errors import InputError
from jointspace.models.cross_attention import pad_parts
from jointspace.models.rerank import CrossAttentionMatcher, choose_rerank_weight, rerank_candidates, standardize_rows

from test_models_cross_attention import _toy_parts

pytestmark = pytest.mark.usefixtures("one_thread")


def test_choosing_a_weight_needs_a_query_and_a_candidate():
    # no candidates raised IndexError; no queries chose weight 0 on a Recall@1 of NaN
    for shape in ((1, 0), (0, 2)):
        with pytest.raises(InputError, match=r"first_ids: expected at least one query with at least one candidate "
                                             rf"to choose the weight on, got shape \({shape[0]}, {shape[1]}\)"):
            choose_rerank_weight(np.zeros(shape, int), np.zeros(shape), np.zeros(shape), [0, 1])
    got = choose_rerank_weight(np.array([[0]]), np.array([[0.5]]), np.array([[0.1]]), [0, 1], weights=(0.0, 1.0))
    assert got == {"weight": 0.0, "recall@1": {"0.0": 1.0, "1.0": 1.0}, "recall@1 per key": {"0.0": 1.0, "1.0": 1.0}}


def test_rerank_scores_that_are_not_numbers_are_refused_by_name():
    # each raised numpy's ValueError
    with pytest.raises(InputError, match=r"first_scores: expected a \(q, N\) array of numbers, one row per query, "
                                         r"got list \(could not convert string to float: 'high'\)"):
        rerank_candidates([[3, 4]], [["high", "low"]], [[0.1, 0.2]], 0.5)
    with pytest.raises(InputError, match=r"cross_scores: expected a \(q, N\) array of numbers, .* got list "
                                         r"\(setting an array element with a sequence"):
        rerank_candidates([[3, 4], [5, 6]], [[0.1, 0.2], [0.3, 0.4]], [[0.1, 0.2], [0.3]], 0.5)
    with pytest.raises(InputError, match=r"first_ids: expected a \(q, N\) array, one row per query, got list"):
        rerank_candidates([[3, 4], [5]], [[0.1, 0.2], [0.3, 0.4]], [[0.1, 0.2], [0.3, 0.4]], 0.5)
    with pytest.raises(InputError, match=r"scores: expected a \(q, N\) array of numbers"):
        standardize_rows([["a", "b"]])
    ids, blended = rerank_candidates([[3, 4]], [[0.1, 0.2]], [[0.1, 0.2]], 0.5)
    assert ids.tolist() == [[4, 3]] and blended == pytest.approx(np.array([[1.0, -1.0]]))


def test_standardize_rows_by_hand_and_refuses_scores_that_are_not_finite():
    got = standardize_rows([[1.0, 2.0, 6.0], [4.0, 4.0, 4.0]])
    # row 0: mean 3, population standard deviation sqrt((4 + 1 + 9) / 3); a constant row: zeros
    np.testing.assert_allclose(got, [np.array([-2.0, -1.0, 3.0]) / np.sqrt(14 / 3), [0.0, 0.0, 0.0]])
    # a row with a NaN came back as zeros, as if its scores were all equal
    for bad in ([[1.0, np.nan, 3.0]], [[np.inf, 0.0]]):
        with pytest.raises(InputError, match=r"^scores: expected finite scores, got NaN or infinity$"):
            standardize_rows(bad)


def test_rerank_refuses_queries_without_candidates():
    # NumPy warned 'Mean of empty slice' and empty rows came back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"^first_ids: expected at least one candidate per query \(N >= 1\), "
                                             r"got shape \(2, 0\)$"):
            rerank_candidates(np.zeros((2, 0), int), np.zeros((2, 0)), np.zeros((2, 0)), 0.5)
        ids, blended = rerank_candidates([[7]], [[0.3]], [[0.9]], 1.0)   # one candidate: its z-score is 0
    assert ids.tolist() == [[7]] and blended.tolist() == [[0.0]]


def test_pad_parts_refuses_items_that_are_not_vector_lists():
    # a 1-D item raised IndexError, a list of lists AttributeError; NaN and max_len=0 passed through
    with pytest.raises(InputError, match=r"tokens: item 1: expected a 2-D array of shape \(n_samples, n_features\), "
                                         r"got shape \(3,\)"):
        pad_parts([np.zeros((2, 3)), np.zeros(3)])
    with pytest.raises(InputError, match=r"tokens: item 0: expected finite values, got NaN or Inf \(first at row 1, "
                                         r"column 2\)"):
        pad_parts([np.array([[0.0, 0, 0], [0, 0, np.nan]])])
    with pytest.raises(InputError, match="max_len: expected an integer >= 1, got 0"):
        pad_parts([np.zeros((2, 3))], max_len=0)
    with pytest.raises(InputError, match="texts: item 1 is empty"):
        pad_parts([[[1.0]], []], name="texts")
    out, mask = pad_parts([[[1, 2]], [[3, 4], [5, 6]]])
    assert out.dtype == np.float32 and out.tolist() == [[[1, 2], [0, 0]], [[3, 4], [5, 6]]]
    assert mask.tolist() == [[True, False], [True, True]]


def test_parts_given_as_lists_or_not_as_numbers():
    r, rm, t, tm, k = _toy_parts(6, 0)
    m = CrossAttentionMatcher(dim=8, epochs=1, batch_size=3, progress=False).fit_parts(r, rm, t, tm, k)
    top = np.array([[0, 1]] * 6)
    # lists raised TypeError where the candidates index them; they are the same parts
    np.testing.assert_array_equal(m.score_candidates(top.tolist(), list(r), rm.tolist(), list(t), tm),
                                  m.score_candidates(top, r, rm, t, tm))
    # rows of unequal length, and text, raised numpy's ValueError
    with pytest.raises(InputError, match=r"candidates: expected \(q, N\) integer ids, one row per text \(6\) and "
                                         r"N >= 1, got shape \(6,\) of object"):
        m.score_candidates([[0, 1]] * 5 + [[0]], r, rm, t, tm)
    with pytest.raises(InputError, match=r"regions: expected an \(N, R, d\) array of numbers, got list "
                                         r"\(setting an array element with a sequence"):
        m.score_parts([r[0], r[1, :2]], rm[:2], t, tm)
    with pytest.raises(InputError, match=r"val tokens: expected an \(N, T, d\) array of numbers, got str "
                                         r"\(could not convert string to float: 'a red square'\)"):
        m.fit_parts(r, rm, t, tm, k, val=(r, rm, "a red square", tm, k))


def test_fit_and_choose_weight_name_what_is_not_image_text_pairs_or_a_model():
    from jointspace.data.pairs import Pairs

    r, rm, t, tm, k = _toy_parts(6, 0)
    m = CrossAttentionMatcher(dim=8, epochs=1, batch_size=3, progress=False).fit_parts(r, rm, t, tm, k)
    pairs = Pairs({"image": ["a.png", "b.png"], "text": ["a", "b"]})
    # each raised AttributeError
    with pytest.raises(InputError, match="pairs: expected a jointspace Pairs with 'image' and 'text', got dict"):
        CrossAttentionMatcher(progress=False).fit({"image": ["a.png"], "text": ["a"]})
    with pytest.raises(InputError, match="val: expected a jointspace Pairs with 'image' and 'text', got dict"):
        CrossAttentionMatcher(progress=False).fit(pairs, val={"image": ["a.png"]})
    with pytest.raises(InputError, match="val: expected a jointspace Pairs with 'image' and 'text', got list"):
        m.choose_weight(None, [("a.png", "a")])
    with pytest.raises(InputError, match=r"first_stage: expected a fitted model of images and texts \(e.g. "
                                         r"load_model\(...\)\), got NoneType"):
        m.choose_weight(None, pairs)

    class Flat:
        modalities_ = ("a", "b")

        def encode(self, modality, items):
            return np.zeros((len(items), 2))

    with pytest.raises(InputError, match="first_stage: expected a fitted model of images and texts .* got one of a, b"):
        m.choose_weight(Flat(), pairs)
    with pytest.raises(InputError, match="val: expected pairs with 'image' and 'text', got image"):
        m.choose_weight(Flat(), Pairs({"image": ["a.png"]}))


def _small_fitted_matcher():
    """A matcher fitted on 4 random pairs of 3 regions and 2 word pieces, and a red 32 px image."""
    from PIL import Image

    rng = np.random.default_rng(0)
    r, t = rng.normal(size=(4, 3, 1280)).astype(np.float32), rng.normal(size=(4, 2, 384)).astype(np.float32)
    m = CrossAttentionMatcher(dim=8, epochs=1, batch_size=2, progress=False)
    m.fit_parts(r, np.ones((4, 3), bool), t, np.ones((4, 2), bool), np.arange(4))
    img = Image.new("RGB", (32, 32), (200, 30, 30))
    return m, img


def test_explain_names_its_image_and_text():
    m, img = _small_fitted_matcher()
    # the towers' messages named 'items[0]', which explain has not
    with pytest.raises(InputError, match=r"^image: expected a file path, PIL image or uint8 array, got list"):
        m.explain([img, img], "a red square")
    with pytest.raises(InputError, match=r"^text: expected a string, got list"):
        m.explain(img, ["a", "red"])
    with pytest.raises(InputError, match=r"^text: expected a non-empty text"):
        m.explain(img, "")
    out = m.explain(img, "a red square")
    assert out["pieces"] == ["a", "red", "square"] and out["maps"].shape == (3, 7, 7)


def test_score_names_the_images_and_texts_it_cannot_read():
    m, img = _small_fitted_matcher()
    # no images raised AttributeError, None a TypeError; the others named 'items', which score has not
    with pytest.raises(InputError, match=r"^images: expected at least one image item, got none"):
        m.score([], ["a red square"])
    with pytest.raises(InputError, match=r"^images: expected a list of image items, got NoneType"):
        m.score(None, ["a red square"])
    with pytest.raises(InputError, match=r"^texts: expected at least one text item, got none"):
        m.score([img], [])
    with pytest.raises(InputError, match=r"^texts: expected a list of text items, got a single str"):
        m.score([img], "a red square")
    with pytest.raises(InputError, match=r"^texts\[1\]: expected a non-empty text"):
        m.score([img], ["a red square", " "])
    regions, rmask = m.image_parts([img, img])
    _, tokens, tmask = m.text_parts(["a red square", "blue"])
    np.testing.assert_allclose(m.score([img, img], ["a red square", "blue"]),
                               m.score_parts(regions, rmask, tokens, tmask), rtol=1e-6)


def test_a_saved_matcher_given_as_a_model_or_a_fusion_classifier_is_named(tmp_path):
    from jointspace import FusionClassifier, load_model

    r, rm, t, tm, k = _toy_parts(6, 0)
    CrossAttentionMatcher(dim=8, epochs=1, batch_size=3, progress=False).fit_parts(r, rm, t, tm, k).save(tmp_path / "m")
    # both said "model: .../config.json has no field 'model'", FusionClassifier.load naming an argument it has not
    with pytest.raises(InputError, match=r"^model: '.*m' holds a saved cross-attention matcher \(it scores image-text "
                                         r"pairs; it has no joint space to encode into\)"):
        load_model(tmp_path / "m")
    with pytest.raises(InputError, match=r"^path: '.*m' holds a saved cross-attention matcher, not a fusion "
                                         r"classifier"):
        FusionClassifier.load(tmp_path / "m")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "config.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"^path: .*config.json must be a JSON object"):
        FusionClassifier.load(tmp_path / "f")


def test_a_bad_relevance_is_refused_before_the_towers_read_anything(monkeypatch):
    from jointspace.data.pairs import Pairs

    read = []
    monkeypatch.setattr(CrossAttentionMatcher, "image_parts", lambda self, images: read.append("images"))
    monkeypatch.setattr(CrossAttentionMatcher, "text_parts", lambda self, texts: read.append("texts"))
    pairs = Pairs({"image": ["a.png", "b.png"], "text": ["a", "b"]}, labels=np.array([0, 1]))
    m = CrossAttentionMatcher(dim=8, epochs=1, progress=False)
    # the regions and word pieces of every pair were computed first (minutes on OpenClipart)
    with pytest.raises(InputError, match=r"^relevance: expected 'auto', 'label', 'id' or a metadata column"):
        m.fit(pairs, relevance="title_key")
    with pytest.raises(InputError, match=r"^relevance: expected"):
        m.fit(pairs, pairs, relevance="nosuch")
    titled = Pairs({"image": ["a.png", "b.png"], "text": ["a", "b"]}, metadata={"title": ["a", "b"]})
    with pytest.raises(InputError, match=r"^relevance: expected"):   # val has no 'title'
        m.fit(titled, pairs, relevance="title")
    assert read == [] and m.net_ is None

    class Counting:
        modalities_ = ("image", "text")

        def encode(self, modality, items):
            read.append(modality)
            return np.eye(len(items))

    r, rm, t, tm, k = _toy_parts(4, 0)
    m.fit_parts(r, rm, t, tm, k)
    with pytest.raises(InputError, match=r"^relevance: expected"):
        m.choose_weight(Counting(), pairs, relevance="title")
    assert read == []


def test_a_bad_text_is_refused_before_the_image_tower_reads_anything(monkeypatch):
    from jointspace.data.pairs import Pairs

    read = []
    monkeypatch.setattr(CrossAttentionMatcher, "image_parts", lambda self, images: read.append("images"))
    m = CrossAttentionMatcher(dim=8, epochs=1, progress=False)
    # an empty text was found once every image's regions had been computed
    with pytest.raises(InputError, match=r"^texts\[1\]: expected a non-empty text \(a visible character\), got ' '"):
        m.fit(Pairs({"image": ["a.png", "b.png"], "text": ["a", " "]}))
    with pytest.raises(InputError, match=r"^texts\[0\]: expected a string, got int"):
        m.fit(Pairs({"image": ["a.png", "b.png"], "text": [3, "b"]}))
    # val's texts: once the training pairs' regions had been computed
    with pytest.raises(InputError, match=r"^val texts\[0\]: expected a non-empty text"):
        m.fit(Pairs({"image": ["a.png", "b.png"], "text": ["a", "b"]}), Pairs({"image": ["c.png"], "text": [""]}))
    with pytest.raises(InputError, match=r"^val images\[0\]: file 'no-such-folder/c.png' does not exist"):
        m.fit(Pairs({"image": ["a.png", "b.png"], "text": ["a", "b"]}),
              Pairs({"image": ["no-such-folder/c.png"], "text": ["c"]}))
    assert read == [] and m.net_ is None
    r, rm, t, tm, k = _toy_parts(4, 0)
    m.fit_parts(r, rm, t, tm, k)
    with pytest.raises(InputError, match=r"^texts\[1\]: expected a non-empty text"):   # score: the same
        m.score(["a.png", "b.png"], ["a", ""])
    assert read == []


def test_towers_that_give_no_regions_or_word_pieces_are_refused_by_name():
    # they raised AttributeError ('MiniLMTower' object has no attribute 'feature_map') once fit began
    with pytest.raises(InputError, match=r"^image_tower: expected a tower that gives a feature map of image regions "
                                         r"\(efficientnet-lite0\), got 'minilm'$"):
        CrossAttentionMatcher(image_tower="minilm")
    with pytest.raises(InputError, match=r"^text_tower: expected a tower that gives word pieces and their vectors "
                                         r"\(minilm\), got 'mfcc'$"):
        CrossAttentionMatcher(text_tower="mfcc")
    with pytest.raises(InputError, match=r"^image_tower: expected a tower .*, got 'nosuch'$"):
        CrossAttentionMatcher(image_tower="nosuch")
    m = CrossAttentionMatcher(image_tower="efficientnet-lite0", text_tower="minilm")
    assert (m.image_tower, m.text_tower) == ("efficientnet-lite0", "minilm")
