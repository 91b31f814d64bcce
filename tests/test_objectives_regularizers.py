"""The named part regularisers, the adversary, and their bad input."""

import itertools

import numpy as np
import pytest
import torch

from jointspace.errors import InputError
from jointspace.objectives.disentangle import CrossPredictor
from jointspace.objectives.orthogonality import LagrangeMultiplier
from jointspace.objectives.regularizers import (REGULARIZERS, PartRegularizer, debiased_cross, normalized_frobenius,
                                                normalized_hsic, normalized_weight_cross, parse_regularizer,
                                                parse_regularizers)
from jointspace.eval.redundancy import debiased_linear_cka, hsic_score, normalized_cross_frobenius

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(n=40, d1=5, d2=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d1, generator=g, dtype=dtype), torch.randn(n, d2, generator=g, dtype=dtype)


def _np_hsic_u(k, l):
    """Song et al. (2012)'s unbiased HSIC of two (n, n) Gram matrices, written out in NumPy."""
    n = len(k)
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


# -- names and the CLI form ---------------------------------------------------------------------------------
def test_parse_regularizer():
    assert parse_regularizer("frobenius:0.1") == ("frobenius", 0.1)
    assert parse_regularizer("lagrange") == ("lagrange", REGULARIZERS["lagrange"])
    assert parse_regularizer(" Abs_Dot:2 ") == ("abs_dot", 2.0)
    assert parse_regularizer(("hsic", 3)) == ("hsic", 3.0)
    assert set(REGULARIZERS) == {"abs_dot", "frobenius", "weight", "lagrange", "auglag", "hsic", "club",
                                 "adversarial"}
    with pytest.raises(InputError, match="unknown name 'ortho'; known: abs_dot, adversarial"):
        parse_regularizer("ortho:0.1")
    with pytest.raises(InputError, match="number"):
        parse_regularizer("frobenius:x")
    with pytest.raises(InputError, match=">= 0"):
        parse_regularizer("frobenius:-1")
    with pytest.raises(InputError, match="ascent rate"):
        parse_regularizer("lagrange:0")


def test_parse_regularizers_lists():
    assert parse_regularizers(None) == []
    assert parse_regularizers("hsic:2") == [("hsic", 2.0)]
    assert parse_regularizers(("club", 0.5)) == [("club", 0.5)]
    assert parse_regularizers(["frobenius:0.1", "lagrange"]) == [("frobenius", 0.1), ("lagrange", 0.1)]
    with pytest.raises(InputError, match="given 2 times"):
        parse_regularizers(["hsic", "hsic:2"])
    with pytest.raises(InputError, match="give one"):
        parse_regularizers(["lagrange", "auglag"])
    with pytest.raises(InputError, match="list"):
        parse_regularizers(3)


# -- each term against an independent computation -----------------------------------------------------------
def test_normalized_frobenius_is_the_squared_redundancy_score():
    a, b = _pair()
    b = b + 0.5 * a[:, :4]
    value = float(normalized_frobenius(a, b))
    assert value == pytest.approx(normalized_cross_frobenius(a.numpy(), b.numpy()) ** 2, rel=1e-10)
    # hand-worked: identical centred columns give 1, orthogonal ones 0
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    assert float(normalized_frobenius(x, x)) == pytest.approx(1.0)
    assert float(normalized_frobenius(x[:, :1], x[:, 1:])) == pytest.approx(0.0, abs=1e-15)


def test_debiased_cross_matches_the_numpy_debiased_cka():
    a, b = _pair(n=50)
    b = b + 0.4 * a[:, :4]
    assert float(debiased_cross(a, b)) == pytest.approx(debiased_linear_cka(a.numpy(), b.numpy()), rel=1e-8)
    # independent parts: near 0 where the plain (biased) term sits near sqrt(d1 d2) / n
    x, y = _pair(n=256, d1=8, d2=8, seed=4)
    assert abs(float(debiased_cross(x, y))) < 0.02 < float(normalized_frobenius(x, y))
    with pytest.raises(InputError, match="at least 4 rows"):
        debiased_cross(x[:3], y[:3])


