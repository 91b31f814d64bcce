"""HSIC and CLUB pinned against independent computations: loop-based U/V-statistics,
closed forms for correlated Gaussians, and the behaviour under (in)dependence."""

import itertools
import math

import numpy as np
import pytest
import torch

from jointspace.errors import InputError
from jointspace.objectives.mutual_info import CLUB, hsic, median_bandwidth


pytestmark = pytest.mark.usefixtures("one_thread")


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _np_kernel(z, sigma):
    n = len(z)
    return np.array([[math.exp(-sum((z[i] - z[j]) ** 2) / (2 * sigma ** 2)) for j in range(n)] for i in range(n)])


def _np_hsic_biased(k, l):
    """The V-statistic written out as sums, scaled from 1/n^2 to the 1/(n-1)^2 convention."""
    n = len(k)
    t1 = sum(k[i, j] * l[i, j] for i in range(n) for j in range(n)) / n ** 2
    t2 = k.sum() * l.sum() / n ** 4
    t3 = sum(k[i, j] * l[i, q] for i in range(n) for j in range(n) for q in range(n)) / n ** 3
    return (t1 + t2 - 2 * t3) * n ** 2 / (n - 1) ** 2


def _np_hsic_unbiased(k, l):
    """The U-statistic over distinct index tuples (no closed form involved)."""
    n = len(k)
    pairs = list(itertools.permutations(range(n), 2))
    t1 = sum(k[i, j] * l[i, j] for i, j in pairs) / len(pairs)
    triples = list(itertools.permutations(range(n), 3))
    t3 = sum(k[i, j] * l[i, q] for i, j, q in triples) / len(triples)
    quads = list(itertools.permutations(range(n), 4))
    t2 = sum(k[i, j] * l[q, r] for i, j, q, r in quads) / len(quads)
    return t1 + t2 - 2 * t3


def test_hsic_matches_loop_implementations():
    x, y = _rand(7, 2, seed=1), _rand(7, 3, seed=2)
    y = y + 0.8 * x[:, :1]  # some dependence
    k, l = _np_kernel(x.numpy(), 1.3), _np_kernel(y.numpy(), 0.7)
    assert float(hsic(x, y, 1.3, 0.7)) == pytest.approx(_np_hsic_biased(k, l), rel=1e-10)
    assert float(hsic(x, y, 1.3, 0.7, unbiased=True)) == pytest.approx(_np_hsic_unbiased(k, l), rel=1e-10)


def test_hsic_in_float32_does_not_depend_on_where_the_rows_lie():
    # a shift changes no distance; far from the origin float32 used to lose the estimate
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = x[:, :4] ** 2 + 0.1 * torch.randn(64, 4)
    for unbiased in (False, True):
        exact = float(hsic(x.double(), y.double(), unbiased=unbiased))
        shifted = float(hsic(x + 3000.0, y - 500.0, unbiased=unbiased))
        assert shifted == pytest.approx(exact, rel=1e-3, abs=1e-6)
    assert median_bandwidth(x + 3000.0) == pytest.approx(median_bandwidth(x.double()), rel=1e-4)


def test_hsic_in_float32_does_not_depend_on_the_units_of_the_features():
    """The median-bandwidth kernel is free of units: features of 1e20 or 1e-25 in float32 give
    the HSIC of the loop implementation on the unscaled float64 rows (they gave nan and 0)."""
    x, y = _rand(7, 2, seed=5), _rand(7, 3, seed=6)
    y = y + 0.8 * x[:, :1]
    sx, sy = (math.sqrt(np.median([float(((z[i] - z[j]) ** 2).sum()) for i in range(7) for j in range(i + 1, 7)]))
              for z in (x, y))
    k, l = _np_kernel(x.numpy(), sx), _np_kernel(y.numpy(), sy)
    for c in (1e20, 1e-25):
        x32, y32 = (c * x).float(), (c * y).float()
        assert float(hsic(x32, y32)) == pytest.approx(_np_hsic_biased(k, l), rel=1e-4)
        assert float(hsic(x32, y32, unbiased=True)) == pytest.approx(_np_hsic_unbiased(k, l), rel=1e-3)
        assert median_bandwidth(x32) == pytest.approx(c * sx, rel=1e-5)
        assert float(hsic(x32, y32, c * sx, c * sy)) == pytest.approx(_np_hsic_biased(k, l), rel=1e-4)
    assert float(hsic(torch.zeros(5, 0), y[:5].float())) == 0.0   # no features: a constant kernel


