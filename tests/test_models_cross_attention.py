"""Cross-modal attention (alpha_ij = softmax_j(I_i^T W_a T_j)), its matching score and re-ranking."""

import math

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
