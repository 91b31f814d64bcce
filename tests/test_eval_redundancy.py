"""Redundancy scores pinned against direct formulas and their defining invariances."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import ortho_group

from jointspace.errors import InputError
from jointspace.eval import (debiased_linear_cka, hsic_score, linear_cka, mean_abs_cosine, normalized_cross_frobenius,
                             redundancy_report)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small problems: one BLAS thread is faster than two on a shared, busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def _cka_gram(x, y):
    """CKA as normalised HSIC of linear Gram matrices, with an explicit centring matrix H."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hs = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hs(k, l) / math.sqrt(hs(k, k) * hs(l, l))


def test_linear_cka_matches_the_gram_formula():
    r = _rng(1)
    x = r.normal(size=(30, 4))
    y = x @ r.normal(size=(4, 6)) + r.normal(size=(30, 6))
    assert linear_cka(x, y) == pytest.approx(_cka_gram(x, y), rel=1e-12)
    wide = r.normal(size=(10, 40))  # d > n: the Gram path of the implementation
    assert linear_cka(wide, y[:10]) == pytest.approx(_cka_gram(wide, y[:10]), rel=1e-12)


def test_linear_cka_invariances():
    r = _rng(2)
    z = r.normal(size=(50, 5))
    q = ortho_group.rvs(5, random_state=3)
    assert linear_cka(z, z @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(z, -3.0 * z @ q + 7.0) == pytest.approx(1.0, abs=1e-12)  # scale, shift
    y = z[:, :3] @ r.normal(size=(3, 4)) + r.normal(size=(50, 4))
    base = linear_cka(z, y)
    assert 0.05 < base < 0.95
    q4 = ortho_group.rvs(4, random_state=4)
    assert linear_cka(z @ q, 2.5 * y @ q4) == pytest.approx(base, rel=1e-10)
    assert linear_cka(y, z) == pytest.approx(base, rel=1e-12)
    # at any scale: features of size 1e-13 vary as much as any others
    assert linear_cka(1e-13 * z, y) == pytest.approx(base, rel=1e-10)
    assert normalized_cross_frobenius(z, 1e-14 * y) == pytest.approx(math.sqrt(base), rel=1e-10)
    # not invariant to a non-isotropic scaling
    assert linear_cka(z * np.array([10.0, 1, 1, 1, 1]), y) != pytest.approx(base, rel=1e-3)


def test_linear_cka_near_zero_for_independent():
    r = _rng(5)
    assert linear_cka(r.normal(size=(3000, 4)), r.normal(size=(3000, 3))) < 0.01


def test_normalized_cross_frobenius_is_sqrt_cka_and_hand_worked():
    r = _rng(6)
    x, y = r.normal(size=(40, 3)), r.normal(size=(40, 5))
    y[:, 0] += x[:, 1]
    assert normalized_cross_frobenius(x, y) == pytest.approx(math.sqrt(linear_cka(x, y)), rel=1e-12)
    # uncentred, by hand: Z1 = [[1, 0], [0, 1]], Z2 = [[1], [1]] -> Z1'Z2 = [1, 1]', norm sqrt 2;
    # ||Z1'Z1||_F = sqrt 2, ||Z2'Z2||_F = 2  ->  sqrt 2 / sqrt(2 sqrt 2) = 2^(-1/4)
    z1, z2 = np.eye(2), np.ones((2, 1))
    assert normalized_cross_frobenius(z1, z2, center=False) == pytest.approx(2 ** -0.25, rel=1e-12)
    # columns orthogonal over the samples: 0
    a = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    b = np.array([[0.0], [0], [1], [1]])
    assert normalized_cross_frobenius(a[:, :1], b, center=False) == 0.0


def test_mean_abs_cosine():
    z1 = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    z2 = np.array([[0.0, 2.0], [-3.0, -3.0], [1.0, 0.0]])  # orthogonal, anti-parallel, zero row
    assert mean_abs_cosine(z1, z2) == pytest.approx(1 / 3, rel=1e-12)
    r = _rng(7)
    x, y = r.normal(size=(20, 4)), r.normal(size=(20, 4))
    want = np.mean([abs(x[i] @ y[i]) / np.linalg.norm(x[i]) / np.linalg.norm(y[i]) for i in range(20)])
    assert mean_abs_cosine(x, y) == pytest.approx(want, rel=1e-12)


def test_hsic_score_agrees_with_the_torch_objective():
    torch = pytest.importorskip("torch")
    from jointspace.objectives.mutual_info import hsic

    r = _rng(8)
    x = r.normal(size=(40, 3))
    y = np.sin(x[:, :2]) + 0.2 * r.normal(size=(40, 2))
    want = float(hsic(torch.from_numpy(x), torch.from_numpy(y)))  # median heuristic on both sides
    assert hsic_score(x, y) == pytest.approx(want, rel=1e-10)
    assert hsic_score(x, y, 0.8, 1.2) == pytest.approx(float(hsic(torch.from_numpy(x), torch.from_numpy(y), 0.8, 1.2)),
                                                       rel=1e-10)
    # bandwidths as NumPy numbers, as the objective takes them
    want = float(hsic(torch.from_numpy(x), torch.from_numpy(y), 2, 3))
    assert hsic_score(x, y, np.int64(2), np.float32(3.0)) == pytest.approx(want, rel=1e-10)
    with pytest.raises(InputError, match="^sigma1: expected a positive finite bandwidth or None, got np.True_"):
        hsic_score(x, y, np.bool_(True))


def test_hsic_score_independence_dependence_and_normalisation():
    r = _rng(9)
    x, y = r.normal(size=(400, 2)), r.normal(size=(400, 2))
    dep = x ** 2 + 0.3 * r.normal(size=(400, 2))
    assert hsic_score(x, dep) > 10 * hsic_score(x, y)
    assert hsic_score(x, x, normalized=True) == pytest.approx(1.0, rel=1e-12)
    assert 0 < hsic_score(x, dep, normalized=True) < 1
    # subsampling above max_samples: deterministic, and close to the full value
    assert hsic_score(x, dep, max_samples=200) == hsic_score(x, dep, max_samples=200)
    assert hsic_score(x, dep, max_samples=200) == pytest.approx(hsic_score(x, dep), rel=0.3)
    # a shift changes no distance: the score holds far from the origin too
    assert hsic_score(x + 1e7, dep - 1e7) == pytest.approx(hsic_score(x, dep), rel=1e-6)


def test_redundancy_report():
    r = _rng(10)
    x, y = r.normal(size=(60, 3)), r.normal(size=(60, 3))
    rep = redundancy_report(x, y)
    assert set(rep) == {"mean_abs_cosine", "normalized_cross_frobenius", "linear_cka", "debiased_cka", "hsic",
                        "hsic_normalized"}
    assert rep["debiased_cka"] == debiased_linear_cka(x, y)
    assert rep["linear_cka"] == linear_cka(x, y)
    json.dumps(rep)
    assert redundancy_report(x, y[:, :2])["mean_abs_cosine"] is None


@pytest.mark.parametrize("n", [2, 3])
def test_redundancy_report_on_fewer_rows_than_the_debiased_estimate_needs(n):
    """The scores defined on 2 or 3 rows are given (each equal to its own function); the
    debiased CKA, which needs 4 rows, is None."""
    r = _rng(11)
    x, y = r.normal(size=(n, 3)), r.normal(size=(n, 3))
    rep = redundancy_report(x, y)
    assert rep["debiased_cka"] is None
    with pytest.raises(InputError, match="at least 4"):
        debiased_linear_cka(x, y)
    assert rep["linear_cka"] == linear_cka(x, y) and rep["hsic"] == hsic_score(x, y)
    assert rep["mean_abs_cosine"] == mean_abs_cosine(x, y)
    assert rep["normalized_cross_frobenius"] == normalized_cross_frobenius(x, y)


@pytest.mark.parametrize("fn", [mean_abs_cosine, normalized_cross_frobenius, linear_cka, hsic_score, redundancy_report])
def test_bad_shapes_name_the_argument(fn):
    good = np.ones((5, 3)) + np.arange(15).reshape(5, 3) ** 2
    with pytest.raises(InputError, match=r"^z1: expected a 2-D.*\(5,\)"):
        fn(np.ones(5), good)
    with pytest.raises(InputError, match=r"^z2: expected a 2-D"):
        fn(good, np.ones((5, 3, 1)))
    with pytest.raises(InputError, match=r"^z2: expected as many rows.*\(5, 3\).*\(4, 3\)"):
        fn(good, good[:4])
    with pytest.raises(InputError, match="^z2: expected finite"):
        fn(good, np.full((5, 3), np.nan))


@pytest.mark.parametrize("scale", [1e-150, 1e-90, 1e90, 1e150])
def test_every_score_holds_far_from_unit_scale(scale):
    """No score depends on the scale of a set; products of values far from 1 under- or
    overflowed float64 (linear CKA read 1.0 at 1e-100, 0.0 at 1e100, NaN at 1e160)."""
    r = _rng(12)
    x = r.normal(size=(40, 3))
    y = x[:, :2] + r.normal(size=(40, 2))
    for fn in (linear_cka, normalized_cross_frobenius, debiased_linear_cka, mean_abs_cosine):
        u, v = (x[:, :2], y) if fn is mean_abs_cosine else (x, y)
        assert fn(scale * u, v) == pytest.approx(fn(u, v), rel=1e-12), fn.__name__
    assert hsic_score(scale * x, y, normalized=True) == pytest.approx(hsic_score(x, y, normalized=True), rel=1e-12)
    assert hsic_score(scale * x, y, 0.7 * scale, 1.3) == pytest.approx(hsic_score(x, y, 0.7, 1.3), rel=1e-12)


def test_mismatched_dims_and_degenerate_inputs():
    r = _rng(11)
    with pytest.raises(InputError, match=r"^z2: expected the shape of z1 \(6, 3\).*got \(6, 2\)"):
        mean_abs_cosine(r.normal(size=(6, 3)), r.normal(size=(6, 2)))
    with pytest.raises(InputError, match="^z1: all rows are equal"):
        linear_cka(np.ones((6, 3)), r.normal(size=(6, 2)))
    for value in (0.0, 1e-13, 3e8):   # equal rows at any size
        equal = np.full((6, 3), value) * np.array([1.0, 2.0, 0.1])
        with pytest.raises(InputError, match="^z2: all rows are equal"):
            normalized_cross_frobenius(r.normal(size=(6, 2)), equal)
    with pytest.raises(InputError, match="max_samples"):
        hsic_score(r.normal(size=(6, 3)), r.normal(size=(6, 2)), max_samples=1)
    # a flag is True or False: the string "no" would read as True
    with pytest.raises(InputError, match="^normalized: expected True or False, got 'no'"):
        hsic_score(r.normal(size=(6, 3)), r.normal(size=(6, 2)), normalized="no")
    with pytest.raises(InputError, match="^center: expected True or False, got 'no'"):
        normalized_cross_frobenius(r.normal(size=(6, 3)), r.normal(size=(6, 2)), center="no")


# -- debiased CKA ---------------------------------------------------------------------------------------------
def _u_statistic_hsic(k, l):
    """Unbiased HSIC as the U-statistic over ordered 4-tuples of distinct indices (Song et al.,
    Theorem 2's kernel h), by brute force."""
    n = k.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
        count += 1
    return total / count


def test_debiased_cka_matches_the_brute_force_u_statistic():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 3))
    b = a[:, :2] + rng.normal(size=(7, 2))
    ka, kb = a @ a.T, b @ b.T
    want = _u_statistic_hsic(ka, kb) / np.sqrt(_u_statistic_hsic(ka, ka) * _u_statistic_hsic(kb, kb))
    assert debiased_linear_cka(a, b) == pytest.approx(want, rel=1e-10)


