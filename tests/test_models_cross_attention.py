"""Cross-modal attention (alpha_ij = softmax_j(I_i^T W_a T_j)), its matching score and re-ranking."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jointspace.errors import InputError, NotFittedError
from jointspace.models.cross_attention import CrossAttentionNet, cross_attention, pad_parts
from jointspace.models.rerank import (CrossAttentionMatcher, choose_rerank_weight, is_saved_matcher, per_key_mean,
                                      rerank_candidates, standardize_rows)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_one_hot_features_with_identity_give_the_hand_computed_attention():
    regions = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # R = 2
    tokens = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # T = 3
    att = cross_attention(regions, tokens)  # W_a = identity: scores [[1, 1, 0], [0, 0, 1]]
    e = math.e
    alpha = np.array([[e, e, 1] / np.float64(2 * e + 1), [1, 1, e] / np.float64(2 + e)])
    beta = np.array([[e / (e + 1), e / (e + 1), 1 / (1 + e)], [1 / (e + 1), 1 / (e + 1), e / (1 + e)]])
    np.testing.assert_allclose(att.scores.numpy(), [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(att.alpha.numpy(), alpha, rtol=1e-6)
    np.testing.assert_allclose(att.beta.numpy(), beta, rtol=1e-6)
    # attended text of region 0: (e [1,0] + e [1,0] + [0,1]) / (2e + 1)
    np.testing.assert_allclose(att.attended_text[0].numpy(), [2 * e / (2 * e + 1), 1 / (2 * e + 1)], rtol=1e-6)
    # attended image of word 2: (1 [1,0] + e [0,1]) / (1 + e)
    np.testing.assert_allclose(att.attended_regions[2].numpy(), [1 / (1 + e), e / (1 + e)], rtol=1e-6)


def test_attention_rows_sum_to_one_and_padding_gets_none():
    g = torch.Generator().manual_seed(0)
    regions, tokens = torch.randn(3, 5, 4, generator=g), torch.randn(3, 6, 4, generator=g)
    w_a = torch.randn(4, 4, generator=g)
    tmask = torch.ones(3, 6, dtype=torch.bool)
    tmask[0, 4:] = False
    rmask = torch.ones(3, 5, dtype=torch.bool)
    rmask[1, 3:] = False
    att = cross_attention(regions, tokens, w_a, rmask, tmask)
    valid_rows = rmask
    np.testing.assert_allclose(att.alpha.sum(-1)[valid_rows].numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(att.beta.sum(-2)[tmask].numpy(), 1.0, rtol=1e-6)
    assert float(att.alpha[0, :, 4:].abs().max()) == 0.0
    assert float(att.beta[1, 3:, :].abs().max()) == 0.0
    # the masked result equals attention computed on the unpadded parts alone
    alone = cross_attention(regions[0], tokens[0, :4], w_a)
    np.testing.assert_allclose(att.alpha[0, :, :4].numpy(), alone.alpha.numpy(), rtol=1e-5, atol=1e-7)
    # against an explicit softmax of I_i^T W_a T_j
    s = regions[2] @ w_a @ tokens[2].T
    np.testing.assert_allclose(att.alpha[2].numpy(), torch.softmax(s, 1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(att.attended_text[2].numpy(), (torch.softmax(s, 1) @ tokens[2]).numpy(), rtol=1e-5)


def test_a_single_region_gets_all_of_every_words_attention():
    att = cross_attention(torch.randn(1, 4), torch.randn(3, 4))  # a 1x1 feature map
    np.testing.assert_allclose(att.beta.numpy(), 1.0)


def _reference_scores(net, regions, rmask, tokens, tmask):
    """Pair scores from the attended vectors themselves (not the Gram-matrix shortcut)."""
    out = np.zeros((len(regions), len(tokens)))
    for a in range(len(regions)):
        for b in range(len(tokens)):
            r_, t_ = regions[a][rmask[a]], tokens[b][tmask[b]]
            att = net.attention(r_, t_)
            r, t = net.project(r_, t_)
            side_r = F.cosine_similarity(r, att.attended_text, dim=-1).mean()
            side_t = F.cosine_similarity(t, att.attended_regions, dim=-1).mean()
            out[a, b] = float(0.5 * (side_r + side_t))
    return out


def test_pair_scores_equal_cosines_of_the_attended_vectors():
    torch.manual_seed(0)
    net = CrossAttentionNet(6, 5, dim=4)
    with torch.no_grad():
        net.w_a.add_(0.3 * torch.randn(4, 4))
    regions, tokens = torch.randn(3, 4, 6), torch.randn(2, 5, 5)
    rmask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    tmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        got = net.pair_scores(regions, rmask, tokens, tmask).numpy()
        want = _reference_scores(net, regions, rmask, tokens, tmask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(got) <= 1 + 1e-6)


def test_pair_scores_gradients_pass_gradcheck():
    torch.manual_seed(1)
    net = CrossAttentionNet(3, 3, dim=3).double()
    regions = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    tokens = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    rmask, tmask = torch.ones(2, 3, dtype=torch.bool), torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda r, t: net.pair_scores(r, rmask, t, tmask), (regions, tokens))


def test_bad_parts_get_clear_errors():
    with pytest.raises(InputError, match="regions: an image needs at least one region"):
        cross_attention(torch.zeros(0, 4), torch.randn(3, 4))
    with pytest.raises(InputError, match="tokens: a text needs at least one token"):
        cross_attention(torch.randn(2, 4), torch.zeros(0, 4))
    with pytest.raises(InputError, match=r"w_a: expected shape \(d_i, d_t\) = \(4, 3\)"):
        cross_attention(torch.randn(2, 4), torch.randn(3, 3), torch.eye(3))
    with pytest.raises(InputError, match="token_mask: every item needs at least one valid entry"):
        cross_attention(torch.randn(2, 4), torch.randn(3, 4), token_mask=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(InputError, match="texts: item 1 is empty"):
        pad_parts([np.ones((2, 3)), np.ones((0, 3))], name="texts")



@pytest.mark.parametrize("call, needle", [
    (lambda i, t: cross_attention(i.clone().fill_(float("nan")), t), "regions: expected finite values"),
    (lambda i, t: cross_attention(i, t.clone().fill_(float("inf"))), "tokens: expected finite values"),
    (lambda i, t: cross_attention(i, t, torch.full((4, 4), float("nan"))), "w_a: expected finite values"),
    (lambda i, t: cross_attention(i, t, scale=float("nan")), "scale: expected a finite number > 0"),
    (lambda i, t: cross_attention(i, t, scale=-1.0), "scale: expected a finite number > 0"),
    (lambda i, t: cross_attention(i, t, token_mask=torch.ones(2, 5, dtype=torch.int64)), "token_mask: expected a bool"),
    (lambda i, t: cross_attention(i.double(), t.double(), torch.eye(4)), "w_a: expected the dtype of regions"),
    (lambda i, t: cross_attention(i, torch.randn(3, 5, 4)), "tokens: expected leading dimensions that broadcast"),
    (lambda i, t: cross_attention(i.tolist(), t), "regions: expected a tensor"),
])
def test_non_finite_or_mistyped_parts_are_refused(call, needle):
    """Rather than attention rows that silently sum to 0 (NaN scores were zeroed as padding)."""
    with pytest.raises(InputError, match=needle):
        call(torch.randn(2, 3, 4), torch.randn(2, 5, 4))


def test_pad_parts_pads_masks_and_warns_when_it_truncates():
    with pytest.warns(UserWarning, match="1 of 2 items are longer than 3 and were truncated"):
        out, mask = pad_parts([np.ones((5, 2)), 2 * np.ones((1, 2))], max_len=3)
    assert out.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    assert out[1, 0, 0] == 2 and out[1, 1:].sum() == 0


def test_rerank_reorders_and_never_drops_nor_invents_a_candidate():
    rng = np.random.default_rng(0)
    ids = np.array([rng.permutation(50) + 100 * q for q in range(4)])
    first = np.sort(rng.random((4, 50)))[:, ::-1]
    cross = rng.random((4, 50))
    for w in (0.0, 0.3, 1.0):
        got_ids, got_scores = rerank_candidates(ids, first, cross, w)
        for q in range(4):
            assert sorted(got_ids[q]) == sorted(ids[q])
            assert np.all(np.diff(got_scores[q]) <= 0)
    same, _ = rerank_candidates(ids, first, cross, 0.0)
    np.testing.assert_array_equal(same, ids)  # w = 0 keeps the first stage's order
    best, _ = rerank_candidates(ids, first, cross, 1.0)
    np.testing.assert_array_equal(best[:, 0], ids[np.arange(4), cross.argmax(1)])
    # the blend of standardised scores, computed by hand for one query
    w = 0.3
    zf = (first[1] - first[1].mean()) / first[1].std()
    zc = (cross[1] - cross[1].mean()) / cross[1].std()
    got_ids, got_scores = rerank_candidates(ids, first, cross, w)
    want = (1 - w) * zf + w * zc
    np.testing.assert_array_equal(got_ids[1], ids[1][np.argsort(-want, kind="stable")])
    np.testing.assert_allclose(got_scores[1], np.sort(want)[::-1], atol=1e-12)
    # scaling either score does not change the order (a raw blend would be ruled by the larger spread)
    again, _ = rerank_candidates(ids, 100 * first + 3, cross / 100, w)
    np.testing.assert_array_equal(again, got_ids)
    with pytest.raises(InputError, match="expected three"):
        rerank_candidates(ids, first[:, :10], cross, 0.5)
    with pytest.raises(InputError, match="weight"):
        rerank_candidates(ids, first, cross, 1.5)


def _toy_parts(n, seed):
    """Images whose regions carry the one-hot 'colour' of their words: matching needs attention."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 8, n)
    regions = rng.normal(scale=0.3, size=(n, 4, 8)).astype(np.float32)
    tokens = rng.normal(scale=0.3, size=(n, 3, 8)).astype(np.float32)
    slot = rng.integers(0, 4, n)
    regions[np.arange(n), slot, keys] += 3.0
    tokens[np.arange(n), 0, keys] += 3.0
    return regions, np.ones((n, 4), bool), tokens, np.ones((n, 3), bool), keys


