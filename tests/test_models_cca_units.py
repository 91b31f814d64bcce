"""CCA where the numbers get hard, pinned against independent computations: a view whose
columns are in units a millionfold apart (1e6 next to 1e-6) has the canonical correlations of
the same view in one unit (the QR route of Bjorck and Golub, singular values of Q_x^T Q_y);
float32 views give the correlations of their numbers in float64; a refit that is refused
leaves the fitted model equal to a fresh fit."""

import numpy as np
import pytest
from scipy import linalg

from jointspace.models.cca import CCA, RegularizedCCA
from jointspace.models.multiset_cca import MaxvarCCA, SumcorCCA


def _qr_correlations(x, y):
    """Canonical correlations as the cosines of the principal angles between the centred column spaces."""
    qx, _ = linalg.qr(x - x.mean(0), mode="economic")
    qy, _ = linalg.qr(y - y.mean(0), mode="economic")
    return linalg.svd(qx.T @ qy, compute_uv=False)


def _views(n=200, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = np.c_[z + 0.3 * rng.normal(size=(n, 3)), rng.normal(size=(n, 2))]
    y = np.c_[z + 0.3 * rng.normal(size=(n, 3)), rng.normal(size=(n, 1))]
    return x, y


@pytest.mark.parametrize("scale", [1e3, 1e6, 1e8])
def test_columns_in_far_apart_units_keep_every_pair(scale):
    x, y = _views()
    units = np.ones(x.shape[1])
    units[0], units[1] = scale, 1 / scale
    want = _qr_correlations(x, y)          # principal angles: independent of column units
    model = CCA(weight=0).fit(x * units, y)
    assert model.n_components_ == 4
    np.testing.assert_allclose(model.canonical_correlations_, want, rtol=1e-8)
    u, v = model.transform(x * units, y)
    got = [np.corrcoef(u[:, k], v[:, k])[0, 1] for k in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-8)
    # the directions are those of the one-unit fit, in the new units
    plain = CCA(weight=0).fit(x, y)
    np.testing.assert_allclose(model.x_weights_ * units[:, None], plain.x_weights_, rtol=1e-6, atol=1e-8)


def test_ridge_in_far_apart_units_solves_its_eigenproblem():
    x, y = _views()
    units = np.ones(x.shape[1])
    units[0], units[1] = 1e6, 1e-6
    xs = x * units
    model = RegularizedCCA(reg=0.3, weight=0).fit(xs, y)
    # the chapter's eigenproblem S_xy R_yy^-1 S_yx w = lambda R_xx w with ridged auto-covariances R
    n = len(x)
    xc, yc = xs - xs.mean(0), y - y.mean(0)
    rx = 0.7 * xc.T @ xc / (n - 1) + 0.3 * np.eye(5)
    ry = 0.7 * yc.T @ yc / (n - 1) + 0.3 * np.eye(4)
    sxy = xc.T @ yc / (n - 1)
    lam = linalg.eigvalsh(sxy @ np.linalg.solve(ry, sxy.T), rx)[::-1][:4]
    wx, wy = model.x_weights_, model.y_weights_
    s = np.einsum("ik,ij,jk->k", wx, sxy, wy) / np.sqrt(np.einsum("ik,ij,jk->k", wx, rx, wx)
                                                        * np.einsum("ik,ij,jk->k", wy, ry, wy))
    np.testing.assert_allclose(s ** 2, lam, rtol=1e-6)


@pytest.mark.parametrize("cls, offset", [(SumcorCCA, 0.0), (MaxvarCCA, 1.0)])
def test_multiset_in_far_apart_units_keeps_every_component(cls, offset):
    x, y = _views()
    units = np.ones(x.shape[1])
    units[0], units[1] = 1e6, 1e-6
    model = cls(weight=0).fit([x * units, y])
    # two views: SUMCOR's eigenvalues are rho, MAXVAR's 1 + rho
    np.testing.assert_allclose(model.eigenvalues_ - offset, _qr_correlations(x, y), rtol=1e-8)


def test_float32_views_that_correlate_closely_stay_below_one():
    """Float32 views whose canonical correlations are 0.9999998: each one, and 1 - rho, as the
    QR route gives on the same numbers in float64 (a float32 product gave rho = 1.0007)."""
    rng = np.random.default_rng(0)
    n, p = 20000, 64
    z = rng.normal(size=(n, p))
    x = (z @ rng.normal(size=(p, p))).astype(np.float32)
    y = (z @ rng.normal(size=(p, p)) + 1e-2 * rng.normal(size=(n, p))).astype(np.float32)
    want = _qr_correlations(x.astype(np.float64), y.astype(np.float64))[:5]
    got = CCA(n_components=5).fit(x, y).canonical_correlations_
    assert np.all(got <= 1.0)
    np.testing.assert_allclose(1 - got, 1 - want, rtol=1e-3)


@pytest.mark.parametrize("make, bad", [
    (lambda: CCA(n_components=2), dict(n_components=100)),
    (lambda: RegularizedCCA(n_components=2, preprocess="standard"), dict(n_components=100)),
    (lambda: SumcorCCA(n_components=2), dict(n_components=100)),
])
def test_a_refused_refit_leaves_the_fitted_model_as_it_was(make, bad):
    x, y = _views()
    wide = np.c_[x, x[:, :2] ** 2]      # another feature count
    multi = isinstance(make(), SumcorCCA)
    fresh = make().fit([x, y] if multi else x, y if not multi else None)
    model = make().fit([x, y] if multi else x, y if not multi else None)
    with pytest.raises(Exception, match="n_components"):
        model.set_params(**bad).fit([wide, y] if multi else wide, None if multi else y)
    model.set_params(n_components=2)
    got = model.transform([x, y]) if multi else model.transform(x, y)
    want = fresh.transform([x, y]) if multi else fresh.transform(x, y)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_refused_kernel_refit_leaves_the_fitted_model_as_it_was():
    from jointspace.models.kernel_cca import KernelCCA

    x, y = _views(60)
    fresh = KernelCCA(n_components=2).fit(x, y)
    model = KernelCCA(n_components=2).fit(x, y)
    with pytest.raises(Exception, match=r"^y: expected 60 rows to match X, got 10$"):
        model.fit(np.c_[x, x], y[:10])
    np.testing.assert_array_equal(model.transform(x), fresh.transform(x))


def test_the_largest_weight_scales_by_the_correlations_power_and_a_larger_one_is_refused():
    from jointspace import InputError, Pairs, create_model

    x, y = _views()
    rho = _qr_correlations(x, y)[:3]     # principal angles: computed apart from the model
    plain = CCA(n_components=3, weight=0).fit(x, y)
    heavy = CCA(n_components=3, weight=16).fit(x, y)
    np.testing.assert_allclose(heavy.transform(x), plain.transform(x) * rho ** 16, rtol=1e-8)
    z = heavy.encode("x", x[:5])
    want = plain.transform(x[:5]) * rho ** 16
    np.testing.assert_allclose(z, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)
    # 1000: every encoding was zero (0.9 ** 1000 and less underflow in float32)
    message = r"^weight: expected a number <= 16, got 1000 \(component k is scaled by its correlation \*\* weight"
    labelled = Pairs({"x": x, "y": y}, labels=np.arange(len(x)) % 3)
    for name in ("cca", "rcca", "pls", "mcca", "kcca", "scca"):
        with pytest.raises(InputError, match=message):
            create_model(name, n_components=2, weight=1000).fit(labelled)
    with pytest.raises(InputError, match=message):
        plain.derive(weight=1000)
    with pytest.raises(InputError, match=message):
        SumcorCCA(n_components=2).fit([x, y]).derive(weight=1000)