def test_scale_free_terms_at_any_units_in_float32():
    """Linear CKA and its debiased form written out in NumPy (Kornblith et al. 2019; Song et al.
    2012's U-statistic) on float64 parts; the terms of the same parts times 1e20 or 1e-20 in
    float32 give them (1e20 gave nan, 1e-20 rounded away; the debiased term keeps its floor
    in the parts' own units, below which parts of 1e-20 lie)."""
    a, b = _pair(n=12, d1=3, d2=2, seed=7)
    b = b + 2.0 * a[:, :2]
    ac, bc = (z.numpy() - z.numpy().mean(0) for z in (a, b))
    cka = np.sum((ac.T @ bc) ** 2) / (np.linalg.norm(ac.T @ ac) * np.linalg.norm(bc.T @ bc))

    ka, kb = ac @ ac.T, bc @ bc.T
    debiased = _np_hsic_u(ka, kb) / np.sqrt(_np_hsic_u(ka, ka) * _np_hsic_u(kb, kb))
    assert 0.3 < debiased < 1 and 0.3 < cka < 1
    for c in (1e20, 1e-20):
        x, y = (c * a).float(), (c * b).float()
        assert float(normalized_frobenius(x, y)) == pytest.approx(cka, rel=1e-4)
        if c > 1:
            assert float(debiased_cross(x, y)) == pytest.approx(debiased, rel=1e-3)


def test_debiased_cross_of_float32_and_float64_is_computed_in_float64():
    """The debiased CKA of the float32 part's values read as float64, from Song et al.'s U-statistic
    written out in NumPy, to float64 precision in either order (z1's dtype, float32, was used)."""
    a, b = _pair(n=10, d1=3, d2=2, seed=8)
    b = b + a[:, :2]
    a = a.float()
    ac, bc = a.double().numpy() - a.double().numpy().mean(0), b.numpy() - b.numpy().mean(0)

    ka, kb = ac @ ac.T, bc @ bc.T
    want = _np_hsic_u(ka, kb) / np.sqrt(_np_hsic_u(ka, ka) * _np_hsic_u(kb, kb))
    for got in (debiased_cross(a, b), debiased_cross(b, a)):
        assert got.dtype == torch.float64
        assert float(got) == pytest.approx(want, rel=1e-10)


def test_debiased_cross_in_float32_on_parts_bunched_in_one_direction():
    """Unit rows close to one direction (as normalised parts often are) give Gram matrices whose
    entries share a large common offset; read from the raw rows, float32 rounding swamped the
    estimate (0.041 for a true 0.044 at spread 0.03; 0.12 for 0.012 at 0.01, where the
    denominator's floor now holds it down instead).  It matches the float64 figure, which a shift
    of either part does not change."""
    g = torch.Generator().manual_seed(0)
    for spread in (0.02, 0.03, 0.1, 0.3):
        noise = torch.randn(256, 16, generator=g, dtype=torch.float64)
        mean1 = torch.nn.functional.normalize(torch.randn(1, 16, generator=g, dtype=torch.float64), dim=1)
        mean2 = torch.nn.functional.normalize(torch.randn(1, 8, generator=g, dtype=torch.float64), dim=1)
        z1 = torch.nn.functional.normalize(mean1 + spread * noise, dim=1)
        z2 = torch.nn.functional.normalize(
            mean2 + spread * (0.3 * noise[:, :8] + torch.randn(256, 8, generator=g, dtype=torch.float64)), dim=1)
        want = debiased_linear_cka(z1.numpy(), z2.numpy())
        assert want > 0.005
        assert float(debiased_cross(z1.float(), z2.float())) == pytest.approx(want, abs=5e-4)
        assert float(debiased_cross(z1 + 5.0, z2 - 3.0)) == pytest.approx(want, rel=1e-8)


def test_normalized_frobenius_reports_where_a_nan_is():
    a, b = _pair(n=6)
    a[2, 1] = float("nan")
    with pytest.raises(InputError, match=r"z1: expected finite features, got NaN or Inf \(first at row 2, column 1\)"):
        normalized_frobenius(a, b)


def test_debiased_cross_bad_input():
    a, b = _pair(n=8)
    with pytest.raises(InputError, match="z2: expected as many rows"):
        debiased_cross(a, b[:6])
    with pytest.raises(InputError, match="z1"):
        debiased_cross(a.clone().fill_(float("nan")), b)
    with pytest.raises(InputError, match="z2"):
        debiased_cross(a, b.numpy())