def test_per_key_mean_counts_each_title_once():
    # title 7: four queries, one hit (0.25); title 3: one query, a hit (1.0); title 5: none of two
    hits = np.array([1, 0, 0, 0, 1, 0, 0], bool)
    keys = np.array([7, 7, 7, 7, 3, 5, 5])
    assert per_key_mean(hits, keys) == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert hits.mean() == pytest.approx(2 / 7)   # every query once: a different figure


def test_choose_rerank_weight_hand_worked():
    # two candidates a, b per query: first scores favour a, the matcher's favour b, so the blend
    # keeps a for w <= 0.5 (a tie at 0.5 keeps the first stage's order) and takes b above
    first, cross = np.tile([1.0, 0.0], (4, 1)), np.tile([0.0, 1.0], (4, 1))
    keys = np.array([0, 0, 0, 1, 2])       # images 0..4; text query i is pair i
    ids = np.array([[1, 3], [0, 3], [3, 4], [4, 3]])
    # a: hit, hit, miss, miss -> R@1 1/2, per title (2/3 + 0) / 2 = 1/3
    # b: miss, miss, miss, hit -> R@1 1/4, per title (0 + 1) / 2 = 1/2: counted per title, b wins
    got = choose_rerank_weight(ids, first, cross, keys, weights=(0.0, 0.5, 1.0))
    assert got["weight"] == 1.0
    assert got["recall@1"] == pytest.approx({"0.0": 0.5, "0.5": 0.5, "1.0": 0.25})
    assert got["recall@1 per key"] == pytest.approx({"0.0": 1 / 3, "0.5": 1 / 3, "1.0": 0.5})
    # all keys distinct: per key = per query; equal scores go to the smaller weight
    ids2 = np.array([[1, 0], [2, 1], [0, 2]])
    first2, cross2 = np.tile([0.9, 0.1], (3, 1)), np.tile([0.2, 0.8], (3, 1))
    got = choose_rerank_weight(ids2, first2, cross2, np.arange(3), weights=(0.0, 0.75, 1.0))
    assert got["weight"] == 0.75 and got["recall@1"] == pytest.approx({"0.0": 0.0, "0.75": 1.0, "1.0": 1.0})
    with pytest.raises(InputError, match="first_ids, keys"):
        choose_rerank_weight(ids, first, cross, keys[:2])
    with pytest.raises(InputError, match=r"scores: expected a \(q, N\) array"):
        standardize_rows(np.ones(3))
    with pytest.raises(InputError, match="weights: expected at least one blend weight"):
        choose_rerank_weight(ids2, first2, cross2, np.arange(3), weights=())
    with pytest.raises(InputError, match="first_ids: expected integer ids of the 3 keyed items"):
        choose_rerank_weight(ids2 + 1, first2, cross2, np.arange(3))


