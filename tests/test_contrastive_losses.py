"""The contrastive objectives pinned against hand-worked cases and independent implementations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jointspace.errors import InputError
from jointspace.objectives.contrastive import (MAX_LOGIT_SCALE, clamp_log_scale_, clip_logits, clip_loss,
                                               info_nce, init_log_scale, logit_scale, multimodal_clip_loss,
                                               positive_mask, siglip_loss, supervised_clip_loss)


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


# -- the chapter's loss: a 3 x 3 case by hand ---------------------------------------------------
T3 = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
A3 = [[0.6, 0.8], [1.0, 0.0], [0.8, 0.6]]


def _hand_clip_3x3(scale):
    c = [[scale * sum(t * a for t, a in zip(T3[i], A3[j])) for j in range(3)] for i in range(3)]
    l_text = -sum(math.log(math.exp(c[i][i]) / sum(math.exp(c[i][j]) for j in range(3))) for i in range(3)) / 3
    l_image = -sum(math.log(math.exp(c[i][i]) / sum(math.exp(c[j][i]) for j in range(3))) for i in range(3)) / 3
    return 0.5 * (l_text + l_image), l_text, l_image


@pytest.mark.parametrize("fused", [True, False])
def test_clip_loss_hand_worked_3x3(fused):
    want, l_text, l_image = _hand_clip_3x3(2.0)
    assert l_text != pytest.approx(l_image)  # the example is asymmetric, so rows vs columns matter
    got = clip_loss(torch.tensor(T3), torch.tensor(A3), 2.0, fused=fused)
    assert float(got.detach()) == pytest.approx(want, rel=1e-6)
    assert float(clip_loss(torch.tensor(T3), torch.tensor(A3), tau=0.5, fused=fused)) == pytest.approx(want, rel=1e-6)


def test_info_nce_rows_are_text_columns_are_image():
    c = clip_logits(torch.tensor(T3, dtype=torch.float64), torch.tensor(A3, dtype=torch.float64), 2.0)
    want, l_text, l_image = _hand_clip_3x3(2.0)
    diag = c.diagonal()
    assert float((torch.logsumexp(c, 1) - diag).mean()) == pytest.approx(l_text, rel=1e-12)
    assert float((torch.logsumexp(c, 0) - diag).mean()) == pytest.approx(l_image, rel=1e-12)
    assert float(info_nce(c)) == pytest.approx(want, rel=1e-12)


def _numpy_clip(t, a, scale):
    c = scale * t @ a.T
    def lsm(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return 0.5 * (-np.mean(np.diag(lsm(c, 1))) - np.mean(np.diag(lsm(c, 0))))


@pytest.mark.parametrize("n", [2, 5, 37])
def test_clip_loss_matches_cross_entropy_and_numpy_values_and_gradients(n):
    t64, a64 = _unit(n, 8, 1), _unit(n, 8, 2)
    ref_val = _numpy_clip(t64.numpy(), a64.numpy(), 14.0)
    # Independent reference: open_clip's formulation with F.cross_entropy on the logits and their transpose.
    t1, a1 = t64.float().requires_grad_(), a64.float().requires_grad_()
    s1 = torch.tensor(math.log(14.0), requires_grad=True)
    logits = s1.exp() * t1 @ a1.T
    labels = torch.arange(n)
    ref = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    ref.backward()
    assert float(ref.detach()) == pytest.approx(ref_val, rel=1e-5)
    for fused in (True, False):
        t2, a2 = t64.float().requires_grad_(), a64.float().requires_grad_()
        s2 = torch.tensor(math.log(14.0), requires_grad=True)
        ours = clip_loss(t2, a2, logit_scale(s2), fused=fused)
        ours.backward()
        assert float(ours.detach()) == pytest.approx(ref_val, rel=1e-5)
        torch.testing.assert_close(t2.grad, t1.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(a2.grad, a1.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(s2.grad, s1.grad, rtol=1e-4, atol=1e-6)


def test_fused_gradient_passes_gradcheck():
    t, a = _unit(4, 3, 3).requires_grad_(), _unit(4, 3, 4).requires_grad_()
    s = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    from jointspace.objectives._fused import fused_clip_loss
    assert torch.autograd.gradcheck(fused_clip_loss, (t, a, s))


@pytest.mark.parametrize("fused", [True, False])
def test_public_losses_keep_float64_and_pass_gradcheck(fused):
    t, a = _unit(4, 3, 3).requires_grad_(), _unit(4, 3, 4).requires_grad_()
    s = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert clip_loss(t, a, s, fused=fused).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda t, a, s: clip_loss(t, a, s, fused=fused), (t, a, s))
    labels = np.array([0, 1, 0, 2])
    assert torch.autograd.gradcheck(lambda t, a: supervised_clip_loss(t, a, labels, s.detach()), (t, a))
    bias = torch.tensor(-1.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, a, b: siglip_loss(t, a, s.detach(), b), (t, a, bias))
    # narrower inputs (bf16 under autocast) are still computed in float32
    assert clip_loss(t.detach().bfloat16(), a.detach().bfloat16(), 3.0, fused=fused).dtype == torch.float32


def _np_soft_clip(t, a, scale, pos):
    """Symmetric loss with row/column targets uniform over ``pos``, in numpy float64."""
    c = scale * (t @ a.T)
    log_p = c - (c.max(1, keepdims=True) + np.log(np.exp(c - c.max(1, keepdims=True)).sum(1, keepdims=True)))
    log_q = c - (c.max(0, keepdims=True) + np.log(np.exp(c - c.max(0, keepdims=True)).sum(0, keepdims=True)))
    l_text = -(pos / pos.sum(1, keepdims=True) * log_p).sum(1).mean()
    l_image = -(pos / pos.sum(0, keepdims=True) * log_q).sum(0).mean()
    return 0.5 * (l_text + l_image)


@pytest.mark.parametrize("fused", [True, False])
def test_float64_losses_use_the_temperature_unrounded(fused):
    # tau=0.07, a Python scale or the default: 1/0.07 must not pass through float32 first
    # (that shifted a float64 loss by about 1e-8 relative).
    t, a = _unit(6, 4, 11), _unit(6, 4, 12)
    tn, an = t.numpy(), a.numpy()
    eye = np.eye(6)
    want = _np_soft_clip(tn, an, 1 / 0.07, eye)
    for got in (clip_loss(t, a, tau=0.07, fused=fused), clip_loss(t, a, 1 / 0.07, fused=fused),
                clip_loss(t, a, fused=fused)):
        assert got.dtype == torch.float64
        assert float(got) == pytest.approx(want, rel=1e-13, abs=0)
    labels = [0, 0, 1, 2, 1, 3]
    pos = (np.array(labels)[:, None] == np.array(labels)[None, :]).astype(float)
    assert float(supervised_clip_loss(t, a, labels, tau=0.07)) == pytest.approx(_np_soft_clip(tn, an, 1 / 0.07, pos),
                                                                               rel=1e-13, abs=0)
    z = (1 / 0.07) * (tn @ an.T) - 1.0
    want_sig = np.log1p(np.exp(-(2 * eye - 1) * z)).sum() / 6
    assert float(siglip_loss(t, a, 1 / 0.07, -1.0)) == pytest.approx(want_sig, rel=1e-13, abs=0)
    # float32 features keep a float32 loss
    assert clip_loss(t.float(), a.float(), tau=0.07, fused=fused).dtype == torch.float32


def test_batch_of_one_is_refused():
    x = torch.randn(1, 4)
    for fn in (lambda: clip_loss(x, x, 10.0), lambda: siglip_loss(x, x, 10.0, -10.0),
               lambda: supervised_clip_loss(x, x, ["a"], 10.0), lambda: info_nce(torch.zeros(1, 1))):
        with pytest.raises(InputError, match="no negatives"):
            fn()


def test_nan_and_shape_errors_are_clear():
    x = torch.randn(4, 3)
    y = x.clone()
    y[2, 1] = float("nan")
    with pytest.raises(InputError, match=r"image: expected finite features.*row 2, column 1"):
        clip_loss(x, y, 10.0)
    with pytest.raises(InputError, match="expected the shape"):
        clip_loss(x, torch.randn(4, 5), 10.0)
    with pytest.raises(InputError, match="tau"):
        clip_loss(x, x, tau=0.0)
    with pytest.raises(InputError, match="positive"):
        clip_loss(x, x, float("inf"))


def test_tau_at_its_bound():
    # exp(log_scale) is clamped at 100 (tau = 0.01) and the gradient stops pushing it further.
    ls = torch.tensor(math.log(1e4), requires_grad=True)
    s = logit_scale(ls)
    assert float(s.detach()) == pytest.approx(MAX_LOGIT_SCALE)
    t, a = _unit(6, 4, 5).float(), _unit(6, 4, 6).float()
    clip_loss(t, a, s).backward()
    assert float(ls.grad) == 0.0
    clamp_log_scale_(ls)
    assert float(ls.detach()) == pytest.approx(math.log(100.0))
    # Below the bound the gradient flows: d loss / d log_scale = scale * d loss / d scale.
    ls2 = torch.tensor(init_log_scale(0.07), requires_grad=True)
    clip_loss(t, a, logit_scale(ls2)).backward()
    assert float(ls2.grad) != 0.0
    # Many steps of gradient descent with a large rate never drive 1/tau past the bound.
    ls3 = torch.tensor(init_log_scale(0.07), requires_grad=True)
    opt = torch.optim.SGD([ls3], lr=50.0)
    t, a = _unit(8, 4, 7).float(), None
    for _ in range(20):
        opt.zero_grad()
        clip_loss(t, t, logit_scale(ls3)).backward()  # perfectly aligned pairs: wants tau -> 0
        opt.step()
        clamp_log_scale_(ls3)
        assert float(logit_scale(ls3.detach())) <= MAX_LOGIT_SCALE      # exactly: the bound is rounded down
        assert float(ls3.detach().exp()) <= MAX_LOGIT_SCALE
    assert float(logit_scale(ls3.detach())) == pytest.approx(MAX_LOGIT_SCALE, rel=1e-5)


# -- SigLIP --------------------------------------------------------------------------------------
def test_siglip_hand_worked_3x3_and_bias_gradient():
    t, b = 2.0, -1.0
    want = 0.0
    for i in range(3):
        for j in range(3):
            z = 1.0 if i == j else -1.0
            logit = t * sum(x * y for x, y in zip(T3[i], A3[j])) + b
            want -= math.log(1.0 / (1.0 + math.exp(-z * logit)))
    want /= 3
    bias = torch.tensor(b, requires_grad=True)
    got = siglip_loss(torch.tensor(T3), torch.tensor(A3), 2.0, bias)
    assert float(got.detach()) == pytest.approx(want, rel=1e-6)
    got.backward()
    # Closed form of the bias gradient: -1/N sum z * sigmoid(-z * logit).
    g = 0.0
    for i in range(3):
        for j in range(3):
            z = 1.0 if i == j else -1.0
            logit = t * sum(x * y for x, y in zip(T3[i], A3[j])) + b
            g -= z / (1.0 + math.exp(z * logit))
    assert float(bias.grad) == pytest.approx(g / 3, rel=1e-5)


# -- label-aware ---------------------------------------------------------------------------------
def _numpy_supervised(t, a, labels, scale):
    c = scale * t @ a.T
    pos = np.array([[li == lj for lj in labels] for li in labels], dtype=float)
    tgt = pos / pos.sum(1, keepdims=True)
    def lsm(x, axis):
        m = x.max(axis=axis, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return 0.5 * (-(tgt * lsm(c, 1)).sum(1).mean() - (tgt * lsm(c, 0)).sum(0).mean())


def test_supervised_loss_matches_numpy_and_reduces_to_clip():
    t, a = _unit(7, 5, 8), _unit(7, 5, 9)
    labels = ["a cat", "a dog", "a cat", "tree", "a dog", "a cat", "sun"]
    got = supervised_clip_loss(t, a, labels, 10.0)
    assert float(got.detach()) == pytest.approx(_numpy_supervised(t.numpy(), a.numpy(), labels, 10.0), rel=1e-6)
    distinct = supervised_clip_loss(t, a, list(range(7)), 10.0)
    assert float(distinct) == pytest.approx(float(clip_loss(t, a, 10.0)), rel=1e-6)
    # Duplicates are not negatives: when the two texts of one caption sit on each other's image,
    # plain InfoNCE penalises it, the label-aware loss does not.
    img = _unit(3, 5, 12)
    txt = img[[1, 0, 2]].clone()  # texts 0 and 1 (same caption) swapped
    dup = ["a cat", "a cat", "sun"]
    assert float(supervised_clip_loss(txt, img, dup, 10.0)) < float(clip_loss(txt, img, 10.0)) - 1.0


def test_supervised_loss_multi_hot_spreads_each_column_over_its_own_positives():
    # Multi-hot "shares a label" is not transitive: row i and column j have different positive
    # sets, so each direction is written out here, one row / one column at a time.
    hot = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 1]])
    t, a = _unit(6, 5, 13), _unit(6, 5, 14)
    c = 10.0 * t.numpy().astype(float) @ a.numpy().astype(float).T
    share = [[bool((hot[i] & hot[j]).any()) for j in range(6)] for i in range(6)]
    l_text = l_image = 0.0
    for i in range(6):
        pos = [j for j in range(6) if share[i][j]]
        l_text -= sum(c[i, j] - math.log(sum(math.exp(c[i, k]) for k in range(6))) for j in pos) / len(pos)
    for j in range(6):
        pos = [i for i in range(6) if share[i][j]]
        l_image -= sum(c[i, j] - math.log(sum(math.exp(c[k, j]) for k in range(6))) for i in pos) / len(pos)
    expected = 0.5 * (l_text + l_image) / 6
    assert float(supervised_clip_loss(t, a, hot, 10.0)) == pytest.approx(expected, rel=1e-6)


def test_supervised_loss_with_all_captions_equal():
    n = 5
    t, a = _unit(n, 4, 10).requires_grad_(), _unit(n, 4, 11)
    loss = supervised_clip_loss(t, a, ["same"] * n, 10.0)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(_numpy_supervised(t.detach().numpy(), a.numpy(), ["same"] * n, 10.0), rel=1e-6)
    loss.backward()
    assert torch.isfinite(t.grad).all()
    # Identical embeddings: every similarity equal, the uniform target is met, loss = log N, no gradient.
    same = torch.ones(n, 4, requires_grad=True)
    loss = supervised_clip_loss(same, torch.ones(n, 4), ["same"] * n, 10.0)
    assert float(loss.detach()) == pytest.approx(math.log(n), rel=1e-6)
    loss.backward()
    assert float(same.grad.abs().max()) < 1e-6


def test_positive_mask_multi_hot_and_count_check():
    m = positive_mask(np.array([[1, 0], [1, 1], [0, 1]]), 3)
    assert m.tolist() == [[True, True, False], [True, True, True], [False, True, True]]
    with pytest.raises(InputError, match="3 labels"):
        positive_mask(["a", "b"], 3)


# -- three or more modalities --------------------------------------------------------------------
def test_multimodal_sum_over_pairs_with_missing_modalities():
    n = 6
    f = {"image": _unit(n, 4, 1).float(), "text": _unit(n, 4, 2).float(), "audio": _unit(n, 4, 3).float()}
    total, terms = multimodal_clip_loss(f, 10.0)
    want = (clip_loss(f["image"], f["text"], 10.0) + clip_loss(f["image"], f["audio"], 10.0)
            + clip_loss(f["text"], f["audio"], 10.0))
    assert float(total.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert set(terms) == {("image", "text"), ("image", "audio"), ("text", "audio")}
    has_audio = torch.tensor([True, False, True, True, False, False])
    total, terms = multimodal_clip_loss(f, 10.0, masks={"audio": has_audio})
    idx = has_audio.nonzero().squeeze(1)
    want = (clip_loss(f["image"], f["text"], 10.0) + clip_loss(f["image"][idx], f["audio"][idx], 10.0)
            + clip_loss(f["text"][idx], f["audio"][idx], 10.0))
    assert float(total.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    # A modality only one sample has adds no term.
    one = torch.zeros(n, dtype=torch.bool)
    one[0] = True
    total, terms = multimodal_clip_loss(f, 10.0, masks={"audio": one})
    assert set(terms) == {("image", "text")}
    with pytest.raises(InputError, match="at least 2 modalities"):
        multimodal_clip_loss({"image": f["image"]}, 10.0)


def test_fused_loss_has_the_second_derivatives_of_the_plain_loss():
    # a gradient penalty differentiates the backward: the fused backward used to treat its
    # stored dL/dC as a constant, so d||dL/dt||^2/dt came out None and d/da wrong, silently
    from jointspace.objectives._fused import fused_clip_loss

    t, a = _unit(5, 3, 21).requires_grad_(), _unit(5, 3, 22).requires_grad_()
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(fused_clip_loss, (t, a, s))
    penalties = []
    for fused in (True, False):
        (g,) = torch.autograd.grad(clip_loss(t, a, s, fused=fused), t, create_graph=True)
        penalties.append(torch.autograd.grad((g ** 2).sum(), (t, a, s)))
    for x, y in zip(*penalties):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_losses_under_autocast_are_computed_in_float32():
    # under bf16 autocast the logits' matmul (and info_nce on bf16 logits) ran in bf16: the
    # fused loss of these pairs read 6.0 for 6.4017
    from jointspace.objectives.contrastive import info_nce, soft_target_info_nce
    from jointspace.train.distributed import local_clip_loss

    t = _unit(64, 8, 31).bfloat16()
    a = F.normalize(t.double() + _unit(64, 8, 32), dim=1).bfloat16()
    tn, an = t.double().numpy(), a.double().numpy()       # bf16 values are exact in float64
    eye = np.eye(64)
    labels = [i // 2 for i in range(64)]
    pos = (np.array(labels)[:, None] == np.array(labels)[None, :]).astype(float)
    z = 100.0 * (tn @ an.T) - 10.0
    logits = (100.0 * (t.double() @ a.double().T)).bfloat16()
    ln = logits.double().numpy()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = {"fused": clip_loss(t, a, 100.0), "plain": clip_loss(t, a, 100.0, fused=False),
               "supervised": supervised_clip_loss(t, a, labels, 100.0), "siglip": siglip_loss(t, a, 100.0, -10.0),
               "info_nce": info_nce(logits), "soft": soft_target_info_nce(logits, torch.eye(64, dtype=torch.bool)),
               "local": 0.5 * (local_clip_loss(t[:32], a[:32], t, a, 0, torch.tensor(100.0))
                               + local_clip_loss(t[32:], a[32:], t, a, 32, torch.tensor(100.0)))}
    want = {"fused": _np_soft_clip(tn, an, 100.0, eye), "plain": _np_soft_clip(tn, an, 100.0, eye),
            "supervised": _np_soft_clip(tn, an, 100.0, pos),
            "siglip": np.logaddexp(0, -(2 * eye - 1) * z).sum() / 64,
            "info_nce": _np_soft_clip(ln, np.eye(64), 1.0, eye), "soft": _np_soft_clip(ln, np.eye(64), 1.0, eye),
            "local": _np_soft_clip(tn, an, 100.0, eye)}
    for k, v in got.items():
        assert v.dtype == torch.float32, k
        assert float(v) == pytest.approx(want[k], rel=1e-5, abs=1e-5), k