def test_hsic_of_float32_and_float64_is_computed_in_float64():
    """x in float32, y in float64: the HSIC of the loop implementation on x's float32 values read
    as float64, to float64 precision, in either order (x's dtype, float32, was used)."""
    x, y = _rand(7, 2, seed=8).float(), _rand(7, 3, seed=9)
    k, l = _np_kernel(x.double().numpy(), 0.9), _np_kernel(y.numpy(), 1.4)
    for unbiased, want in ((False, _np_hsic_biased(k, l)), (True, _np_hsic_unbiased(k, l))):
        for got in (hsic(x, y, 0.9, 1.4, unbiased=unbiased), hsic(y, x, 1.4, 0.9, unbiased=unbiased)):
            assert got.dtype == torch.float64
            assert float(got) == pytest.approx(want, rel=1e-10)


def test_median_bandwidth_matches_numpy():
    x = _rand(7, 3, seed=3)  # 21 pairs: the lower median is the median
    d2 = [float(((x[i] - x[j]) ** 2).sum()) for i in range(7) for j in range(i + 1, 7)]
    assert median_bandwidth(x) == pytest.approx(math.sqrt(np.median(d2)), rel=1e-12)
    s = median_bandwidth(x)
    y = _rand(7, 1, seed=4)
    assert float(hsic(x, y)) == pytest.approx(float(hsic(x, y, s, median_bandwidth(y))), rel=1e-12)
    assert median_bandwidth(torch.ones(5, 2)) == 1.0  # all rows equal: falls back to 1


def test_hsic_near_zero_when_independent_and_positive_when_dependent():
    n = 500
    x, y = _rand(n, 2, seed=5), _rand(n, 2, seed=6)
    dep = x ** 2 + 0.3 * _rand(n, 2, seed=7)  # non-linear: uncorrelated with x, yet dependent
    assert abs(float((x[:, 0] * dep[:, 0]).mean())) < 0.2
    h_ind, h_dep = float(hsic(x, y)), float(hsic(x, dep))
    assert 0 <= h_ind < 2e-3
    assert h_dep > 10 * h_ind and h_dep > 5e-3
    assert abs(float(hsic(x, y, unbiased=True))) < 1e-3
    assert float(hsic(x, dep, unbiased=True)) > 5e-3


def test_unbiased_hsic_has_zero_mean_under_independence():
    g = torch.Generator().manual_seed(8)
    u, b = [], []
    for _ in range(200):
        x = torch.randn(16, 2, generator=g, dtype=torch.float64)
        y = torch.randn(16, 2, generator=g, dtype=torch.float64)
        u.append(float(hsic(x, y, 1.0, 1.0, unbiased=True)))
        b.append(float(hsic(x, y, 1.0, 1.0)))
    u, b = np.array(u), np.array(b)
    se = u.std() / math.sqrt(len(u))
    assert abs(u.mean()) < 3 * se
    assert b.mean() > 10 * se  # the biased estimator's positive bias, for contrast
    assert (u < 0).any()


def test_hsic_gradcheck():
    x = _rand(6, 2, seed=9).requires_grad_()
    y = _rand(6, 3, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: hsic(a, b, 1.1, 0.9), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: hsic(a, b, 1.1, 0.9, unbiased=True), (x, y))


def test_hsic_bad_input():
    with pytest.raises(InputError, match=r"y: expected as many rows.*\(5, 2\).*\(4, 2\)"):
        hsic(_rand(5, 2), _rand(4, 2))
    with pytest.raises(InputError, match=r"x: expected a 2-D"):
        hsic(_rand(5), _rand(5, 1))
    with pytest.raises(InputError, match="sigma_x"):
        hsic(_rand(5, 2), _rand(5, 2), sigma_x=-1.0)
    with pytest.raises(InputError, match="at least 4 rows"):
        hsic(_rand(3, 2), _rand(3, 2), unbiased=True)
    with pytest.raises(InputError, match="^x: expected at least 2 rows, got 1$"):   # not a contrastive loss's message
        hsic(_rand(1, 2), _rand(1, 2))
    with pytest.raises(InputError, match="^unbiased: expected True or False, got 'no'"):   # not read as True
        hsic(_rand(5, 2), _rand(5, 2), unbiased="no")