def test_rerank_needs_a_chosen_weight():
    with pytest.raises(InputError, match=r"^progress: expected True or False, got 'no'$"):
        CrossAttentionMatcher(progress="no")
    m = CrossAttentionMatcher(progress=False)
    with pytest.raises(InputError, match="rerank_weight: not chosen yet"):
        m.rerank(np.array([[0, 1]]), np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    m.rerank_weight = 1.0
    assert m.rerank(np.array([[0, 1]]), np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0].tolist() == [[1, 0]]


def test_matcher_learns_to_match_saves_and_loads(tmp_path):
    train, val = _toy_parts(256, 0), _toy_parts(64, 1)
    m = CrossAttentionMatcher(dim=16, epochs=30, batch_size=32, lr=5e-3, patience=30, progress=False)
    with pytest.raises(NotFittedError):
        m.score_parts(*val[:4])
    m.fit_parts(*train, val=val)
    s = m.score_parts(*val[:4])  # (images, texts)
    keys = val[4]
    top = s.T.argmax(1)  # best image per text
    assert np.mean(keys[top] == keys) > 0.9
    top = np.argsort(-s.T, axis=1)[:, :5]   # each text's five best images
    np.testing.assert_allclose(m.score_candidates(top, *val[:4]), np.take_along_axis(s.T, top, 1), rtol=1e-5,
                               atol=1e-6)
    m.save(tmp_path / "m")
    assert is_saved_matcher(tmp_path / "m")
    back = CrossAttentionMatcher.load(tmp_path / "m")
    np.testing.assert_allclose(back.score_parts(*val[:4]), s, rtol=1e-6)
    assert back.get_config() == m.get_config()
    # what it cannot score is refused by name, with what it expected
    regions, rmask, tokens, tmask = val[:4]
    with pytest.raises(InputError, match=f"regions: expected vectors of size {regions.shape[-1]}"):
        m.score_parts(regions[..., :-1], rmask, tokens, tmask)
    with pytest.raises(InputError, match="regions: expected at least one item"):
        m.score_parts(regions[:0], rmask[:0], tokens, tmask)
    with pytest.raises(InputError, match=f"candidates: expected ids of the {len(regions)} images"):
        m.score_candidates(top + len(regions), *val[:4])
    with pytest.raises(InputError, match="candidates: expected \\(q, N\\) integer ids, one row per text"):
        m.score_candidates(top[:3], *val[:4])
    with pytest.raises(InputError, match="not a saved cross-attention matcher"):
        CrossAttentionMatcher.load(tmp_path)


def test_matcher_refuses_bad_training_parts():
    r, rm, t, tm, k = _toy_parts(10, 0)
    m = CrossAttentionMatcher(progress=False)
    with pytest.raises(InputError, match="keys: expected 10 images, texts and keys"):
        m.fit_parts(r, rm, t, tm, k[:5])
    bad = r.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m.fit_parts(bad, rm, t, tm, k)
    with pytest.raises(InputError, match="rerank_weight"):
        CrossAttentionMatcher(rerank_weight=2.0)


def test_matcher_seed_is_an_integer_in_0_to_2_32_minus_1():
    r, rm, t, tm, k = _toy_parts(6, 0)
    # 2**64 passed, then torch's 'Overflow when unpacking long long' came once the parts were read
    with pytest.raises(InputError, match=r"^seed: expected an integer <= 4294967295, got 18446744073709551616$"):
        CrossAttentionMatcher(seed=2**64)
    with pytest.raises(InputError, match=r"^seed: expected an integer <= 4294967295, got 4294967296$"):
        CrossAttentionMatcher(seed=2**32)
    top = CrossAttentionMatcher(dim=8, epochs=1, batch_size=3, seed=2**32 - 1, progress=False)
    again = CrossAttentionMatcher(dim=8, epochs=1, batch_size=3, seed=2**32 - 1, progress=False)
    np.testing.assert_array_equal(top.fit_parts(r, rm, t, tm, k).score_parts(r, rm, t, tm),
                                  again.fit_parts(r, rm, t, tm, k).score_parts(r, rm, t, tm))


def test_word_pieces_drop_the_markers_keep_their_vectors_and_warn_when_cut():
    from jointspace.towers import create_tower

    tower = create_tower("minilm")
    (pieces, vec), = tower.word_pieces(["a red airplane"])
    assert pieces == ["a", "red", "airplane"] and vec.shape == (3, 384)
    full = tower.token_vectors(["a red airplane"])[0]  # [CLS] a red airplane [SEP]
    np.testing.assert_allclose(vec, full[1:4], rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="1 of 1 texts are longer than 2 word pieces and were truncated"):
        (pieces, vec), = tower.word_pieces(["a red airplane"], max_tokens=2)
    assert pieces == ["a", "red"] and vec.shape == (2, 384)


def test_image_parts_are_the_cells_of_the_feature_map():
    from PIL import Image

    m = CrossAttentionMatcher(progress=False)
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    regions, mask = m.image_parts([img])
    assert regions.shape == (1, 49, 1280) and mask.all()
    fmap = m._towers()[0].feature_map([img])
    np.testing.assert_allclose(regions[0, 8], fmap[0, :, 1, 1])  # row-major cells: cell 8 = (1, 1)


def test_a_matcher_whose_recorded_sizes_are_damaged_is_refused_by_name(tmp_path):
    import json

    r, rm, t, tm, k = _toy_parts(8, 0)
    CrossAttentionMatcher(dim=8, epochs=1, batch_size=4, progress=False).fit_parts(r, rm, t, tm, k).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["dims"] == [8, 8]
    # these raised IndexError, torch's RuntimeError, or tried to allocate the recorded size
    for dims, needle in (([8], "is malformed: dims: expected the sizes [region, token] of its vectors, two "
                                "integers >= 1; got [8]"),
                         ([-1, 8], "is malformed: dims: expected the sizes [region, token] of its vectors, two "
                                   "integers >= 1; got [-1, 8]"),
                         ([8.5, 8], "got [8.5, 8]"),
                         ([10 ** 12, 8], "state.safetensors does not hold this matcher's weights: expected "
                                         "proj_region.weight of shape (8, 1000000000000) (dim and dims of "
                                         "config.json), got (8, 8)")):
        (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "dims": dims}))
        with pytest.raises(InputError) as err:
            CrossAttentionMatcher.load(tmp_path / "m")
        assert str(err.value).startswith(f"path: {tmp_path / 'm'}") and needle in str(err.value), err.value
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert CrossAttentionMatcher.load(tmp_path / "m").dims_ == (8, 8)