def test_debiased_cross_stays_bounded_when_a_part_collapses():
    """A part whose rows are all but identical (as under a strong multiplier) has a float32
    unbiased self-HSIC that rounds to ~0 or below; the constraint used to reach ~1e31 here, with
    gradients ~1e32.  It stays in [-1, 1] with a bounded gradient."""
    from jointspace.objectives.regularizers import SCALE_FLOOR

    torch.manual_seed(0)
    healthy = torch.nn.functional.normalize(torch.randn(256, 16), dim=1)
    base = torch.nn.functional.normalize(torch.randn(1, 64), dim=1)
    collapsed = torch.nn.functional.normalize(base + 3e-3 * torch.randn(256, 64), dim=1).requires_grad_()
    value = debiased_cross(healthy, collapsed)
    assert -1.0 <= float(value.detach()) <= 1.0
    value.backward()
    assert torch.isfinite(collapsed.grad).all() and float(collapsed.grad.abs().max()) < 1e4
    # a constant part is independent of anything: ~0 (float32 rounding over the floor)
    assert SCALE_FLOOR == 1e-6
    assert abs(float(debiased_cross(healthy, torch.zeros(256, 64) + base))) < 1e-3


def test_normalized_hsic_matches_the_numpy_score():
    a, b = _pair(n=30)
    b = torch.tanh(a[:, :4]) + 0.3 * b
    assert float(normalized_hsic(a, b)) == pytest.approx(hsic_score(a.numpy(), b.numpy(), normalized=True),
                                                         rel=1e-8)


def test_normalized_weight_cross_by_hand():
    ws = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    wp = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    assert float(normalized_weight_cross(ws, wp)) == 0.0
    wp2 = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    # (Ws Wp^T)^2 = 1; ||Ws Ws^T|| = 1, ||Wp Wp^T|| = 2
    assert float(normalized_weight_cross(ws, wp2)) == pytest.approx(0.5)
    with pytest.raises(InputError, match=r"w_shared, w_private: expected output weights \(d, k\) and \(p, k\) "
                                         r"reading the same k inputs, got shapes \(1, 3\) and \(2, 4\)"):
        normalized_weight_cross(ws, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(InputError, match=r"^w_shared: expected a 2-D weight matrix \(out_features, in_features\), "
                                         r"got shape \(3,\)"):
        normalized_weight_cross(ws[0], wp)
    with pytest.raises(InputError, match="^w_private: expected a torch.Tensor weight matrix .* got list"):
        normalized_weight_cross(ws, [[0.0, 2.0, 0.0]])


def test_gradients_of_the_normalised_terms():
    """The gradient is that of the chapter's penalty over a normaliser frozen at the inputs:
    gradcheck that frozen-normaliser function, then compare autograd of the term to it."""
    from jointspace.objectives.orthogonality import frobenius_cross_penalty, weight_cross_penalty

    a, b = _pair(n=12, d1=3, d2=2)
    ac, bc = a - a.mean(0), b - b.mean(0)
    scale = float(torch.linalg.matrix_norm(ac.T @ ac) * torch.linalg.matrix_norm(bc.T @ bc)) / 12 ** 2

    def frozen(x, y):
        return frobenius_cross_penalty(x - x.mean(0), y - y.mean(0), 1.0, normalize=True) / scale

    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(frozen, (x, y))
    got = torch.autograd.grad(normalized_frobenius(x, y), (x, y))
    want = torch.autograd.grad(frozen(x, y), (x, y))
    for g1, g2 in zip(got, want):
        torch.testing.assert_close(g1, g2)

    ws, wp = _pair(n=3, d1=4, d2=4, seed=1)
    wp = wp[:2]
    wscale = float(torch.linalg.matrix_norm(ws @ ws.T) * torch.linalg.matrix_norm(wp @ wp.T))

    def wfrozen(u, v):
        return weight_cross_penalty(u.T, v.T, 1.0) / wscale

    u, v = ws.clone().requires_grad_(True), wp.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(wfrozen, (u, v))
    for g1, g2 in zip(torch.autograd.grad(normalized_weight_cross(u, v), (u, v)),
                      torch.autograd.grad(wfrozen(u, v), (u, v))):
        torch.testing.assert_close(g1, g2)


def test_cross_predictor_r2_matches_least_squares():
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    a, b = _pair(n=60, d1=3, d2=2)
    b = a[:, :2] @ torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=torch.float64) + 0.5 * b
    adv = CrossPredictor(3, 2, hidden=0).double()
    ols = LinearRegression().fit(a.numpy(), b.numpy())
    with torch.no_grad():
        adv.net.weight.copy_(torch.from_numpy(ols.coef_))
        adv.net.bias.copy_(torch.from_numpy(ols.intercept_))
    expected = r2_score(b.numpy(), ols.predict(a.numpy()), multioutput="variance_weighted")
    assert float(adv.explained(a, b)) == pytest.approx(expected, rel=1e-10)
    # the penalty's gradient reaches the codes, never the predictor
    x, y = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    adv(x, y).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in adv.parameters())
    # the learning loss moves only the predictor
    adv.learning_loss(a, b).backward()
    assert all(p.grad is not None for p in adv.parameters())