def test_debiased_cka_removes_the_small_sample_floor():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    assert linear_cka(a, b) > 0.12            # the plain estimate's floor, about sqrt(d1 d2)/n
    assert abs(debiased_linear_cka(a, b)) < 0.02
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    assert debiased_linear_cka(a, 3 * a @ q) == pytest.approx(1.0)


def test_the_plain_cka_floor_the_docstring_states():
    """Independent Gaussian sets, centred (m = n - 1 degrees of freedom): E||A'B||_F^2 = m d1 d2 and
    E||A'A||_F^2 = m d (m + d + 1) (Wishart) give a floor of about sqrt(d1 d2 / ((n + d1)(n + d2))):
    200 x 32 reads 0.14 (the docstring said 0.16)."""
    rng = np.random.default_rng(1)
    for n, d1, d2 in ((200, 32, 32), (60, 4, 16)):
        mean = np.mean([linear_cka(rng.normal(size=(n, d1)), rng.normal(size=(n, d2))) for _ in range(100)])
        assert mean == pytest.approx(math.sqrt(d1 * d2 / ((n + d1) * (n + d2))), rel=0.05)
    assert 32 / 232 == pytest.approx(0.14, abs=0.005) and math.sqrt(32 / 232) == pytest.approx(0.37, abs=0.005)
    doc = " ".join(debiased_linear_cka.__doc__.split())
    assert "32-d parts read 0.14, i.e. a normalised cross-Frobenius of 0.37" in doc