def test_training_keys_count_by_equality_whatever_their_type():
    r, rm, t, tm, k = _toy_parts(12, 0)

    def scores(keys):
        m = CrossAttentionMatcher(dim=8, epochs=2, batch_size=6, progress=False).fit_parts(r, rm, t, tm, keys)
        return m.score_parts(r, rm, t, tm)

    want = scores(k)
    # string keys raised ValueError; fractional keys were cut to integers, so 0.1 and 0.7 became
    # one key and distinct items positives of each other
    np.testing.assert_array_equal(scores(np.array([f"title {v}" for v in k])), want)
    np.testing.assert_array_equal(scores(k / 10), want)
    assert len(set(k)) > 1 and not np.array_equal(scores(np.zeros_like(k)), want)


def test_validation_parts_are_refused_by_name_before_training():
    r, rm, t, tm, k = _toy_parts(8, 0)
    m = CrossAttentionMatcher(dim=8, epochs=1, batch_size=4, progress=False)
    # a tuple without keys raised TypeError; vectors of another size, torch's RuntimeError
    with pytest.raises(InputError, match=r"val: expected the five arrays \(regions, region_mask, tokens, token_mask, "
                                         r"keys\) of the validation rows, got 4 items"):
        m.fit_parts(r, rm, t, tm, k, val=(r, rm, t, tm))
    with pytest.raises(InputError, match="val: expected the five arrays .* got dict"):
        m.fit_parts(r, rm, t, tm, k, val={"regions": r})
    with pytest.raises(InputError, match="val regions: expected vectors of size 8, as the training regions, got 5"):
        m.fit_parts(r, rm, t, tm, k, val=(r[..., :5], rm, t, tm, k))
    with pytest.raises(InputError, match="val tokens: expected vectors of size 8, as the training tokens, got 9"):
        m.fit_parts(r, rm, t, tm, k, val=(r, rm, np.concatenate([t, t[..., :1]], -1), tm, k))
    with pytest.raises(InputError, match="val: expected at least one validation row"):
        m.fit_parts(r, rm, t, tm, k, val=(r[:0], rm[:0], t[:0], tm[:0], k[:0]))
    assert m.net_ is None


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