def test_cross_predictor_r2_of_a_code_that_does_not_vary():
    """scikit-learn's convention for a constant target: 1 for an exact prediction, else 0
    (it read about -1e300 before)."""
    from sklearn.metrics import r2_score

    a, _ = _pair(n=20, d1=3, d2=2, seed=4)
    adv = CrossPredictor(3, 2, hidden=0).double()
    const = torch.full((20, 2), 0.7, dtype=torch.float64)
    with torch.no_grad():
        pred = adv.net(a)
    half = torch.full((20, 2), 0.5, dtype=torch.float64)   # its mean is exact, as scikit-learn needs
    want = r2_score(half.numpy(), pred.numpy(), multioutput="variance_weighted")
    assert float(adv.explained(a, half)) == want == 0.0
    assert float(adv.explained(a, const)) == 0.0            # 0.7's mean is off by its rounding
    with torch.no_grad():
        adv.net.weight.zero_()
        adv.net.bias.fill_(0.7)
    assert float(adv.explained(a, const)) == 1.0 == r2_score(const.numpy(), const.numpy(),
                                                                 multioutput="variance_weighted")


def test_cross_predictor_gradcheck():
    a, b = _pair(n=10, d1=3, d2=2, seed=2)
    adv = CrossPredictor(3, 2, hidden=5).double()
    assert torch.autograd.gradcheck(adv.explained, (a.requires_grad_(True), b.requires_grad_(True)))


def test_cross_predictor_bad_input():
    with pytest.raises(InputError, match="hidden"):
        CrossPredictor(3, 2, hidden=-1)
    adv = CrossPredictor(3, 2)
    with pytest.raises(InputError, match=r"x: expected shape \(n, 3\)"):
        adv(torch.zeros(5, 4), torch.zeros(5, 2))
    with pytest.raises(InputError, match="rows"):
        adv(torch.zeros(5, 3), torch.zeros(6, 2))


def test_explicit_lagrange_multiplier_ascends_by_the_constraint():
    lag = LagrangeMultiplier(0.0, ascent_rate=0.5, explicit=True, nonnegative=True)
    c = torch.tensor(0.4, requires_grad=True)
    term = lag(c)
    assert float(term.detach()) == 0.0  # the current mu (0) times c
    assert lag.mu == pytest.approx(0.2)  # then mu <- mu + 0.5 * 0.4
    term.backward()
    assert float(c.grad) == 0.0        # d(mu c)/dc with the mu used, 0
    assert lag(torch.tensor(0.4)).item() == pytest.approx(0.08)
    lag(torch.tensor(-10.0))
    assert lag.mu == 0.0               # projected onto mu >= 0
    lag.eval()
    lag(torch.tensor(1.0))
    assert lag.mu == 0.0               # no step outside training