def test_debiased_cka_does_not_depend_on_a_shift():
    """A shift of either set leaves the estimate unchanged; far from the origin, Gram matrices of
    the raw rows left it to rounding (0.10 for 0.52 at an offset of 1e4)."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(60, 4))
    b = a[:, :3] + rng.normal(size=(60, 3))
    want = debiased_linear_cka(a, b)
    assert want > 0.3
    for offset in (1.0, 1e4, 1e6):
        assert debiased_linear_cka(a + offset, b - offset) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_samples": -1}, r"max_samples: expected an integer >= 4 or None, got -1"),
    ({"max_samples": 3}, r"max_samples: expected an integer >= 4 or None, got 3"),
    ({"max_samples": 2.5}, r"max_samples: expected an integer >= 4 or None, got 2.5"),
    ({"max_samples": 10, "seed": -1}, r"seed: expected"),
])
def test_debiased_cka_bad_subsampling(kwargs, needle):
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=needle):
        debiased_linear_cka(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)), **kwargs)


def test_debiased_cka_bad_input():
    with pytest.raises(InputError, match="do not vary"):
        debiased_linear_cka(np.ones((6, 2)), np.arange(12.0).reshape(6, 2))
    with pytest.raises(InputError, match="rows"):
        debiased_linear_cka(np.zeros((3, 2)), np.zeros((3, 2)))