# -- CLUB ---------------------------------------------------------------------------------------------
def _gaussians(n, d, rho, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, d, generator=g)
    return x, y


def _fit(club, x, y, steps=400):
    opt = torch.optim.Adam(club.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        club.learning_loss(x, y).backward()
        opt.step()
    return club


@pytest.mark.parametrize("sampled", [False, True])
def test_club_upper_bounds_gaussian_mutual_information(sampled):
    torch.manual_seed(0)
    rho, d = 0.5, 2
    x, y = _gaussians(2000, d, rho, seed=11)
    club = _fit(CLUB(d, d, hidden=16, sampled=sampled), x, y, steps=250)
    xt, yt = _gaussians(2000, d, rho, seed=12)  # held out
    with torch.no_grad():
        est = float(club(xt, yt))
        nll = float(club.learning_loss(xt, yt))
    true_mi = -0.5 * d * math.log(1 - rho ** 2)  # 0.288 nats
    # CLUB with the exact conditional is rho^2 / (1 - rho^2) per dimension (0.667): an upper bound,
    # not the MI itself; the fitted q must reach it and stay above the truth.
    club_exact = d * rho ** 2 / (1 - rho ** 2)
    assert est >= true_mi
    assert est == pytest.approx(club_exact, rel=0.2)
    # q fitted: its NLL is close to the true conditional entropy
    assert nll == pytest.approx(0.5 * d * math.log(2 * math.pi * math.e * (1 - rho ** 2)), abs=0.05)


def test_club_near_zero_for_independent_and_differentiable():
    torch.manual_seed(1)
    x, y = _gaussians(2000, 2, 0.0, seed=13)
    club = _fit(CLUB(2, 2, hidden=16), x, y, steps=200)
    xt, yt = _gaussians(2000, 2, 0.0, seed=14)
    xt.requires_grad_()
    est = club(xt, yt)
    assert abs(float(est.detach())) < 0.05
    est.backward()
    assert xt.grad is not None and torch.isfinite(xt.grad).all()


def test_club_all_pairs_equals_explicit_double_sum():
    torch.manual_seed(2)
    club = CLUB(3, 2, hidden=8).double()
    x, y = _rand(9, 3, seed=15), _rand(9, 2, seed=16)
    with torch.no_grad():
        mu, logvar = club._params(x)

    def logq(i, j):  # log q(y_j | x_i), constants included: they cancel
        v = logvar[i].exp()
        return float((-0.5 * ((y[j] - mu[i]) ** 2 / v + logvar[i] + math.log(2 * math.pi))).sum())

    want = sum(logq(i, i) for i in range(9)) / 9 - sum(logq(i, j) for i in range(9) for j in range(9)) / 81
    assert float(club(x, y).detach()) == pytest.approx(want, rel=1e-10)
    assert float(club.learning_loss(x, y).detach()) == pytest.approx(-sum(logq(i, i) for i in range(9)) / 9, rel=1e-10)


def test_club_all_pairs_term_in_float32_far_from_the_origin():
    torch.manual_seed(3)
    club = CLUB(3, 2, hidden=8)
    x, y = torch.randn(32, 3), 0.3 * torch.randn(32, 2)
    with torch.no_grad():
        club.mean_net[-1].bias += 1000.0   # q sits where y is: both far from the origin
    y = y + 1000.0
    with torch.no_grad():
        want = float(club.double()(x.double(), y.double()))
        got = float(club.float()(x, y))
    assert got == pytest.approx(want, rel=1e-3)


def test_club_bad_input():
    club = CLUB(3, 2)
    with pytest.raises(InputError, match=r"x: expected shape \(n, 3\)"):
        club(torch.randn(5, 4), torch.randn(5, 2))
    with pytest.raises(InputError, match=r"y: expected as many rows"):
        club.learning_loss(torch.randn(5, 3), torch.randn(6, 2))
    with pytest.raises(InputError, match="x_dim"):
        CLUB(0, 2)
    with pytest.raises(InputError, match="^sampled: expected True or False, got 'no'"):
        CLUB(3, 2, sampled="no")