# -- the set applied to parts ---------------------------------------------------------------------------------
def _parts(mods=("audio", "text"), n=16, d=4, p=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    norm = torch.nn.functional.normalize
    shared = {m: norm(torch.randn(n, d, generator=g), dim=1) for m in mods}
    private = {m: norm(torch.randn(n, p, generator=g), dim=1) for m in mods}
    return shared, private


def test_part_regularizer_averages_every_pair():
    shared, private = _parts(("a", "b", "c"))
    reg = PartRegularizer([("frobenius", 2.0)], ["a", "b", "c"], 4, 4)
    term, logs = reg(shared, private)
    pairs = [(private[x], private[y]) for x, y in itertools.combinations("abc", 2)] + \
            [(shared[m], private[m]) for m in "abc"]
    expected = np.mean([normalized_cross_frobenius(x.numpy(), y.numpy()) ** 2 for x, y in pairs])
    assert logs["reg/frobenius"] == pytest.approx(expected, rel=1e-5)
    assert float(term) == pytest.approx(2 * expected, rel=1e-5)


def test_part_regularizer_every_name_runs_and_logs():
    shared, private = _parts()
    weights = {m: (torch.randn(4, 6), torch.randn(4, 6)) for m in shared}
    specs = [(n, v) for n, v in REGULARIZERS.items() if n != "auglag"]
    reg = PartRegularizer(specs, list(shared), 4, 4)
    term, logs = reg(shared, private, weights)
    assert torch.isfinite(term)
    assert {f"reg/{n}" for n, _ in specs} <= set(logs)
    assert logs["constraint"] == logs["reg/lagrange"] and "mu" in logs


def test_part_regularizer_leaves_out_the_estimates_a_small_batch_cannot_give():
    """An epoch's last rows or a small validation set: 3 rows are too few for the debiased
    constraint (4) but not for frobenius; 1 row too few for hsic, club and the adversary."""
    specs = [("frobenius", 2.0), ("lagrange", 1.0), ("hsic", 1.0), ("club", 1.0), ("adversarial", 1.0)]
    reg = PartRegularizer(specs, ["a", "b"], 4, 4)
    shared, private = _parts(("a", "b"), n=3, seed=1)
    term, logs = reg(shared, private)
    assert set(logs) == {"reg/frobenius", "reg/hsic", "reg/club", "reg/adversarial"}
    assert [lm.mu for lm in reg.multipliers] == [0.0, 0.0, 0.0]   # no step on a constraint not read
    shared, private = _parts(("a", "b"), n=1, seed=1)
    term, logs = reg(shared, private)
    assert set(logs) == {"reg/frobenius"} and float(term) == pytest.approx(2 * logs["reg/frobenius"])


@pytest.mark.parametrize("name, rho", [("lagrange", 0.0), ("auglag", 1.0)])
def test_lagrangian_has_one_multiplier_per_pair(name, rho):
    """mu_k ascends on its own pair's constraint c_k; the term is (1/K) sum_k (mu_k c_k + rho/2 c_k^2),
    so a pair below zero does not pay for another above it."""
    shared, private = _parts(("a", "b"), n=24, seed=3)
    private["b"] = torch.nn.functional.normalize(private["a"] + 0.3 * private["b"], dim=1)   # c > 0 between a, b
    reg = PartRegularizer([(name, 0.5)], ["a", "b"], 4, 4)
    pairs = [(private["a"], private["b"]), (shared["a"], private["a"]), (shared["b"], private["b"])]
    c = np.array([float(debiased_cross(x, y)) for x, y in pairs])
    assert c[0] > 0.3 and c[1:].min() < 0   # one pair violated, another below zero
    term, logs = reg(shared, private)
    assert float(term) == pytest.approx(np.mean(0.5 * rho * c ** 2), abs=1e-6)   # every mu_k starts at 0
    mu = np.maximum(0.0, 0.5 * c)
    assert [lm.mu for lm in reg.multipliers] == pytest.approx(mu.tolist(), abs=1e-6)
    assert logs["mu"] == pytest.approx(0.0) and logs["constraint"] == pytest.approx(c.mean(), abs=1e-6)
    term, logs = reg(shared, private)
    assert float(term) == pytest.approx(np.mean(mu * c + 0.5 * rho * c ** 2), abs=1e-6)
    assert logs["mu"] == pytest.approx(mu.mean(), abs=1e-6)


def test_lagrangian_loads_a_state_with_one_multiplier():
    """A model saved when every pair shared one multiplier: each pair starts from its value."""
    reg = PartRegularizer([("lagrange", 1.0)], ["a", "b"], 4, 4)
    reg.load_state_dict({"multiplier.mu_param": torch.tensor(0.7)})
    assert [lm.mu for lm in reg.multipliers] == pytest.approx([0.7] * 3)
    outer = torch.nn.Module()
    outer.regularizer = PartRegularizer([("auglag", 1.0)], ["a", "b", "c"], 4, 4)
    outer.load_state_dict({"regularizer.multiplier.mu_param": torch.tensor(0.25)})
    assert [lm.mu for lm in outer.regularizer.multipliers] == pytest.approx([0.25] * 6)


def test_part_regularizer_bad_sizes_name_the_parameter():
    with pytest.raises(InputError, match="abs_dot.*private_dim equal to dim \\(8\\); got private_dim=4"):
        PartRegularizer([("abs_dot", 1.0)], ["a", "b"], 8, 4)


@pytest.mark.parametrize("name", ["club", "adversarial"])
def test_critic_penalties_move_the_encoders_and_their_fits_move_the_critics(name):
    """The critic's parameters get gradient only from its own fitting loss, never from the
    penalty the encoders minimise."""
    shared, private = _parts(n=32)
    private["text"] = torch.nn.functional.normalize(private["audio"] @ torch.randn(4, 4) + 0.1 * private["text"])
    private = {m: v.clone().requires_grad_(True) for m, v in private.items()}
    reg = PartRegularizer([(name, 1.0)], list(shared), 4, 4)
    critic = reg.critics[reg._key(name, "private", "audio", "text")]
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(200):   # a fitted critic finds the dependence (an untrained predictor's R^2 is < 0)
        opt.zero_grad()
        critic.learning_loss(private["audio"].detach(), private["text"].detach()).backward()
        opt.step()
    opt.zero_grad()
    fit = critic.learning_loss(private["audio"].detach(), private["text"].detach())
    want = torch.autograd.grad(fit, list(critic.parameters()))
    term, _ = reg(shared, private)
    term.backward()
    for p, g in zip(critic.parameters(), want):
        torch.testing.assert_close(p.grad, g)   # only the fitting loss's gradient
    assert float(private["audio"].grad.abs().sum()) > 0


def _club_by_hand(critic, x, y):
    """CLUB (Cheng et al. 2020) and the NLL of q(y|x), from the critic's mean and log-variance
    networks, in NumPy: mean_i [log q(y_i|x_i) - mean_j log q(y_j|x_i)] and -mean_i log q(y_i|x_i)."""
    with torch.no_grad():
        mu, logvar = (t.double().numpy() for t in critic._params(x))
    y = y.double().numpy()
    logq = -0.5 * (((y[None, :, :] - mu[:, None, :]) ** 2 / np.exp(logvar)[:, None, :])
                   + logvar[:, None, :] + np.log(2 * np.pi)).sum(-1)        # (i, j): log q(y_j | x_i)
    return float(np.mean(np.diag(logq) - logq.mean(axis=1))), float(-np.mean(np.diag(logq)))


def test_critic_fits_count_in_training_mode_only():
    """In evaluation mode (the validation loss that picks a VAE's best epoch) the term is
    lambda x the mean CLUB of the pairs; the critics' fitting losses join it only in training."""
    shared, private = _parts(("a", "b"), n=12, seed=4)
    reg = PartRegularizer([("club", 0.5)], ["a", "b"], 4, 4)
    pairs = {("private", "a", "b"): (private["a"], private["b"]), ("own", "a", "a"): (shared["a"], private["a"]),
             ("own", "b", "b"): (shared["b"], private["b"])}
    by_hand = {k: _club_by_hand(reg.critics[reg._key("club", *k)], *z) for k, z in pairs.items()}
    club = np.mean([v[0] for v in by_hand.values()])
    reg.eval()
    term, logs = reg(shared, private)
    assert logs["reg/club"] == pytest.approx(club, abs=1e-5)
    assert float(term) == pytest.approx(0.5 * club, abs=1e-5)
    reg.train()
    term, _ = reg(shared, private)
    assert float(term.detach()) == pytest.approx(0.5 * club + sum(v[1] for v in by_hand.values()), abs=1e-4)
